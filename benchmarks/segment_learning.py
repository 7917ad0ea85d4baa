"""Learning check of the segmentation stage: Attention U-Net beside the parameter-matched U-Net on synthetic PET/CT.

Run through the command line as a user would:

1. ``pathattn synth volume``: a PET/CT cohort with lesions of 12-50 mm across (some a few voxels across);
2. ``pathattn segment fit`` with ``configs/segment/attention_unet.yaml`` and with ``configs/segment/unet.yaml``
   (the same patches, epochs, learning rate, split and seed), each segmenting its held-out patients.

Each fold is its own run (``WORK/runs/{network}/fold{k}``): finished runs are reused and interrupted ones resumed
(``segment fit --resume``), so the folds of a cross-validation can be trained in separate sittings. It prints, per
network, over the held-out volumes of every fold given (cases pooled, not fold means): parameters, the wall time of
the fits run now (a resumed fit's remaining part; prediction and evaluation of the test patients included), the Dice
over held-out volumes with lesions and over all held-out volumes, HD95, NSD, lesion recall (overall and by size
bin), the mean Dice per true lesion, the precision of the predicted components, and the gates' PxAP beside the
uniform map's (mean over folds). Usage (from the repository root)::

    python benchmarks/segment_learning.py --work /tmp/segment_learning --epochs 80             # fold 0
    python benchmarks/segment_learning.py --work /tmp/segment_learning --epochs 80 --folds 0 1 2 3
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import platform
from pathlib import Path

import torch
from commands import ROOT, run_pathattn

from pathattn.models.complexity import count_parameters
from pathattn.registry import create_model

NETWORKS = ("attention_unet", "unet")


def fit(work: Path, network: str, fold: int, args: argparse.Namespace) -> tuple[Path, dict, float]:
    """One ``segment fit`` of ``network`` on one fold with its preset: its folder, metrics and wall time."""
    out = work / "runs" / network / f"fold{fold}"
    seconds = run_pathattn(["segment", "fit", "--config", ROOT / "configs" / "segment" / f"{network}.yaml",
                            "--samples", work / "cohort" / "samples.csv", "--out", out, "--max-epochs", args.epochs,
                            "--folds", json.dumps([fold]), "--accelerator", "cpu", "--seed", args.seed, "--resume"],
                           out / "metrics.json", f"segment fit fold {fold}")  # fmt: skip
    return out, json.loads((out / "metrics.json").read_text()), seconds


def parameters(metrics: dict) -> int:
    """Parameters of a run's network, rebuilt from its recorded options."""
    config = metrics["config"]
    kwargs = {**ast.literal_eval(config["model_args"]), "in_channels": len(metrics["channels"]), "out_channels": 2}
    return count_parameters(create_model(metrics["model"], spatial_dims=3, **kwargs))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def pooled(runs: list[tuple[Path, dict]]) -> dict[str, object]:
    """The lesion class's figures over every held-out volume of the runs' folds (cases pooled, not fold means)."""
    cases, lesions, bins, pxap = [], [], {}, {}
    for out, metrics in runs:
        for fold in metrics["folds"]:
            test = out / f"fold_{fold['fold']}" / "test"
            cases += [r for r in _rows(test / "cases.csv") if r["class"] == "1"]
            lesions += [r for r in _rows(test / "lesions.csv") if r["class"] == "1"]
            for name, counts in fold["classes"]["1"]["recall_by_size"].items():
                found = bins.setdefault(name, [0, 0])
                found[0] += counts["detected"]
                found[1] += counts["lesions"]
            for level, value in fold["attention_pxap"].items():
                pxap.setdefault(level, []).append(value)
    positive = [float(r["dice"]) for r in cases if float(r["truth_ml"]) > 0]
    predicted = sum(int(r["predicted_components"]) for r in cases)
    return {
        "volumes": len(cases), "volumes_with_lesions": len(positive),
        "dice_positive": _mean(positive), "dice_all": _mean([float(r["dice"]) for r in cases]),
        "hd95": _mean([float(r["hd95"]) for r in cases if r["hd95"]]), "nsd": _mean([float(r["nsd"]) for r in cases]),
        "lesions": len(lesions), "recall": _mean([float(r["detected"] == "True") for r in lesions]),
        "dice_per_lesion": _mean([float(r["dice"]) for r in lesions]),
        "precision": sum(int(r["true_positive_components"]) for r in cases) / predicted if predicted else None,
        "recall_by_size": bins, "pxap": {level: _mean(values) for level, values in pxap.items()},
    }  # fmt: skip


def report(network: str, runs: list[tuple[Path, dict]], seconds: list[float]) -> None:
    """Print one network's held-out figures, pooled over the folds run."""
    found = pooled(runs)
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    folds = [f["fold"] for _, m in runs for f in m["folds"]]
    timing = f"fit + test {sum(seconds) / 60:.1f} min this run" if any(seconds) else "reused runs"
    print(f"\n{network}: {parameters(runs[0][1]) / 1e6:.2f} M parameters, folds {folds} ({timing})")
    print(f"  {found['volumes']} held-out volumes, {found['volumes_with_lesions']} with lesions: Dice of those "
          f"{fmt(found['dice_positive'])}, of all {fmt(found['dice_all'])}, HD95 {fmt(found['hd95'])} mm, "
          f"NSD {fmt(found['nsd'])}")  # fmt: skip
    print(f"  {found['lesions']} lesions: recall {fmt(found['recall'])}, Dice per lesion "
          f"{fmt(found['dice_per_lesion'])}, precision of predicted components {fmt(found['precision'])}")  # fmt: skip
    print("  recall by lesion volume: " + ", ".join(f"{n} {d}/{t}" for n, (d, t) in found["recall_by_size"].items()))
    print("  gate PxAP: " + ", ".join(f"{k} {fmt(v)}" for k, v in found["pxap"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (finished runs are reused)")
    parser.add_argument("--n-patients", type=int, default=48)
    parser.add_argument("--shape", default="[96,96,40]")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--folds", type=int, nargs="+", default=[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    args = parser.parse_args()
    work = args.work.resolve()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}")  # fmt: skip
    run_pathattn(["synth", "volume", "--out", work / "cohort", "--n-patients", args.n_patients, "--shape",
                  args.shape, "--dicom-fraction", 0, "--seed", args.seed], work / "cohort" / "samples.csv")  # fmt: skip
    for network in args.networks:
        fits = [fit(work, network, fold, args) for fold in args.folds]
        report(network, [(out, metrics) for out, metrics, _ in fits], [seconds for *_, seconds in fits])


if __name__ == "__main__":
    main()
