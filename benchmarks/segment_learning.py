"""Learning check of the segmentation stage: Attention U-Net beside the parameter-matched U-Net on synthetic PET/CT.

Run through the command line as a user would:

1. ``pathattn synth volume``: a PET/CT cohort with lesions of 12-50 mm across (some a few voxels across);
2. ``pathattn segment fit`` with ``configs/segment/attention_unet.yaml`` and with ``configs/segment/unet.yaml``
   (the same patches, epochs, learning rate, split and seed), each segmenting its held-out patients.

It prints, per network: parameters, the wall time of the fit (prediction and evaluation of the test patients
included), the lesion Dice over held-out volumes with lesions, the Dice over all held-out volumes, HD95, NSD,
lesion recall by size bin and precision, and the gates' PxAP beside the uniform map's. Finished runs are reused.
Usage (from the repository root)::

    python benchmarks/segment_learning.py --work /tmp/segment_learning
"""

from __future__ import annotations

import argparse
import ast
import json
import platform
from pathlib import Path

import torch
from commands import ROOT, run_pathattn

from pathattn.models.complexity import count_parameters
from pathattn.registry import create_model

NETWORKS = ("attention_unet", "unet")


def fit(work: Path, network: str, args: argparse.Namespace) -> tuple[dict, float]:
    """One ``segment fit`` of ``network`` with its preset; its metrics and wall time."""
    out = work / "runs" / network
    seconds = run_pathattn(["segment", "fit", "--config", ROOT / "configs" / "segment" / f"{network}.yaml",
                            "--samples", work / "cohort" / "samples.csv", "--out", out, "--max-epochs", args.epochs,
                            "--folds", json.dumps(args.folds), "--accelerator", "cpu", "--seed", args.seed],
                           out / "metrics.json")  # fmt: skip
    return json.loads((out / "metrics.json").read_text()), seconds


def parameters(metrics: dict) -> int:
    """Parameters of a run's network, rebuilt from its recorded options."""
    config = metrics["config"]
    kwargs = {**ast.literal_eval(config["model_args"]), "in_channels": len(metrics["channels"]), "out_channels": 2}
    return count_parameters(create_model(metrics["model"], spatial_dims=3, **kwargs))


def report(network: str, metrics: dict, seconds: float) -> None:
    """Print one network's held-out figures (mean over the folds run; counts summed)."""
    lesion = metrics["summary"]["1"]
    folds = metrics["folds"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"\n{network}: {parameters(metrics) / 1e6:.2f} M parameters, fit + test {seconds / 60:.1f} min "
          f"({'reused' if not seconds else 'this run'}), folds {[f['fold'] for f in folds]}")  # fmt: skip
    print(f"  Dice of volumes with lesions {fmt(lesion['dice_mean_positive'])}, of all volumes "
          f"{fmt(lesion['dice_mean'])}, HD95 {fmt(lesion['hd95_mean'])} mm, NSD {fmt(lesion['nsd_mean'])}")  # fmt: skip
    print(f"  lesion-wise Dice {fmt(lesion.get('lesion_dice'))}, lesion recall {fmt(lesion['lesion_recall'])}, "
          f"precision {fmt(lesion['lesion_precision'])}")  # fmt: skip
    bins: dict[str, list[int]] = {}
    for fold in folds:
        for name, counts in fold["classes"]["1"]["recall_by_size"].items():
            found = bins.setdefault(name, [0, 0])
            found[0] += counts["detected"]
            found[1] += counts["lesions"]
    print("  recall by lesion volume: " + ", ".join(f"{n} {d}/{t}" for n, (d, t) in bins.items()))
    pxap = metrics["summary"]["attention_pxap"]
    print("  gate PxAP: " + ", ".join(f"{k} {fmt(v)}" for k, v in pxap.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (finished runs are reused)")
    parser.add_argument("--n-patients", type=int, default=24)
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
        report(network, *fit(work, network, args))


if __name__ == "__main__":
    main()
