"""Slice classification of PET/CT: ResNet-18 by patient and by slice, MEDUSA beside it, CAMs scored against lesions.

The PET/CT slice-classification study of docs/classify.md, run through the command line as a user would:

1. ``pathattn synth volume`` and ``pathattn tile`` (axial slices the network sees as PET,
   ``configs/tile/volume_pet_axial.yaml``);
2. ``pathattn classify fit`` of ResNet-18 on PET and on PET/CT slices, each with a patient-level and a
   slice-level split (the same folds run, epochs and learning rate), and of MEDUSA and of its ablation without
   the body (``medusa_isolated``) on PET with the patient-level split and the same budget;
3. ``pathattn cams`` on the held-out patients of each patient-level fold (Grad-CAM, Grad-CAM++, Eigen-CAM,
   Score-CAM, and MEDUSA's own maps) and ``pathattn evaluate wsol`` of every method (PxAP, MaxBoxAccV2), beside
   the uniform baseline (a constant map).

It prints the out-of-fold slice AUROC of every model and split mode with its patient-bootstrap interval, and the
WSOL table. Finished stages are reused. Usage (from the repository root)::

    python benchmarks/slice_classification.py --work /tmp/slice_classification
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from commands import ROOT, run_pathattn

CAM_METHODS = ("gradcam", "gradcam++", "eigencam", "scorecam")
RUNS = {  # name: model, channels, split
    "resnet18_pet_patient": ("timm_classifier", ["PET"], "patient"),
    "resnet18_pet_slice": ("timm_classifier", ["PET"], "slice"),
    "resnet18_petct_patient": ("timm_classifier", ["PET", "CT"], "patient"),
    "resnet18_petct_slice": ("timm_classifier", ["PET", "CT"], "slice"),
    "medusa_pet": ("medusa", ["PET"], "patient"),
    "medusa_isolated_pet": ("medusa_isolated", ["PET"], "patient"),
}


def fit(work: Path, name: str, model: str, split: str, args: argparse.Namespace, extra: list[object]) -> Path:
    """One ``classify fit`` run into ``work/runs/name``."""
    out = work / "runs" / name
    run_pathattn(["classify", "fit", "--tiles", work / "tiles", "--samples", work / "cohort" / "samples.csv",
              "--out", out, "--model", model, "--split", split, "--image-size", args.image_size,
              "--n-folds", args.n_folds, "--folds", json.dumps(args.folds), "--max-epochs", args.epochs,
              "--lr", args.lr, "--n-boot", 1000, "--accelerator", args.accelerator, *extra],
             out / "metrics.json")  # fmt: skip
    return out


def wsol(work: Path, run: Path, fold: int, methods: list[str], stage: int) -> dict[str, dict[str, float]]:
    """CAMs on feature stage ``stage`` (and own maps) of a run's fold on its held-out patients, scored by WSOL."""
    cams = work / "cams" / f"{run.name}_fold{fold}_stage{stage}"
    run_pathattn(["cams", "--run", run, "--fold", fold, "--tiles", work / "tiles", "--samples",
              work / "cohort" / "samples.csv", "--out", cams, "--methods", json.dumps(methods), "--cam-stage", stage],
             cams / "cams.json")  # fmt: skip
    out = work / "wsol" / cams.name
    run_pathattn(["evaluate", "wsol", "--maps", cams, "--out", out], out / "metrics.json")
    methods_scored = json.loads((out / "metrics.json").read_text())["methods"]
    return {method: {"pxap": splits["test"]["pxap"], "maxboxacc_v2": splits["test"].get("max_box_acc_v2", np.nan)}
            for method, splits in methods_scored.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (stages are reused)")
    parser.add_argument("--n-patients", type=int, default=48)
    parser.add_argument("--shape", default="[96,96,32]")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="the runs to make (all)")
    parser.add_argument("--cam-stages", type=int, nargs="+", default=[-1],
                        help="feature stages the CAMs explain (-1: layer4, -2: layer3)")  # fmt: skip
    args = parser.parse_args()
    work = args.work
    cohort = work / "cohort"
    run_pathattn(["synth", "volume", "--out", cohort, "--n-patients", args.n_patients, "--shape", args.shape,
              "--dicom-fraction", 0], cohort / "samples.csv")  # fmt: skip
    run_pathattn(["tile", "--config", ROOT / "configs/tile/volume_pet_axial.yaml", "--samples", cohort / "samples.csv",
              "--out", work / "tiles", "--workers", 2], work / "tiles" / "manifest.csv")  # fmt: skip
    body = ["--model-args", json.dumps({"body_size": args.image_size})]
    runs = {}
    for name in args.runs:
        model, channels, split = RUNS[name]
        extra = ["--channels", json.dumps(channels), *(body if model == "medusa" else [])]
        runs[name] = fit(work, name, model, split, args, extra)
    print(f"\nslice classification ({args.n_patients} patients, {args.image_size} px, {args.epochs} epochs, folds "
          f"{args.folds} of {args.n_folds}); out-of-fold AUROC [95% patient-bootstrap CI]")  # fmt: skip
    for name, run in runs.items():
        pooled = json.loads((run / "metrics.json").read_text())["pooled"]
        print(f"  {name:<24} auroc {pooled['auroc']:.3f} [{pooled['auroc_ci_low']:.3f}, {pooled['auroc_ci_high']:.3f}]"
              f"  sensitivity {pooled['sensitivity']:.3f}  specificity {pooled['specificity']:.3f}")  # fmt: skip
    print("\nWSOL on held-out patients (test split of each fold's cams; mean over folds): PxAP, MaxBoxAccV2")
    explained = {"resnet18_pet_patient": list(CAM_METHODS), "medusa_pet": ["attention", "gradcam"]}
    for name, methods in explained.items():
        for stage in args.cam_stages if name in runs else ():
            tables = [wsol(work, runs[name], fold, methods, stage) for fold in args.folds]
            for method in tables[0]:
                pxap = np.nanmean([t[method]["pxap"] for t in tables])
                box = np.nanmean([t[method]["maxboxacc_v2"] for t in tables])
                print(f"  {name:<24} stage {stage:>2} {method:<18} PxAP {pxap:.3f}  MaxBoxAccV2 {box:.3f}")


if __name__ == "__main__":
    main()
