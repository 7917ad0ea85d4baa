"""Figures of the explain stage, drawn from a slide's record (:func:`pathattn.explain.slide.explain_slide`).

* ``{slide_id}_curves.png``: the objective against the number of patches removed (greedy search order,
  attention order, random order with its spread) and, with an insertion search, against donor patches added;
* ``{slide_id}_effects.png``: each patch's attention against the effect of removing it alone;
* ``{slide_id}_patches.png``: the slide thumbnail with the patches the search found (red), the top-attention
  patches (blue) and the annotated region (green) outlined.

Matplotlib is used through ``Figure`` objects (no pyplot state); every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from shapely.geometry.base import BaseGeometry

from pathattn.io.atomic import atomic_path
from pathattn.io.ids import check_id, output_path
from pathattn.io.slide import Slide
from pathattn.scoremaps.images import slide_thumbnail, write_png
from pathattn.scoremaps.render import draw_patches, draw_polygons

FOUND = (220, 30, 30)
ATTENDED = (30, 90, 230)
REGION = (0, 170, 0)
PROBABILITY_TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure as PNG atomically and return its path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def _array(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], np.float64)


def curves_figure(record: Mapping[str, Any]) -> Figure:
    """Objective against patches removed (and added, with an insertion search) of one slide's record."""
    insertion = record.get("insertion")
    fig = Figure(figsize=(11 if insertion else 6, 4), layout="constrained")
    axes = fig.subplots(1, 2 if insertion else 1, squeeze=False)[0]
    curves, label = record["curves"], f"{record['target']['objective']} of class {record['target']['class']}"
    x = np.asarray(curves["removed"])
    mean, sd = _array(curves["random_mean"]), _array(curves["random_sd"])
    axes[0].fill_between(x, mean - sd, mean + sd, color="grey", alpha=0.25, lw=0)
    axes[0].plot(x, mean, color="grey", label="random (mean ± sd)")
    axes[0].plot(x, _array(curves["attention"]), color="tab:blue", marker=".", label="top attention first")
    axes[0].plot(x, _array(curves["search"]), color="tab:red", marker=".", label="HIPPO search (greedy)")
    axes[0].set(xlabel="patches removed", ylabel=label, title=f"{record['slide_id']}: removal")
    if insertion:
        values = _array(insertion["values"])
        axes[1].plot(np.arange(len(values)), values, color="tab:green", marker=".", label="greedy insertion")
        if insertion.get("flipped_at") is not None:
            axes[1].axvline(insertion["flipped_at"], color="k", ls=":", lw=0.8, label="decision flips")
        inserted = f"{insertion['objective']} of class {insertion['class']}"
        axes[1].set(xlabel=f"patches of {insertion['donor']} added", ylabel=inserted, title="insertion")
    for ax in axes:
        if record["target"]["objective"] == "log_odds":  # log(p / (1 - p)): the class probability is exact
            ax.axhline(0.0, color="k", lw=0.6, ls="--")
            probability = ax.secondary_yaxis("right", functions=(_sigmoid, _log_odds))
            probability.set_yticks(PROBABILITY_TICKS)
            probability.set_yticklabels([f"{p:g}" for p in PROBABILITY_TICKS], fontsize=7)
            probability.set_ylabel("probability")
        ax.legend(fontsize=8)
    return fig


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -700, 700)))


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-300, 1 - 1e-16)
    return np.log(p) - np.log1p(-p)


def effects_figure(record: Mapping[str, Any]) -> Figure:
    """Attention against single-patch removal effect, with Spearman's rho."""
    attention = _array(record["patches"]["attention"])
    effect = _array(record["patches"]["single_effect"])
    rho = record["compare"]["spearman"]["rho"]
    fig = Figure(figsize=(5.5, 4))
    ax = fig.subplots()
    ax.scatter(attention, effect, s=8, color="tab:purple", alpha=0.7)
    found = np.asarray(record["compare"]["top_effect"], np.int64)
    ax.scatter(attention[found], effect[found], s=30, facecolors="none", edgecolors="tab:red", label="HIPPO set")
    ax.axhline(0.0, color="k", lw=0.6, ls="--")
    title = f"{record['slide_id']}: Spearman rho = {rho:.2f}" if rho is not None else record["slide_id"]
    ax.set(xlabel="attention (ranking score)", ylabel="effect of removing the patch alone", title=title)
    ax.legend(fontsize=8)
    return fig


def outline_patches(
    thumbnail: np.ndarray,
    level0_per_px: float,
    coords: np.ndarray,
    patch_size_level0: int,
    groups: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    region: BaseGeometry | None = None,
) -> np.ndarray:
    """Outline sets of patches (and a region) on a thumbnail.

    Args:
        thumbnail: (H, W, 3) uint8 RGB image of the slide.
        level0_per_px: level-0 pixels per thumbnail pixel.
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        groups: (indices, RGB colour) per set, drawn in order (later sets on top).
        region: a (Multi)Polygon in level-0 pixels, outlined in green.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    image = np.ascontiguousarray(thumbnail.copy())
    scale = 1.0 / level0_per_px
    if region is not None:
        draw_polygons(image, region, scale, REGION)
    for indices, color in groups:
        draw_patches(image, np.asarray(coords)[indices], patch_size_level0, scale, color, thickness=2, min_side=2)
    return image


def patches_image(
    record: Mapping[str, Any],
    slide_path: str | os.PathLike[str],
    coords: np.ndarray,
    patch_size_level0: int,
    region: BaseGeometry | None = None,
) -> np.ndarray:
    """The thumbnail (about 1024 px on the long side) with the record's found and top-attention patches."""
    with Slide(slide_path) as slide:
        thumbnail, level0_per_px = slide_thumbnail(slide)
    found = record.get("ablated_patches") or record.get("compare", {}).get("top_effect", [])
    attended = record.get("compare", {}).get("top_attention", [])
    groups = [(np.asarray(attended, np.int64), ATTENDED), (np.asarray(found, np.int64), FOUND)]
    return outline_patches(thumbnail, level0_per_px, coords, patch_size_level0, groups, region)


def write_slide_figures(
    record: Mapping[str, Any],
    out: str | os.PathLike[str],
    *,
    slide_path: str | os.PathLike[str] | None = None,
    coords: np.ndarray | None = None,
    patch_size_level0: int | None = None,
    region: BaseGeometry | None = None,
) -> dict[str, str]:
    """Write the figures a record allows (module docstring) under ``out``; return name -> file path.

    The curves and effects need the ``compare`` block; the thumbnail needs the slide file and coordinates.
    """
    slide_id = check_id(record["slide_id"])
    written = {}
    if "compare" in record:
        written["curves"] = str(save_figure(curves_figure(record), output_path(out, f"{slide_id}_curves.png")))
        written["effects"] = str(save_figure(effects_figure(record), output_path(out, f"{slide_id}_effects.png")))
    if slide_path is not None and coords is not None and patch_size_level0:
        image = patches_image(record, slide_path, coords, patch_size_level0, region)
        path = output_path(out, f"{slide_id}_patches.png")
        write_png(path, image)
        written["patches"] = str(path)
    return written
