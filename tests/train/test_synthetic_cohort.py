"""The learning check end to end: synthetic slides → tile → extract → train gated ABMIL → out-of-fold results.

The cohort (40 slides, half with planted tumor regions of 150-1100 µm, some with pen marks, folds and
debris) is tiled and embedded once per test session by :func:`tests.conftest.synthetic_cohort` with a
random-init ResNet-18 (seeded, so the features are the same on every run); gated ABMIL is trained on it by
the command line with the shipped configs for small cohorts (:func:`tests.conftest.trained_synthetic_run`).
The run is checked on its out-of-fold predictions:

* slide level: AUROC of the out-of-fold tumor probability at least 0.9;
* patch level: on each held-out tumor slide, the raw attention ranks tumor patches (at least half of the
  patch inside the annotation) above tumor-free ones with AUROC at least 0.8 on average. Patches that only
  touch a tumor border (0 < fraction < 0.5) are left out of this ranking.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pathattn.io.bags import read_bag
from pathattn.io.coords import read_coords
from pathattn.train.mil.system import MILSystem


@torch.inference_mode()
def attention_auroc(row: dict[str, str], cohort) -> float | None:
    """Patch-level AUROC of the fold model's raw attention for tumor on one held-out slide (None: one kind only)."""
    system = MILSystem.load(row["checkpoint"]).eval()
    bag = read_bag(cohort.features / "h5_files" / f"{row['slide_id']}.h5")
    attention = system(torch.from_numpy(np.asarray(bag.features, np.float32))[None]).attention[0, :, 0].numpy()
    fraction = read_coords(cohort.tiles / "coords" / f"{row['slide_id']}.h5").annotation_fraction[:, 0]
    clear = (fraction >= 0.5) | (fraction == 0)
    tumor = fraction[clear] >= 0.5
    return float(roc_auc_score(tumor, attention[clear])) if tumor.any() and not tumor.all() else None


@pytest.mark.slow
def test_gated_abmil_finds_tumor_slides_and_attends_to_tumor_patches(synthetic_cohort, trained_synthetic_run) -> None:
    with open(trained_synthetic_run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and len({r["fold"] for r in rows}) == 5
    labels = np.array([r["label"] == "1" for r in rows])
    oof_auroc = roc_auc_score(labels, [float(r["prob_1"]) for r in rows])
    assert oof_auroc >= 0.9, f"out-of-fold slide AUROC {oof_auroc:.3f}"
    per_slide = [a for r in rows if r["label"] == "1" if (a := attention_auroc(r, synthetic_cohort)) is not None]
    assert len(per_slide) >= 15
    assert np.mean(per_slide) >= 0.8, f"mean patch-level attention AUROC {np.mean(per_slide):.3f}"
