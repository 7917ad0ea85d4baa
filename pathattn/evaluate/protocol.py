"""The WSOL protocol: a held-out, fully annotated split chooses, the test split is scored once.

Choe et al. (CVPR 2020) show that WSOL numbers mean little when the operating threshold and the
heatmap's hyperparameters are tuned on the test set. Here, as in their protocol:

1. every candidate (a heatmap hyperparameter setting, a *variant*) is scored on the **calibration** split
   (their ``train-fullsup``: a few fully annotated slides or images);
2. the variant with the best threshold-free metric there (PxAP with masks, else MaxBoxAccV2) is chosen, and
   the operating thresholds are the calibration split's best: the τ of the highest pooled Dice (masks) and
   of the highest BoxAcc at IoU 0.5 with the largest component (boxes, the GT-known Loc threshold), each
   the middle of the longest run of thresholds that reach the best value;
3. the **test** split is scored once, with that variant and those thresholds.

Reports carry both splits: the calibration numbers of every variant and the test numbers of the choice.
Threshold-free metrics (PxAP, MaxBoxAcc, MaxBoxAccV2) are by definition maximised over τ on the split they
are computed on; the metrics at the calibrated τ (Dice, IoU, GT-known Loc, Top-1 Loc) are the honest ones.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pathattn.scoremaps import wsol


@dataclass(frozen=True)
class Sample:
    """The ground truth of one image or slide, in the pixel frame of its score map.

    Args:
        sample_id: the image or slide id.
        truth: (H, W) bool foreground mask, or None without masks.
        ignore: (H, W) bool pixels that count for nothing (outside the tissue, ignore boxes), or None.
        boxes: (K, 4) inclusive ground-truth boxes; None or empty leaves the sample out of box metrics.
        correct: whether the top-1 class prediction is right (Top-1 Loc), or None when unknown.
    """

    sample_id: str
    truth: np.ndarray | None = None
    ignore: np.ndarray | None = None
    boxes: np.ndarray | None = None
    correct: bool | None = None


@dataclass
class SplitScores:
    """What one method's maps scored on one split, at every threshold of the grid.

    Args:
        thresholds: (T,) the grid.
        pixels: the pooled pixel counts, or None without masks.
        per_sample: each sample's own pixel counts.
        box_ids: the ids of the B samples with boxes, in the order of the IoU rows.
        ious_largest: (B, T) IoU of the largest component's box.
        ious_every: (B, T) best IoU over all components' boxes.
        correct: (B,) top-1 correctness of the box samples, or None when any is unknown.
    """

    thresholds: np.ndarray
    pixels: wsol.PixelCounts | None = None
    per_sample: dict[str, wsol.PixelCounts] = field(default_factory=dict)
    box_ids: list[str] = field(default_factory=list)
    ious_largest: np.ndarray | None = None
    ious_every: np.ndarray | None = None
    correct: np.ndarray | None = None


def score_split(
    maps: Mapping[str, np.ndarray], samples: Mapping[str, Sample], thresholds: np.ndarray, mode: wsol.Mode
) -> SplitScores:
    """Score normalised maps (:func:`~pathattn.scoremaps.wsol.normalize_map`) against their samples.

    Each map is read once (``maps`` may load lazily: one map is in memory at a time).

    Raises:
        ValueError: a sample has no map, or a map disagrees with its sample (see :mod:`pathattn.scoremaps.wsol`).
    """
    missing = sorted(set(samples) - set(maps))
    if missing:
        raise ValueError(f"no score map for {', '.join(missing[:5])}")
    scores = SplitScores(thresholds)
    largest, every, correct = [], [], []
    for sample in samples.values():
        score = maps[sample.sample_id]
        if sample.truth is not None:
            scores.per_sample[sample.sample_id] = wsol.pixel_counts(score, sample.truth, thresholds, sample.ignore)
        if sample.boxes is not None and len(sample.boxes):
            ious = wsol.map_ious(score, sample.boxes, thresholds, mode)
            largest.append(ious[0])
            every.append(ious[1])
            correct.append(sample.correct)
            scores.box_ids.append(sample.sample_id)
    if scores.per_sample:
        scores.pixels = functools.reduce(operator.add, scores.per_sample.values())
    if scores.box_ids:
        scores.ious_largest, scores.ious_every = np.stack(largest), np.stack(every)
        if all(c is not None for c in correct):
            scores.correct = np.array(correct, bool)
    return scores


@dataclass(frozen=True)
class Operating:
    """The thresholds a calibration split chose (indices into the grid; None when that kind of truth is missing)."""

    pixel_index: int | None
    box_index: int | None


def plateau_centre(values: np.ndarray) -> int:
    """The index in the middle of the longest run of the best value (NaN ignored; 0 when all are NaN).

    With a few calibration samples BoxAcc is flat over ranges of thresholds; the middle of the widest such
    range is a steadier choice than its first threshold.
    """
    values = np.asarray(values, np.float64)
    if not np.isfinite(values).any():
        return 0
    best = np.concatenate([[False], values == np.nanmax(values), [False]])
    edges = np.flatnonzero(np.diff(best.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]  # each run is [start, end)
    longest = int(np.argmax(ends - starts))
    return int((starts[longest] + ends[longest] - 1) // 2)


def operating_point(scores: SplitScores) -> Operating:
    """The calibration split's thresholds: the best pooled Dice, the best BoxAcc(τ, 0.5) of the largest box.

    Each is the middle of the longest run of thresholds reaching the best value (:func:`plateau_centre`).
    """
    pixel = plateau_centre(scores.pixels.dice()) if scores.pixels is not None else None
    box = None
    if scores.ious_largest is not None:
        box = plateau_centre(wsol.box_accuracy(scores.ious_largest, 0.5))
    return Operating(pixel, box)


def selection_metric(scores: SplitScores) -> tuple[str, float]:
    """The metric that chooses among variants: PxAP with masks, else MaxBoxAccV2 (NaN: nothing to score)."""
    if scores.pixels is not None and scores.pixels.n_positive:
        return "pxap", scores.pixels.pxap()
    if scores.ious_every is not None:
        return "max_box_acc_v2", wsol.max_box_acc_v2(scores.ious_every)[0]
    return "none", float("nan")


def choose(candidates: Mapping[str, SplitScores]) -> tuple[str, Operating]:
    """The variant with the best selection metric on the calibration split (the first on ties) and its thresholds.

    Raises:
        ValueError: no candidate, or the calibration split has no positive pixel and no box to choose by.
    """
    if not candidates:
        raise ValueError("no candidate score maps to choose from")
    values = {name: selection_metric(scores)[1] for name, scores in candidates.items()}
    if not any(np.isfinite(v) for v in values.values()):
        raise ValueError(
            "the calibration split has no tumor pixel and no ground-truth box to calibrate on; "
            "put annotated positive samples in it"
        )
    best = max(values, key=lambda name: values[name] if np.isfinite(values[name]) else -np.inf)
    return best, operating_point(candidates[best])


def _pixel_summary(scores: SplitScores, pixels: wsol.PixelCounts, index: int | None) -> dict[str, Any]:
    dice, iou = pixels.dice(), pixels.iou()
    precision, recall = pixels.curve()
    out: dict[str, Any] = {"pxap": pixels.pxap(), "n_positive_pixels": pixels.n_positive}
    out["max_dice"] = float(np.nanmax(dice)) if np.isfinite(dice).any() else float("nan")
    if index is not None:
        per_sample = np.array([c.dice()[index] for c in scores.per_sample.values()])
        out |= {
            "threshold": float(scores.thresholds[index]),
            "dice": float(dice[index]),
            "iou": float(iou[index]),
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "mean_sample_dice": float(np.nanmean(per_sample)) if np.isfinite(per_sample).any() else float("nan"),
        }
    return out


def _box_summary(scores: SplitScores, largest: np.ndarray, every: np.ndarray, index: int | None) -> dict[str, Any]:
    tau = scores.thresholds
    accuracy, best = wsol.max_box_acc(largest)
    v2, per_delta = wsol.max_box_acc_v2(every)
    out: dict[str, Any] = {
        "n_box_samples": len(scores.box_ids),
        "max_box_acc": accuracy,
        "max_box_acc_threshold": float(tau[best]),
        "max_box_acc_v2": v2,
        **{f"max_box_acc_iou{round(d * 100)}": acc for d, (acc, _) in per_delta.items()},
        **{f"max_box_acc_iou{round(d * 100)}_threshold": float(tau[i]) for d, (_, i) in per_delta.items()},
    }
    if index is not None:
        out["box_threshold"] = float(tau[index])
        out["gt_known_loc"] = wsol.localization_accuracy(largest, index)
        if scores.correct is not None:
            out["top1_loc"] = wsol.localization_accuracy(largest, index, scores.correct)
    return out


def summarize(scores: SplitScores, operating: Operating | None = None) -> dict[str, Any]:
    """Every metric of a split: threshold-free ones, and those at the operating thresholds when given."""
    operating = operating or Operating(None, None)
    out: dict[str, Any] = {}
    if scores.pixels is not None:
        out |= _pixel_summary(scores, scores.pixels, operating.pixel_index)
    if scores.ious_largest is not None and scores.ious_every is not None:
        out |= _box_summary(scores, scores.ious_largest, scores.ious_every, operating.box_index)
    return out


def sample_rows(scores: SplitScores, operating: Operating) -> dict[str, dict[str, float]]:
    """Per sample: its own PxAP, Dice and IoU at the operating threshold, and its box IoUs there."""
    rows: dict[str, dict[str, float]] = {}
    for sample_id, counts in scores.per_sample.items():
        rows[sample_id] = {"pxap": counts.pxap(), "positive_pixels": counts.n_positive}
        if operating.pixel_index is not None:
            rows[sample_id] |= {
                "dice": counts.dice()[operating.pixel_index],
                "iou": counts.iou()[operating.pixel_index],
            }
    if scores.ious_largest is not None and operating.box_index is not None:
        for row, sample_id in enumerate(scores.box_ids):
            rows.setdefault(sample_id, {})["box_iou_largest"] = float(scores.ious_largest[row, operating.box_index])
    return rows
