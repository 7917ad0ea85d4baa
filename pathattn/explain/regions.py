"""Regions of a slide as sets of patches: by index, by attention rank, or by annotation polygons.

* :func:`check_indices`: patch indices given by the user, checked (in range, no repeats).
* :func:`top_ranked`: the highest-scoring patches (top-k or the top ``ceil(q * N)``); :func:`ranking_scores`
  reduces a model's (N, K) attention to one score per patch.
* :func:`patches_in_annotations`: the patches that a GeoJSON region covers (level-0 pixels, as QuPath and
  ``pathattn tile`` use): every patch the union of the chosen classes touches, or with ``min_overlap`` > 0
  at least that share of the patch's area inside it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.io.geojson import read_annotations


def check_indices(indices: Sequence[int] | np.ndarray, n: int, what: str = "patch indices") -> np.ndarray:
    """``indices`` as sorted int64, each in [0, n) and none repeated.

    Raises:
        PathattnError: a non-integer, out-of-range or repeated index.
    """
    array = np.asarray(indices)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise PathattnError(f"{what} must be integers, got {array.dtype}")
    array = array.astype(np.int64).reshape(-1)
    bad = array[(array < 0) | (array >= n)]
    if len(bad):
        raise PathattnError(f"{what} out of range: {bad[:5].tolist()}; valid indices are 0 to {n - 1} ({n} patches)")
    unique = np.unique(array)
    if len(unique) != len(array):
        raise PathattnError(f"{what} repeat a patch; give each patch once")
    return unique


def ranking_scores(attention: np.ndarray) -> np.ndarray:
    """One score per patch from raw attention (N, K): the logit when K = 1, else the mean softmax weight over heads.

    Non-finite logits (instances a model masked) rank last.
    """
    attention = np.asarray(attention, np.float64)
    if attention.ndim == 1:
        attention = attention[:, None]
    if attention.shape[1] == 1:
        return np.where(np.isfinite(attention[:, 0]), attention[:, 0], -np.inf)
    shifted = attention - np.nanmax(np.where(np.isfinite(attention), attention, np.nan), axis=0)
    weights = np.where(np.isfinite(shifted), np.exp(shifted), 0.0)
    return (weights / weights.sum(axis=0).clip(min=np.finfo(float).tiny)).mean(axis=1)


def top_ranked(scores: np.ndarray, *, k: int | None = None, fraction: float | None = None) -> np.ndarray:
    """Indices of the ``k`` (or ``ceil(fraction * N)``, at least 1) highest scores, highest first (ties: lower index).

    Args:
        scores: (N,) per-patch scores, or (N, K) raw attention (reduced by :func:`ranking_scores`).
        k: how many.
        fraction: or which share of the patches, in (0, 1].
    """
    scores = ranking_scores(scores)
    if (k is None) == (fraction is None):
        raise PathattnError("give the number of patches or a fraction of them, exactly one")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise PathattnError(f"the fraction of patches must be in (0, 1], got {fraction}")
        k = max(1, math.ceil(fraction * len(scores)))
    if not 1 <= k <= len(scores):
        raise PathattnError(f"cannot take the top {k} of {len(scores)} patches")
    return np.argsort(-scores, kind="stable")[:k]


def annotation_region(path: str | os.PathLike[str], classes: Sequence[str] | None = None) -> BaseGeometry | None:
    """The union of a GeoJSON file's regions of the ``classes`` named (None: every class); None if it has none."""
    chosen = [a.geometry for a in read_annotations(path) if classes is None or a.name in classes]
    return shapely.union_all(chosen) if chosen else None


def patches_in_region(
    coords: np.ndarray, patch_size_level0: int, region: BaseGeometry, min_overlap: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The patches a region covers.

    Args:
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        region: (Multi)Polygon in level-0 pixels.
        min_overlap: the share of a patch's area that must lie inside the region, in [0, 1]; 0: any overlap.

    Returns:
        indices: (k,) int64 of the covered patches, and overlap: (N,) float64 share of every patch inside.
    """
    if not 0.0 <= min_overlap <= 1.0:
        raise PathattnError(f"min_overlap must be in [0, 1], got {min_overlap}")
    xy = np.asarray(coords, np.float64).reshape(-1, 2)
    boxes = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + patch_size_level0, xy[:, 1] + patch_size_level0)
    shapely.prepare(region)
    overlap = np.zeros(len(xy))
    touching = np.flatnonzero(shapely.intersects(region, boxes))
    overlap[touching] = shapely.area(shapely.intersection(boxes[touching], region)) / float(patch_size_level0) ** 2
    inside = overlap > 0 if min_overlap == 0 else overlap >= min_overlap - 1e-12
    return np.flatnonzero(inside), overlap


def patches_in_annotations(
    coords: np.ndarray,
    patch_size_level0: int,
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    min_overlap: float = 0.0,
    *,
    allow_none: bool = False,
) -> tuple[np.ndarray, BaseGeometry | None]:
    """The patches that the annotation regions of ``path`` cover (see :func:`patches_in_region`).

    Args:
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        path: a (QuPath) GeoJSON file of the slide.
        classes: the region classes that count (None: every class).
        min_overlap: see :func:`patches_in_region`.
        allow_none: a file without a region of ``classes`` is a slide without the region (an empty set)
            instead of an error.

    Returns:
        indices: (k,) int64 of the covered patches, and the region (None when the file has none).

    Raises:
        PathattnError: the file is unreadable or has no region of ``classes`` (unless ``allow_none``), or
            its regions cover no patch (wrong slide, or regions smaller than ``min_overlap`` of a patch).
    """
    region = annotation_region(path, classes)
    if region is None:
        if allow_none:
            return np.zeros(0, np.int64), None
        found = sorted({a.name for a in read_annotations(path)}) or ["no region"]
        raise PathattnError(
            f"{path} has no region of class {', '.join(classes or ['any'])} (it has {', '.join(found)}); "
            "pass the class names of your annotations"
        )
    indices, overlap = patches_in_region(coords, patch_size_level0, region, min_overlap)
    if len(indices) == 0:
        raise PathattnError(
            f"the annotations in {path} select no patch of the slide ({len(coords)} patches, largest overlap "
            f"{overlap.max(initial=0.0):.2f}, min_overlap {min_overlap}); check that the file belongs to this "
            "slide (level-0 pixel coordinates) or lower min_overlap"
        )
    return indices, region
