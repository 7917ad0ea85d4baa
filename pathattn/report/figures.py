"""Figures of the report, each returned as a ``data:`` URI so that the HTML file needs nothing beside it.

Matplotlib is used through its object-oriented API (``Figure``, rendered by the Agg canvas), never through
pyplot, so that building a report changes no global state and needs no display.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import cv2
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from pathattn.report.stats import kaplan_meier

MAX_IMAGE_SIDE = 800  # pixels on the long side of an inlined slide image
_COLORS = matplotlib.colormaps["tab10"]


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_uri(fig: Figure) -> str:
    """A matplotlib figure as a PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return _data_uri("image/png", buffer.getvalue())


def image_uri(image: np.ndarray, max_side: int = MAX_IMAGE_SIDE, quality: int = 85) -> str:
    """An RGB image as a JPEG data URI, shrunk to at most ``max_side`` pixels on its long side.

    Args:
        image: (H, W, 3) uint8 RGB.
        max_side: the long side of the encoded image (never enlarged).
        quality: JPEG quality, 0-100.
    """
    shrink = min(1.0, max_side / max(image.shape[:2]))
    if shrink < 1.0:
        image = cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as JPEG")
    return _data_uri("image/jpeg", encoded.tobytes())


def curve_classes(classes: Sequence[str]) -> list[int]:
    """The classes that get a curve: the positive class (index 1) of a binary task, else every class."""
    return [1] if len(classes) == 2 else list(range(len(classes)))


def _fold_curves(
    roc_ax: Axes, pr_ax: Axes, positive: np.ndarray, score: np.ndarray, folds: np.ndarray, color: tuple[float, ...]
) -> None:
    """Faint ROC and PR curves of each fold where both the class and the rest occur.

    Args:
        roc_ax: the ROC axes.
        pr_ax: the precision-recall axes.
        positive: (N,) bool, True for the class drawn.
        score: (N,) its probability.
        folds: (N,) fold of each slide.
        color: RGBA of the class.
    """
    for fold in np.unique(folds):
        inside = folds == fold
        if 0 < positive[inside].sum() < inside.sum():
            fpr, tpr, _ = roc_curve(positive[inside], score[inside])
            precision, recall, _ = precision_recall_curve(positive[inside], score[inside])
            roc_ax.plot(fpr, tpr, color=color, alpha=0.25, lw=0.8)
            pr_ax.plot(recall, precision, color=color, alpha=0.25, lw=0.8, drawstyle="steps-post")


def _finish_roc_pr(roc_ax: Axes, pr_ax: Axes, roc_title: str, pr_title: str, legend_size: int) -> None:
    """The chance diagonal, labels, limits and legends of a pair of ROC and precision-recall axes."""
    roc_ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title=roc_title)
    pr_ax.set(xlabel="recall", ylabel="precision", title=pr_title)
    for ax in (roc_ax, pr_ax):
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.legend(loc="lower right" if ax is roc_ax else "lower left", fontsize=legend_size)


def roc_pr_figure(
    labels: np.ndarray, probs: np.ndarray, folds: np.ndarray, classes: Sequence[str]
) -> tuple[str, dict[str, dict[str, float]]]:
    """ROC and precision-recall curves of out-of-fold predictions, one-vs-rest per class.

    Bold curves pool every fold's test predictions; faint ones are the single folds. A binary task draws
    the positive class (index 1), as the metrics do; a multi-class task draws one curve per class.

    Args:
        labels: (N,) class indices.
        probs: (N, C) class probabilities.
        folds: (N,) the fold whose test set held each slide.
        classes: the C class names.

    Returns:
        The figure as a PNG data URI, and per drawn class (present and absent in ``labels``) its pooled
        ``auroc`` and ``auprc`` (average precision).
    """
    fig = Figure(figsize=(10, 4.2))
    roc_ax, pr_ax = fig.subplots(1, 2)
    pooled = {}
    for i, c in enumerate(curve_classes(classes)):
        color, positive, score = _COLORS(i % 10), labels == c, probs[:, c]
        if not 0 < positive.sum() < len(positive):
            continue
        _fold_curves(roc_ax, pr_ax, positive, score, folds, color)
        pooled[classes[c]] = {
            "auroc": float(roc_auc_score(positive, score)),
            "auprc": float(average_precision_score(positive, score)),
        }
        fpr, tpr, _ = roc_curve(positive, score)
        precision, recall, _ = precision_recall_curve(positive, score)
        roc_ax.plot(fpr, tpr, color=color, lw=2, label=f"{classes[c]} (AUC {pooled[classes[c]]['auroc']:.3f})")
        pr_ax.plot(
            recall,
            precision,
            color=color,
            lw=2,
            drawstyle="steps-post",
            label=f"{classes[c]} (AP {pooled[classes[c]]['auprc']:.3f})",
        )
        pr_ax.axhline(positive.mean(), color=color, lw=0.8, ls=":")
    _finish_roc_pr(roc_ax, pr_ax, "ROC (out of fold)", "Precision-recall (dotted: prevalence)", 8)
    return figure_uri(fig), pooled


def km_figure(time: np.ndarray, event: np.ndarray, high: np.ndarray, p_value: float) -> str:
    """Kaplan-Meier curves of the low- and high-risk groups, censoring marked with ticks.

    Args:
        time: (N,) follow-up times.
        event: (N,) 1 = event, 0 = censored.
        high: (N,) bool, True for the high-risk group.
        p_value: the log-rank p-value, written in the title (nan: not computable).

    Returns:
        The figure as a PNG data URI.
    """
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for group, name, color in ((False, "low risk", "tab:blue"), (True, "high risk", "tab:red")):
        inside = high == group
        if not inside.any():
            continue
        t, e = time[inside], event[inside]
        steps, survival = kaplan_meier(t, e)
        ax.step(
            np.append(steps, t.max()),
            np.append(survival, survival[-1]),
            where="post",
            color=color,
            lw=2,
            label=f"{name} (n={inside.sum()}, events={int(e.sum())})",
        )
        censored = t[e == 0]
        ax.plot(censored, survival[np.searchsorted(steps, censored, side="right") - 1], "|", color=color, ms=9)
    title = f"log-rank p = {p_value:.3g}" if np.isfinite(p_value) else "log-rank test not computable"
    ax.set(xlabel="time", ylabel="survival probability", ylim=(-0.02, 1.02), title=title)
    ax.legend(loc="lower left", fontsize=8)
    return figure_uri(fig)


def runs_roc_pr_figure(runs: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """ROC and precision-recall curves of several binary classifiers on one pair of axes.

    Args:
        runs: name to (labels (N,) in {0, 1}, scores (N,) of the positive class), each pooled out of fold.

    Returns:
        The figure as a PNG data URI.
    """
    fig = Figure(figsize=(10, 4.2))
    roc_ax, pr_ax = fig.subplots(1, 2)
    for i, (name, (labels, scores)) in enumerate(runs.items()):
        if not 0 < labels.sum() < len(labels):
            continue
        color = _COLORS(i % 10)
        fpr, tpr, _ = roc_curve(labels, scores)
        precision, recall, _ = precision_recall_curve(labels, scores)
        roc_ax.plot(fpr, tpr, color=color, lw=1.6, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
        ap = average_precision_score(labels, scores)
        pr_ax.plot(recall, precision, color=color, lw=1.6, drawstyle="steps-post", label=f"{name} (AP {ap:.3f})")
    _finish_roc_pr(roc_ax, pr_ax, "ROC (slices, out of fold)", "Precision-recall (slices, out of fold)", 7)
    return figure_uri(fig)


def map_gallery_figure(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], maps: dict[str, Sequence[np.ndarray]]
) -> str:
    """A grid of images (rows) by score maps (columns), each map over its image with the lesion contour.

    Args:
        images: per row, (H, W, 3) uint8 RGB as the network saw it.
        masks: per row, (H, W) bool lesion mask.
        maps: method to its per-row (H, W) maps in [0, 1].

    Returns:
        The figure as a PNG data URI.
    """
    columns = ["image", *maps]
    fig = Figure(figsize=(1.7 * len(columns), 1.8 * len(images)))
    axes = np.asarray(fig.subplots(len(images), len(columns), squeeze=False))
    for row, (image, mask) in enumerate(zip(images, masks, strict=True)):
        for col, name in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(image, interpolation="nearest")
            if name != "image":
                ax.imshow(maps[name][row], cmap="jet", alpha=0.5, vmin=0, vmax=1, interpolation="bilinear")
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="white", linewidths=1.0)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(name, fontsize=8)
    fig.subplots_adjust(wspace=0.03, hspace=0.03)
    return figure_uri(fig)


def case_dice_figure(runs: dict[str, Sequence[float]]) -> str:
    """The Dice of every held-out case of each run as a strip of dots, one row per run, its mean marked.

    Args:
        runs: row label (a run, or a run and class) to the Dice of its cases, each in [0, 1].

    Returns:
        The figure as a PNG data URI.
    """
    fig = Figure(figsize=(8, 0.9 + 0.45 * len(runs)))
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # the same jitter on every report
    for row, dice in enumerate(runs.values()):
        values = np.asarray(dice, np.float64)
        color = _COLORS(row % 10)
        ax.scatter(values, row + rng.uniform(-0.15, 0.15, len(values)), s=16, color=color, alpha=0.7, lw=0)
        if len(values):
            ax.plot([values.mean()] * 2, [row - 0.3, row + 0.3], color=color, lw=2)
    ax.set_yticks(range(len(runs)), list(runs), fontsize=8)
    ax.set(xlim=(-0.02, 1.02), ylim=(len(runs) - 0.5, -0.5), xlabel="Dice of each held-out volume with a lesion")
    ax.grid(axis="x", color="#e4e4e4", lw=0.8)
    ax.set_axisbelow(True)
    return figure_uri(fig)
