"""Learning on volumes: synthetic PET/CT -> axial slices -> slice features -> gated ABMIL over slices.

Runs the pipeline through the command line, as a user would, on a synthetic PET/CT cohort (docs/volumes.md):
``pathattn synth volume``, ``pathattn tile`` (axial slices, ``configs/tile/volume_pet_ct_axial.yaml``),
``pathattn extract`` (an encoder config), ``pathattn train`` (gated ABMIL over the slices of a study, patient-
level cross-validation) and ``pathattn predict --run`` (each study's attention from the fold that held it
out). It prints

* the out-of-fold AUROC of the study-level prediction (label: the study holds a lesion);
* the attention AUROC for "the slice crosses a lesion": per positive study (mean) and pooled over them;
* a per-slice classifier (logistic regression on the same slice features, labels from the label volume)
  cross-validated with a patient-level split and with a slice-level split, whose test sets then hold
  neighbours of training slices: the overestimation the PET/CT slice-classification paper describes.

Every stage is skipped when its output is there, so a second run with another ``--train-extra`` reuses the
tiles and features. Usage (from the repository root; figures in docs/volumes.md and docs/performance.md)::

    python benchmarks/volume_mil.py --work /tmp/volume_mil --n-patients 200
"""

from __future__ import annotations

import argparse
import csv
import shlex
from pathlib import Path

import numpy as np
from commands import run_pathattn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold, KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pathattn.io.bags import read_bag
from pathattn.io.coords import read_coords
from pathattn.io.scores import read_patch_scores

TRAIN_CONFIGS = (
    "configs/model/abmil_small.yaml",
    "configs/data/small_cohort.yaml",
    "configs/trainer/fixed_epochs.yaml",
)
TRAIN_EXTRA = "--class-weighting --max-epochs 60 --lr 0.0005 --n-boot 200"


def lesion_slices(tiles: Path, volume_id: str) -> np.ndarray:
    """``(S,)`` whether each slice of a study crosses a lesion (a study without lesions has no label class)."""
    fraction = read_coords(tiles / "coords" / f"{volume_id}.h5").annotation_fraction
    return fraction[:, 0] > 0 if fraction.shape[1] else np.zeros(len(fraction), bool)


def slice_table(tiles: Path, features: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Slice features ``(S, D)``, "crosses a lesion" ``(S,)`` and each slice's study id, over ``ids``."""
    feats, labels, owners = [], [], []
    for vid in ids:
        bag = read_bag(features / "h5_files" / f"{vid}.h5")
        lesion = lesion_slices(tiles, vid)
        feats.append(np.asarray(bag.features, np.float32))
        labels.append(lesion)
        owners += [vid] * len(lesion)
    return np.concatenate(feats), np.concatenate(labels), owners


def attention_aurocs(tiles: Path, predicted: Path, ids: list[str]) -> tuple[float, float]:
    """Per-study mean and pooled AUROC of the raw attention for "the slice crosses a lesion" (positive studies)."""
    per_study, pooled_scores, pooled_labels = [], [], []
    for vid in ids:
        lesion = lesion_slices(tiles, vid)
        if not lesion.any() or lesion.all():
            continue
        attention = read_patch_scores(predicted / "attention" / f"{vid}.h5").values.reshape(len(lesion), -1)[:, 0]
        per_study.append(roc_auc_score(lesion, attention))
        ranks = np.argsort(np.argsort(attention)) / max(len(attention) - 1, 1)  # per-study ranks, pooled
        pooled_scores.append(ranks)
        pooled_labels.append(lesion)
    return float(np.mean(per_study)), float(roc_auc_score(np.concatenate(pooled_labels), np.concatenate(pooled_scores)))


def per_slice_split_aurocs(x: np.ndarray, y: np.ndarray, patients: list[str], seed: int) -> tuple[float, float]:
    """Out-of-fold slice AUROC of a logistic regression under a patient-level and a slice-level 5-fold split."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
    by_patient = GroupKFold(n_splits=5).split(x, y, groups=patients)
    by_slice = KFold(n_splits=5, shuffle=True, random_state=seed).split(x, y)
    return tuple(  # type: ignore[return-value]
        float(roc_auc_score(y, cross_val_predict(model, x, y, cv=list(cv), method="predict_proba")[:, 1]))
        for cv in (by_patient, by_slice)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, required=True, help="working folder (cohort/, tiles/, features/, runs)")
    p.add_argument("--n-patients", type=int, default=200)
    p.add_argument("--shape", type=int, nargs=3, default=[192, 192, 48], help="voxels I J K of each CT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tile-config", default="configs/tile/volume_pet_axial.yaml")
    p.add_argument("--extract-config", default="configs/extract/resnet18_l1_grid_random.yaml")
    p.add_argument("--extract-extra", default="", help="more options of pathattn extract, e.g. '--encoder X'")
    p.add_argument("--train-configs", nargs="+", default=list(TRAIN_CONFIGS))
    p.add_argument("--train-extra", default=TRAIN_EXTRA, help="more options of pathattn train")
    p.add_argument("--run-name", default="run", help="folder of the training run (and of its predictions)")
    a = p.parse_args()
    w = a.work.resolve()
    cohort, tiles, features, runs = w / "cohort", w / "tiles", w / "features", w / a.run_name
    shape = [str(v) for v in a.shape]
    run_pathattn(["synth", "volume", "--out", str(cohort), "--n-patients", str(a.n_patients), "--seed", str(a.seed),
                  "--shape", f"[{','.join(shape)}]", "--dicom-fraction", "0"], cohort / "samples.csv")  # fmt: skip
    samples = str(cohort / "samples.csv")
    run_pathattn(["tile", "--config", a.tile_config, "--samples", samples, "--out", str(tiles)], tiles / "manifest.csv")
    run_pathattn(["extract", "--config", a.extract_config, "--coords", str(tiles), "--out", str(features),
                  "--device", "cpu", *shlex.split(a.extract_extra)], features / "manifest.csv")  # fmt: skip
    configs = [v for c in a.train_configs for v in ("--config", c)]
    train = runs / "train"
    run_pathattn(["train", *configs, "--samples", samples, "--features", str(features), "--out", str(train),
                  "--task", "classification", *shlex.split(a.train_extra)], train / "predictions.csv")  # fmt: skip
    run_pathattn(["predict", "--run", str(runs / "train"), "--features", str(features), "--out", str(runs / "predict")],
        runs / "predict" / "predictions.csv")  # fmt: skip

    with open(runs / "train" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    ids = [r["slide_id"] for r in rows]
    labels = np.array([r["label"] == "1" for r in rows])
    oof = roc_auc_score(labels, [float(r["prob_1"]) for r in rows])
    mean_att, pooled_att = attention_aurocs(tiles, runs / "predict", [i for i, y in zip(ids, labels, strict=True) if y])
    with open(samples) as f:
        patient_of = {r["volume_id"]: r["patient_id"] for r in csv.DictReader(f)}
    x, y, owners = slice_table(tiles, features, ids)
    by_patient, by_slice = per_slice_split_aurocs(x, y, [patient_of[o] for o in owners], a.seed)
    print(f"studies {len(ids)} ({labels.sum()} with lesions) of {len(set(patient_of.values()))} patients, "
          f"{len(y)} slices ({y.sum()} crossing a lesion)")  # fmt: skip
    folds = len({r["fold"] for r in rows})
    print(f"gated ABMIL over slices, patient-level {folds}-fold CV: out-of-fold AUROC {oof:.3f}")
    print(f"attention AUROC for lesion slices (positive studies): mean per study {mean_att:.3f}, "
          f"pooled ranks {pooled_att:.3f}")  # fmt: skip
    print(f"per-slice logistic regression, slice AUROC: patient-level split {by_patient:.3f}, "
          f"slice-level split {by_slice:.3f} (overestimation {by_slice - by_patient:+.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
