"""Baselines of whole-slide localization, scored beside the model's maps.

* ``uniform``: the same score everywhere in the tissue, the analogue of Choe et al.'s centre baseline (a map
  that knows nothing). Its PxAP is the tumor prevalence of the pooled tissue pixels; its patch AUROC is 0.5.
* ``few_shot``: the analogue of their few-shot learning (FSL) baseline: a patch classifier trained with
  full supervision on the calibration split only (the fully annotated slides the protocol already
  spends on choosing thresholds), then applied to the test slides' patches. It is a logistic regression on
  the standardised patch features (class-balanced), with patches at least half inside the tumor as
  positives and tumor-free patches as negatives (border patches are left out of training). Its threshold
  is calibrated on the same slides it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from pathattn.errors import PathattnError
from pathattn.io.bags import read_bag

BASELINES = ("uniform", "few_shot")


def read_features(features: Path, slide_id: str, n_patches: int) -> np.ndarray:
    """A slide's patch features (N, D) float32 from ``FEATURES/h5_files/{slide_id}.h5``.

    Raises:
        PathattnError: the file is missing or has another number of patches than the scores.
    """
    path = features / "h5_files" / f"{slide_id}.h5"
    if not path.is_file():
        raise PathattnError(f"the few-shot baseline needs the features of {slide_id}: {path} not found")
    array = np.asarray(read_bag(path).features, np.float32)
    if len(array) != n_patches:
        raise PathattnError(f"{path} has {len(array)} patches but the scores of {slide_id} have {n_patches}")
    return array


def fit_few_shot(features: Sequence[np.ndarray], labels: Sequence[np.ndarray], seed: int = 0) -> Pipeline:
    """Train the few-shot patch classifier.

    Args:
        features: per calibration slide, (N_i, D) patch features.
        labels: per slide, (N_i,) patch labels: 1 tumor, 0 tumor-free, -1 left out.
        seed: random state of the solver.

    Raises:
        PathattnError: the calibration slides lack tumor or tumor-free patches.
    """
    x = np.concatenate([np.asarray(f, np.float32) for f in features])
    y = np.concatenate([np.asarray(label) for label in labels])
    keep = y >= 0
    if not ((y[keep] == 1).any() and (y[keep] == 0).any()):
        raise PathattnError(
            "the few-shot baseline needs tumor and tumor-free patches on the calibration slides; "
            "add annotated tumor slides to the calibration split or leave the baseline out"
        )
    model = make_pipeline(
        StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed)
    )
    return model.fit(x[keep], y[keep])


def few_shot_scores(model: Pipeline, features: np.ndarray) -> np.ndarray:
    """Tumor probability of each patch: (N,) float64."""
    return model.predict_proba(np.asarray(features, np.float32))[:, 1].astype(np.float64)
