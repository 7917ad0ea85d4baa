"""The learning check on volumes: synthetic PET/CT → axial slices → slice features → gated ABMIL over slices.

A synthetic PET/CT cohort of 200 patients (:mod:`pathattn.synth.volume`; some patients have two studies, so
the split must keep a patient's studies together) goes through the command line as in
``benchmarks/volume_mil.py`` (docs/volumes.md, "Learning check"): axial slices that the encoder sees as PET
(``configs/tile/volume_pet_axial.yaml``), a seeded random-init ResNet-18 cut after layer 1
(``configs/extract/resnet18_l1_grid_random.yaml``), gated ABMIL for small cohorts with patient-level 5-fold
cross-validation. The run is checked on its out-of-fold predictions:

* study level: AUROC of the out-of-fold "the study holds a lesion" probability at least 0.9;
* slice level: on each held-out study with lesion and lesion-free slices, the fold model's raw attention
  ranks the slices that cross a lesion (label volume) above the others with AUROC at least 0.8 on average.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pathattn.cli.main import main
from pathattn.io.bags import read_bag
from pathattn.io.coords import read_coords
from pathattn.train.mil.system import MILSystem

ROOT = Path(__file__).resolve().parents[2]
N_PATIENTS = 200


def cli(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def volume_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The cohort's sample sheet, tiles and features, and the training run (module scope: one run)."""
    work = tmp_path_factory.mktemp("volume_learning")
    cohort, tiles, features, run = (work / n for n in ("cohort", "tiles", "features", "run"))
    cli("synth", "volume", "--out", cohort, "--n-patients", N_PATIENTS, "--seed", 0, "--shape", "[192,192,48]",
        "--dicom-fraction", 0)  # fmt: skip
    cli("tile", "--config", ROOT / "configs/tile/volume_pet_axial.yaml", "--samples", cohort / "samples.csv",
        "--out", tiles, "--workers", 2)  # fmt: skip
    cli("extract", "--config", ROOT / "configs/extract/resnet18_l1_grid_random.yaml", "--coords", tiles,
        "--out", features, "--device", "cpu")  # fmt: skip
    configs = ("model/abmil_small.yaml", "data/small_cohort.yaml", "trainer/fixed_epochs.yaml")
    cli("train", *[v for c in configs for v in ("--config", ROOT / "configs" / c)], "--samples", cohort / "samples.csv",
        "--features", features, "--out", run, "--task", "classification", "--accelerator", "cpu",
        "--class-weighting", "--max-epochs", 60, "--lr", 0.0005, "--n-boot", 200)  # fmt: skip
    return cohort / "samples.csv", tiles, run


@torch.inference_mode()
def attention_auroc(row: dict[str, str], tiles: Path, features: Path) -> float | None:
    """Slice-level AUROC of the fold model's raw attention for "crosses a lesion" (None: one kind only)."""
    system = MILSystem.load(row["checkpoint"]).eval()
    bag = read_bag(features / "h5_files" / f"{row['slide_id']}.h5")
    attention = system(torch.from_numpy(np.asarray(bag.features, np.float32))[None]).attention[0, :, 0].numpy()
    lesion = read_coords(tiles / "coords" / f"{row['slide_id']}.h5").lesion_fraction() > 0
    return float(roc_auc_score(lesion, attention)) if lesion.any() and not lesion.all() else None


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_gated_abmil_over_slices_finds_lesion_studies_and_slices(volume_run) -> None:
    samples, tiles, run = volume_run
    with open(run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    with open(samples) as f:
        patient_of = {r["volume_id"]: r["patient_id"] for r in csv.DictReader(f)}
    assert len(rows) == len(patient_of) > N_PATIENTS and len({r["fold"] for r in rows}) == 5
    folds_of_patient: dict[str, set[str]] = {}
    for r in rows:
        folds_of_patient.setdefault(patient_of[r["slide_id"]], set()).add(r["fold"])
    assert all(len(folds) == 1 for folds in folds_of_patient.values())  # a patient's studies share a fold
    labels = np.array([r["label"] == "1" for r in rows])
    oof_auroc = roc_auc_score(labels, [float(r["prob_1"]) for r in rows])
    assert oof_auroc >= 0.9, f"out-of-fold study AUROC {oof_auroc:.3f}"
    features = tiles.parent / "features"
    per_study = [a for r in rows if r["label"] == "1" if (a := attention_auroc(r, tiles, features)) is not None]
    assert len(per_study) >= 100
    assert np.mean(per_study) >= 0.8, f"mean slice-level attention AUROC {np.mean(per_study):.3f}"
