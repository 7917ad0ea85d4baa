"""Weakly supervised localization (WSOL) metrics of Choe et al. (CVPR 2020, TPAMI 2022).

Score maps ``s`` of shape (H, W) are min-max normalised to [0, 1] and swept over a grid of thresholds
``τ ∈ {0, Δ, 2Δ, ..., 1 - Δ}`` (``np.arange(0, 1, Δ)``, the published code's grid; Δ = ``step``).

* **BoxAcc(τ, δ)**: fraction of images where some box drawn from ``s`` at ``τ`` has IoU ≥ δ with some
  ground-truth box. **MaxBoxAcc** = max over τ of BoxAcc(τ, 0.5) with the box of the largest component;
  **MaxBoxAccV2** = mean over δ ∈ {0.3, 0.5, 0.7} of max over τ of BoxAcc(τ, δ) with the boxes of all
  components (τ maximised separately for each δ).
* **GT-known Loc** at a given τ: BoxAcc(τ, 0.5) with the largest component (maps of the true class);
  **Top-1 Loc**: the same and the image's top-1 class prediction correct.
* **PxAP**: area under the precision-recall curve of all pixels of all images pooled,
  ``PxPrec(τ) = |{s ≥ τ} ∩ T| / |{s ≥ τ}|``, ``PxRec(τ) = |{s ≥ τ} ∩ T| / |T|``; ignore pixels count as
  neither positive nor negative.

Two modes fix the conventions that the definitions leave open:

========================  ===========================================  ==============================================
step                      ``default``                                  ``reference`` (clovaai/wsolevaluation)
========================  ===========================================  ==============================================
NaN or inf in a map       ``ValueError``                               map set to zeros (``normalize_scoremap``)
foreground at τ           ``s ≥ τ`` on float scores                    ``uint8(255·s) > int(τ · max uint8(255·s))``
components                8-connected, outer boundaries only           ``RETR_TREE``: holes are contours (boxes) too
largest component         largest enclosed area (``cv2.contourArea``)  same
predicted box             inclusive ``[x, y, x+w-1, y+h-1]``           ``[x, y, min(x+w, W-1), min(y+h, H-1)]``
empty foreground          no box (IoU 0)                               the box ``[0, 0, 0, 0]``
ground-truth boxes        scaled to the map, rounded outwards          scaled to 224 x 224, truncated (``int``)
map size for boxes        any                                          224 x 224 only
========================  ===========================================  ==============================================

Both use inclusive ground-truth boxes ``x0, y0, x1, y1`` and the published IoU (areas with ``+1``,
degenerate pairs 0) and the same PxAP (histograms with the right edges ``[τ..., 1, 2, 3]``). Metrics are
fractions in [0, 1] (the paper prints percentages).

Sweeps are vectorised: pixel counts are histograms over the grid (one ``bincount`` per map), and box
sweeps trace contours once per *distinct* foreground (at most 256 in reference mode), then compute
boxes, areas and IoUs of every contour at every threshold in single array operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

Mode = Literal["default", "reference"]
MODES: tuple[Mode, ...] = ("default", "reference")
IOU_THRESHOLDS = (0.3, 0.5, 0.7)
REFERENCE_SIZE = 224


def threshold_grid(step: float = 0.001) -> np.ndarray:
    """The thresholds ``np.arange(0, 1, step)``: (T,) float64, 0 included, 1 excluded.

    Raises:
        ValueError: ``step`` is not in (0, 1).
    """
    if not 0.0 < step < 1.0:
        raise ValueError(f"threshold step must be in (0, 1), got {step}")
    return np.arange(0.0, 1.0, step)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")


def normalize_map(score_map: np.ndarray, region: np.ndarray | None = None, mode: Mode = "default") -> np.ndarray:
    """Min-max normalise a score map to [0, 1] (a constant map becomes zeros).

    Args:
        score_map: (H, W) scores, or (I, J, K) of a volume.
        region: bool of the map's shape; min and max are taken inside it and pixels outside are set to 0
            (e.g. the tissue of a slide). None: the whole map.
        mode: ``default`` refuses non-finite scores; ``reference`` turns a map with any non-finite score
            into zeros, as the published ``normalize_scoremap`` does.

    Returns:
        The map as float64 in [0, 1].

    Raises:
        ValueError: the map is not 2-D or 3-D, the region has another shape, or (default mode) a score is not finite.
    """
    _check_mode(mode)
    scores = np.asarray(score_map, np.float64)
    if scores.ndim not in (2, 3):
        raise ValueError(f"a score map must be 2-D (H, W) or 3-D (I, J, K); got shape {scores.shape}")
    inside = np.ones(scores.shape, bool) if region is None else np.asarray(region, bool)
    if inside.shape != scores.shape:
        raise ValueError(f"region of shape {inside.shape} does not match the score map's {scores.shape}")
    finite = np.isfinite(scores[inside])
    out = np.zeros(scores.shape)
    if not finite.all():
        if mode == "reference":
            return out
        raise ValueError(
            f"score map has {int((~finite).sum())} NaN or infinite values; mark undefined pixels with an "
            "ignore region (or a tissue region) instead"
        )
    if not inside.any():
        return out
    low, high = scores[inside].min(), scores[inside].max()
    if high > low:
        out[inside] = (scores[inside] - low) / (high - low)
    return out


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of inclusive boxes ``x0, y0, x1, y1`` (areas ``(x1 - x0 + 1)(y1 - y0 + 1)``), as the published code.

    Args:
        boxes_a: (A, 4).
        boxes_b: (B, 4).

    Returns:
        (A, B) float64; 0 where the union is not positive.
    """
    a = np.asarray(boxes_a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(boxes_b, np.float64).reshape(1, -1, 4)
    width = np.maximum(0.0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    height = np.maximum(0.0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def scale_boxes(
    boxes: np.ndarray, image_size: tuple[int, int], map_size: tuple[int, int], mode: Mode = "default"
) -> np.ndarray:
    """Ground-truth boxes of an image in the pixel frame of its score map.

    Args:
        boxes: (K, 4) inclusive ``x0, y0, x1, y1`` in image pixels.
        image_size: (width, height) of the image.
        map_size: (width, height) of the score map (reference mode: always 224 x 224).
        mode: ``default`` rounds outwards (every map pixel the box touches is inside);
            ``reference`` scales the corners and truncates them with ``int``, as ``resize_bbox`` does.

    Returns:
        (K, 4) int64.
    """
    _check_mode(mode)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if mode == "reference":
        map_size = (REFERENCE_SIZE, REFERENCE_SIZE)
    scale = np.tile(np.asarray(map_size, np.float64) / np.asarray(image_size, np.float64), 2)
    if mode == "reference":
        return np.trunc(boxes * scale).astype(np.int64)
    start = np.floor(boxes[:, :2] * scale[:2])
    end = np.ceil((boxes[:, 2:] + 1) * scale[2:]) - 1
    limit = np.asarray(map_size) - 1
    return np.concatenate([np.clip(start, 0, limit), np.clip(end, 0, limit)], axis=1).astype(np.int64)


def _levels(scores: np.ndarray, thresholds: np.ndarray, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
    """An integer level per pixel and a cut per threshold such that foreground(τ_i) = ``level >= cut[i]``."""
    if mode == "reference":
        image = (scores * 255).astype(np.uint8)
        cut = np.floor(thresholds * image.max()).astype(np.int64) + 1  # strict '>' on the quantised map
        return image, cut
    level = np.searchsorted(thresholds, scores, side="right")  # number of thresholds <= s
    return level.astype(np.uint16 if len(thresholds) < 65536 else np.int64), np.arange(1, len(thresholds) + 1)


def _traced_boxes(
    levels: np.ndarray, cut: np.ndarray, mode: Mode
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes and areas of the contours of every distinct foreground, each foreground traced once.

    Returns:
        boxes: (C, 4) of all distinct foregrounds' contours, in order, in the mode's corner convention;
        areas: (C,) enclosed areas (``cv2.contourArea``);
        group: (T,) index of each threshold's foreground among the G distinct ones;
        count: (G,) number of contours of each distinct foreground.
    """
    present = np.flatnonzero(np.bincount(levels.ravel())).astype(levels.dtype)
    distinct, group = np.unique(np.searchsorted(present, cut), return_inverse=True)  # len(present): empty
    retrieval = cv2.RETR_TREE if mode == "reference" else cv2.RETR_EXTERNAL
    rects: list[tuple[int, int, int, int]] = []
    areas: list[float] = []
    count = np.zeros(len(distinct), np.int64)
    top, bottom, left, right = 0, levels.shape[0], 0, levels.shape[1]
    for g, index in enumerate(distinct):  # rising levels: each foreground lies inside the previous one's boxes
        if index == len(present):
            break  # the empty foreground sorts last
        foreground = (levels[top:bottom, left:right] >= present[index]).view(np.uint8)
        found = cv2.findContours(foreground, retrieval, cv2.CHAIN_APPROX_SIMPLE, offset=(left, top))[0]
        boxes = [cv2.boundingRect(c) for c in found]
        rects += boxes
        areas += [cv2.contourArea(c) for c in found]
        count[g] = len(found)
        left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
        right, bottom = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    x, y, w, h = np.asarray(rects, np.int64).reshape(-1, 4).T
    if mode == "reference":  # x + w and y + h, clipped to the last pixel
        x1, y1 = np.minimum(x + w, levels.shape[1] - 1), np.minimum(y + h, levels.shape[0] - 1)
    else:
        x1, y1 = x + w - 1, y + h - 1
    return np.stack([x, y, x1, y1], axis=1), np.asarray(areas, np.float64), group.reshape(-1), count


def map_ious(
    score_map: np.ndarray, gt_boxes: np.ndarray, thresholds: np.ndarray, mode: Mode = "default"
) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU with the ground truth of the boxes drawn from one map, at every threshold.

    Args:
        score_map: (H, W) normalised to [0, 1] (:func:`normalize_map`).
        gt_boxes: (K, 4) inclusive boxes in the map's pixel frame, K >= 1.
        thresholds: (T,) the grid (:func:`threshold_grid`).
        mode: the conventions (module docstring).

    Returns:
        largest: (T,) the IoU of the largest component's box; every: (T,) the best IoU over all boxes.

    Raises:
        ValueError: no ground-truth box, or (reference mode) a map that is not 224 x 224.
    """
    _check_mode(mode)
    gt = np.asarray(gt_boxes).reshape(-1, 4)
    if len(gt) == 0:
        raise ValueError("an image without ground-truth boxes cannot be scored by box metrics")
    scores = np.asarray(score_map, np.float64)
    if mode == "reference" and scores.shape != (REFERENCE_SIZE, REFERENCE_SIZE):
        raise ValueError(f"reference mode needs 224 x 224 score maps (resize them first); got {scores.shape}")
    boxes, areas, group, count = _traced_boxes(*_levels(scores, thresholds, mode), mode)
    if mode == "reference":  # a foreground without contours is the box [0, 0, 0, 0]
        empty = np.flatnonzero(count == 0)
        offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
        boxes = np.insert(boxes, offsets[empty], 0, axis=0)
        areas = np.insert(areas, offsets[empty], 0.0)
        count = np.maximum(count, 1)
    best = box_iou(boxes, gt).max(axis=1) if len(boxes) else np.zeros(0)
    largest, every = np.zeros(len(count)), np.zeros(len(count))
    filled = np.flatnonzero(count > 0)
    if len(filled):
        start = np.concatenate([[0], np.cumsum(count)[:-1]])[filled]
        every[filled] = np.maximum.reduceat(best, start)
        top = np.repeat(np.maximum.reduceat(areas, start), count[filled])
        index = np.where(areas == top, np.arange(len(areas)), len(areas))  # the first largest, as max()
        largest[filled] = best[np.minimum.reduceat(index, start)]
    return largest[group], every[group]


def box_accuracy(ious: np.ndarray, delta: float) -> np.ndarray:
    """BoxAcc(τ, δ) for every threshold: (T,) fraction of the N images with IoU ≥ δ, from (N, T) IoUs."""
    return (np.asarray(ious) >= delta).mean(axis=0)


def max_box_acc(ious_largest: np.ndarray, delta: float = 0.5) -> tuple[float, int]:
    """MaxBoxAcc (the CVPR version: largest component, δ = 0.5) and the index of the best threshold."""
    accuracy = box_accuracy(ious_largest, delta)
    best = int(np.argmax(accuracy))
    return float(accuracy[best]), best


def max_box_acc_v2(
    ious_every: np.ndarray, deltas: Sequence[float] = IOU_THRESHOLDS
) -> tuple[float, dict[float, tuple[float, int]]]:
    """MaxBoxAccV2: the mean over δ of MaxBoxAcc(δ) on all components' boxes, τ maximised per δ.

    Returns:
        The mean, and per δ its MaxBoxAcc and best threshold index.
    """
    per_delta = {float(d): max_box_acc(ious_every, d) for d in deltas}
    return float(np.mean([acc for acc, _ in per_delta.values()])), per_delta


def localization_accuracy(ious_largest: np.ndarray, index: int, correct: np.ndarray | None = None) -> float:
    """GT-known Loc at threshold ``index`` (IoU ≥ 0.5, largest component), or Top-1 Loc given ``correct``.

    Args:
        ious_largest: (N, T) IoUs of the largest component.
        index: the threshold's index in the grid.
        correct: (N,) bool, whether each image's top-1 class prediction is right (None: GT-known Loc).
    """
    hit = np.asarray(ious_largest)[:, index] >= 0.5
    if correct is not None:
        correct = np.asarray(correct, bool).reshape(-1)
        if correct.shape != hit.shape:
            raise ValueError(f"{len(correct)} classification flags for {len(hit)} images")
        hit &= correct
    return float(hit.mean())


class PixelCounts:
    """Histograms of the scores of positive and negative pixels over the threshold grid, poolable with ``+``.

    Bin ``i < T`` holds scores in ``[τ_i, τ_{i+1})`` (the last one ``[τ_{T-1}, 1)``), bin ``T`` holds 1.0 and
    bin ``T + 1`` is the published code's empty ``[2, 3]`` bin, so that ``pxap`` matches it exactly.

    Args:
        thresholds: (T,) the grid.
        positive: (T + 2,) counts of ground-truth positive pixels per bin.
        negative: (T + 2,) counts of negative pixels per bin.
    """

    def __init__(self, thresholds: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> None:
        self.thresholds = np.asarray(thresholds, np.float64)
        self.positive = np.asarray(positive, np.float64)
        self.negative = np.asarray(negative, np.float64)

    def __add__(self, other: PixelCounts) -> PixelCounts:
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("pixel counts on different threshold grids cannot be pooled")
        return PixelCounts(self.thresholds, self.positive + other.positive, self.negative + other.negative)

    @property
    def n_positive(self) -> int:
        return int(self.positive.sum())

    def overlap(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True positives, false positives and false negatives of ``s ≥ τ`` at each threshold: 3 x (T,)."""
        size = len(self.thresholds)
        tp = np.cumsum(self.positive[::-1])[::-1][:size]
        fp = np.cumsum(self.negative[::-1])[::-1][:size]
        return tp, fp, self.positive.sum() - tp

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at each threshold: 2 x (T,); precision NaN where nothing is predicted."""
        tp, fp, fn = self.overlap()
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / (tp + fp), tp / (tp + fn)

    def dice(self) -> np.ndarray:
        """Dice of ``s ≥ τ`` at each threshold: (T,); NaN where both the truth and the prediction are empty."""
        tp, fp, fn = self.overlap()
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2 * tp / (2 * tp + fp + fn)

    def iou(self) -> np.ndarray:
        """Jaccard index of ``s ≥ τ`` at each threshold: (T,); NaN where both are empty."""
        tp, fp, fn = self.overlap()
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / (tp + fp + fn)

    def pxap(self) -> float:
        """PxAP: ``Σ precision · Δrecall`` from the highest threshold down, as the published ``MaskEvaluator``.

        Returns NaN when there is no positive pixel (the published code raises there).
        """
        if self.n_positive == 0:
            return float("nan")
        tp, fp = np.cumsum(self.positive[::-1]), np.cumsum(self.negative[::-1])
        predicted = tp + fp
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = tp / self.positive.sum()
        return float((precision[1:] * np.diff(recall))[predicted[1:] > 0].sum())


def pixel_counts(
    score_map: np.ndarray, gt_mask: np.ndarray, thresholds: np.ndarray, ignore: np.ndarray | None = None
) -> PixelCounts:
    """Pixel counts of one map (:class:`PixelCounts`).

    Args:
        score_map: (H, W) normalised to [0, 1].
        gt_mask: (H, W) bool, the ground-truth foreground.
        thresholds: (T,) the grid.
        ignore: (H, W) bool, pixels counted neither as positive nor as negative (the published code's ignore
            region is the ignore boxes minus the foreground: a pixel in both counts as positive here too).

    Raises:
        ValueError: shapes differ (resize the map first, see ``docs/evaluate.md``), or scores outside [0, 1].
    """
    scores = np.asarray(score_map, np.float64)
    truth = np.asarray(gt_mask, bool)
    skip = np.zeros(truth.shape, bool) if ignore is None else np.asarray(ignore, bool) & ~truth
    if scores.shape != truth.shape or skip.shape != truth.shape:
        raise ValueError(
            f"score map {scores.shape}, mask {truth.shape} and ignore region {skip.shape} must have one shape; "
            "resize the maps to the masks first"
        )
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("scores must be normalised to [0, 1] (normalize_map) and finite")
    edges = np.concatenate([thresholds, [1.0, 2.0, 3.0]])
    bins = np.searchsorted(edges, scores, side="right") - 1
    size = len(edges) - 1
    positive = np.bincount(bins[truth], minlength=size)
    negative = np.bincount(bins[~truth & ~skip], minlength=size)
    return PixelCounts(thresholds, positive, negative)
