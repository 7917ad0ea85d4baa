"""Precision-recall figures of a WSOL evaluation (matplotlib's object API, Agg canvas, no global state)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from pathattn.io.atomic import atomic_path
from pathattn.scoremaps.wsol import PixelCounts

_COLORS = matplotlib.colormaps["tab10"]


@dataclass(frozen=True)
class Curve:
    """One pixel precision-recall curve and its operating point.

    Args:
        counts: the pooled pixel counts of a split.
        index: the operating threshold's index in the grid, or None.
    """

    counts: PixelCounts
    index: int | None = None


def pr_figure(panels: Mapping[str, Mapping[str, Curve]]) -> Figure:
    """One panel per split (e.g. calibration, test), one curve per method or variant, PxAP in the legend.

    The operating point (the calibrated threshold) is a dot on its curve.
    """
    fig = Figure(figsize=(5.2 * max(1, len(panels)), 4.6))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (title, curves) in zip(axes, panels.items(), strict=False):
        for k, (label, curve) in enumerate(curves.items()):
            precision, recall = curve.counts.curve()
            finite = np.isfinite(precision)
            color = _COLORS(k % 10)
            name = f"{label} (PxAP {curve.counts.pxap():.3f})"
            ax.plot(recall[finite], precision[finite], color=color, lw=1.5, label=name)
            if curve.index is not None and finite[curve.index]:
                ax.plot(recall[curve.index], precision[curve.index], "o", color=color, ms=6)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="pixel recall", ylabel="pixel precision", title=title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def write_figure(path: str | os.PathLike[str], fig: Figure) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
