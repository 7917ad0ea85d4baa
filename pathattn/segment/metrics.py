"""Segmentation metrics of one case and their summary over a cohort.

Per case and foreground class (MONAI's implementations, in millimetres from the voxel spacing):

* **Dice** (``compute_dice``);
* **HD95**, the 95th percentile of the symmetric surface distances (``compute_hausdorff_distance``);
* **NSD**, the normalised surface Dice at a tolerance of ``tolerance_mm`` (``compute_surface_dice``).

Empty masks, where the metrics are undefined, follow fixed rules:

=====================  ======  ==========  =====
truth / prediction     Dice    HD95        NSD
=====================  ======  ==========  =====
both empty             1       0           1
truth empty only       0       undefined   0
prediction empty only  0       undefined   0
=====================  ======  ==========  =====

An undefined HD95 is written as an empty cell and left out of the means (the summary counts such cases).

**Lesions** are the 26-connected components of a class. A true lesion is *detected* when a predicted voxel of
the class lies in it; a predicted component is a *true positive* when it touches a true lesion. Recall is
reported by lesion volume (``size_bins``, mL) and overall; precision over all predicted components. The
**lesion-wise Dice** (BraTS 2023's, without its dilation of the truth) is the mean over every true lesion of its
Dice with the predicted components that touch it (0 when missed) and over every false-positive component (0
each): one number in which a missed small lesion weighs as much as a large one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_surface_dice
from scipy import ndimage

CONNECTIVITY = np.ones((3, 3, 3), bool)  # 26-connected components
DEFAULT_SIZE_BINS = (1.0, 5.0, 20.0)  # mL: lesions below 1 mL, 1-5, 5-20 and above 20


def size_bin_names(edges: Sequence[float]) -> list[str]:
    """``<1 mL``, ``1-5 mL``, ..., ``>20 mL`` for the edges ``(1, 5, 20)``."""
    text = [f"{e:g}" for e in edges]
    return [f"<{text[0]} mL", *(f"{a}-{b} mL" for a, b in zip(text, text[1:], strict=False)), f">{text[-1]} mL"]


def _one_hot(mask: np.ndarray) -> torch.Tensor:
    """(1, 2, *S) background/foreground of a bool mask."""
    fg = torch.from_numpy(np.ascontiguousarray(mask)).float()
    return torch.stack([1 - fg, fg])[None]


def surface_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], tolerance_mm: float) -> dict:
    """Dice, HD95 and NSD of one class's bool masks, by the rules of the module docstring."""
    p, t = bool(pred.any()), bool(truth.any())
    if not (p or t):
        return {"dice": 1.0, "hd95": 0.0, "nsd": 1.0}
    if not (p and t):
        return {"dice": 0.0, "hd95": math.nan, "nsd": 0.0}
    hp, ht = _one_hot(pred), _one_hot(truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's deprecation notes; empty masks are handled above
        return {
            "dice": float(compute_dice(hp, ht, include_background=False)[0, 0]),
            "hd95": float(compute_hausdorff_distance(hp, ht, include_background=False, percentile=95,
                                                     spacing=list(spacing))[0, 0]),
            "nsd": float(compute_surface_dice(hp, ht, [tolerance_mm], include_background=False,
                                              spacing=list(spacing))[0, 0]),
        }  # fmt: skip


def lesion_rows(pred: np.ndarray, truth: np.ndarray, voxel_ml: float) -> tuple[list[dict], int, int]:
    """Every true lesion (volume, whether detected, lesion-wise Dice) and the predicted components (all, touching one).

    Args:
        pred: (I, J, K) bool, one class's prediction.
        truth: (I, J, K) bool, its truth.
        voxel_ml: the volume of a voxel in mL.
    """
    truth_parts, n_truth = ndimage.label(truth, CONNECTIVITY)
    pred_parts, n_pred = ndimage.label(pred, CONNECTIVITY)
    rows = []
    for i in range(1, n_truth + 1):
        lesion = truth_parts == i
        touching = np.unique(pred_parts[lesion & pred])
        matched = np.isin(pred_parts, touching[touching > 0])
        size, overlap = int(lesion.sum()), int((lesion & matched).sum())
        dice = 2 * overlap / (size + int(matched.sum())) if overlap else 0.0
        rows.append({"lesion": i, "volume_ml": float(size * voxel_ml), "detected": bool(overlap), "dice": dice})
    true_components = np.unique(pred_parts[truth & pred])
    return rows, int(n_pred), int(np.count_nonzero(true_components))


def case_metrics(
    pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], n_classes: int, tolerance_mm: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-class metrics and lesion rows of one case.

    Args:
        pred: (I, J, K) predicted classes.
        truth: (I, J, K) true classes on the same grid.
        spacing: mm along i, j, k.
        n_classes: classes, background included.
        tolerance_mm: NSD tolerance.

    Returns:
        One row per foreground class (``class``, ``dice``, ``hd95``, ``nsd``, voxel counts, lesion counts) and one
        row per true lesion (``class``, ``lesion``, ``volume_ml``, ``detected``).
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows, lesions = [], []
    for c in range(1, n_classes):
        p, t = pred == c, truth == c
        found, n_pred, true_pred = lesion_rows(p, t, voxel_ml)
        rows.append({"class": c, **surface_metrics(p, t, spacing, tolerance_mm), "truth_ml": float(t.sum()) * voxel_ml,
                     "predicted_ml": float(p.sum()) * voxel_ml, "lesions": len(found),
                     "lesions_detected": sum(r["detected"] for r in found), "predicted_components": n_pred,
                     "true_positive_components": true_pred})  # fmt: skip
        lesions += [{"class": c, **r} for r in found]
    return rows, lesions


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else None


def summarize(
    class_rows: Sequence[Mapping[str, Any]], lesions: Sequence[Mapping[str, Any]], n_classes: int,
    size_bins: Sequence[float] = DEFAULT_SIZE_BINS,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per class: means over cases (all, and those with the class in the truth), lesion recall by size, precision."""
    names = size_bin_names(size_bins)
    summary = {}
    for c in range(1, n_classes):
        rows = [r for r in class_rows if r["class"] == c]
        positive = [r for r in rows if r["truth_ml"] > 0]
        found = [r for r in lesions if r["class"] == c]
        bins = np.digitize([r["volume_ml"] for r in found], size_bins) if found else np.zeros(0, int)
        by_size = {}
        for b, name in enumerate(names):
            members = [r for r, k in zip(found, bins, strict=True) if k == b]
            by_size[name] = {"lesions": len(members), "detected": sum(r["detected"] for r in members),
                             "recall": _mean([float(r["detected"]) for r in members])}  # fmt: skip
        n_pred = sum(r["predicted_components"] for r in rows)
        false_components = n_pred - sum(r["true_positive_components"] for r in rows)
        summary[str(c)] = {
            "cases": len(rows), "cases_with_class": len(positive),
            "dice_mean": _mean([r["dice"] for r in rows]), "dice_mean_positive": _mean([r["dice"] for r in positive]),
            "hd95_mean": _mean([r["hd95"] for r in rows]), "hd95_undefined": sum(math.isnan(r["hd95"]) for r in rows),
            "nsd_mean": _mean([r["nsd"] for r in rows]),
            "false_positive_cases": sum(r["truth_ml"] == 0 and r["predicted_ml"] > 0 for r in rows),
            "lesions": len(found), "lesion_recall": _mean([float(r["detected"]) for r in found]),
            "lesion_dice": _mean([r["dice"] for r in found] + [0.0] * false_components),
            "lesion_precision": sum(r["true_positive_components"] for r in rows) / n_pred if n_pred else None,
            "recall_by_size": by_size,
        }  # fmt: skip
    return summary
