"""The patch grid in physical units, and each patch's coverage by tissue and annotation regions.

The grid is anchored at the slide's origin (0, 0), so coordinates are reproducible whatever the tissue
mask: a corrected mask selects a different subset of the same grid. Only patches that lie entirely
inside the slide are candidates. Coverage fractions are exact areas (shapely), computed only where a
region's boundary crosses a patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.io.geojson import as_polygons
from pathattn.io.slide import Slide
from pathattn.tile.params import GridParams

MAX_GRID_PATCHES = 2_000_000  # candidate patches of one slide: far above real slides, far below a wrong resolution


@dataclass(frozen=True)
class GridSpec:
    """How patches are read from one slide.

    Args:
        patch_size: patch side in pixels at ``target_mpp`` (the size patches are resized to).
        patch_level: pyramid level read: the coarsest level at least as fine as the target.
        read_size: patch side in pixels at ``patch_level``.
        patch_size_level0: patch side in level-0 pixels.
        stride_level0: distance between neighbouring patches in level-0 pixels.
        target_mpp: µm/px of the patches.
        mpp0: level-0 µm/px of the slide.
    """

    patch_size: int
    patch_level: int
    read_size: int
    patch_size_level0: int
    stride_level0: int
    target_mpp: float
    mpp0: float


def plan_grid(slide: Slide, params: GridParams) -> GridSpec:
    """The read plan for ``slide`` at the target resolution of ``params``.

    Raises:
        PathattnError: a patch is larger than the slide, or the grid would hold more than
            :data:`MAX_GRID_PATCHES` candidate patches (checked before anything is allocated).
    """
    scale = params.mpp / slide.mpp.mean
    patch_size_level0 = max(1, round(params.patch_size * scale))
    stride_level0 = max(1, round((params.patch_size - params.overlap) * scale))
    width, height = slide.dimensions
    if patch_size_level0 > min(width, height):
        raise PathattnError(
            f"{slide.path}: a patch of {params.patch_size} px at {params.mpp:g} µm/px spans {patch_size_level0} "
            f"level-0 px, more than the slide's {width} x {height} px; lower --patch-size or --mpp"
        )
    n_candidates = ((width - patch_size_level0) // stride_level0 + 1) * (
        (height - patch_size_level0) // stride_level0 + 1
    )
    if n_candidates > MAX_GRID_PATCHES:
        raise PathattnError(
            f"{slide.path}: the grid would hold {n_candidates:,} patches (more than {MAX_GRID_PATCHES:,}); check the "
            f"slide's resolution ({slide.mpp.mean:.4g} µm/px from {slide.mpp.source}; --slide-mpp overrides it), or "
            "raise --mpp or --patch-size, or lower --overlap"
        )
    level = slide.best_level_for_mpp(params.mpp)
    read_size = max(1, round(patch_size_level0 / slide.level_downsamples[level]))
    return GridSpec(params.patch_size, level, read_size, patch_size_level0, stride_level0, params.mpp, slide.mpp.mean)


def grid_axes(width0: int, height0: int, spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 x and y of the top-left corners of every candidate patch: (Nx,) and (Ny,) int64."""
    xs = np.arange(0, width0 - spec.patch_size_level0 + 1, spec.stride_level0, dtype=np.int64)
    ys = np.arange(0, height0 - spec.patch_size_level0 + 1, spec.stride_level0, dtype=np.int64)
    return xs, ys


def _boundary_segments(geometry: BaseGeometry) -> np.ndarray:
    """Every edge of every ring: (S,) LineStrings."""
    rings = [r for p in as_polygons(geometry) for r in (p.exterior, *p.interiors)]
    coords = [np.asarray(r.coords) for r in rings]
    starts = np.concatenate([c[:-1] for c in coords])
    ends = np.concatenate([c[1:] for c in coords])
    return shapely.linestrings(np.stack([starts, ends], axis=1))


def grid_corners(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Every combination of the axes, row by row: (Ny * Nx, 2) int64 level-0 (x, y)."""
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.int64)


def coverage(geometry: BaseGeometry, corners: np.ndarray, patch_size_level0: int) -> np.ndarray:
    """Exact fraction of each patch covered by ``geometry``.

    A patch that no boundary edge touches is entirely inside or outside (its centre decides); only the
    patches the boundary crosses are intersected, so the cost grows with the boundary, not the bag.

    Args:
        geometry: a (Multi)Polygon in level-0 pixels.
        corners: (N, 2) level-0 top-left (x, y) of the patches.
        patch_size_level0: patch side in level-0 pixels.

    Returns:
        fractions: (N,) float32 in [0, 1].
    """
    if len(corners) == 0 or geometry.is_empty:
        return np.zeros(len(corners), np.float32)
    x0, y0 = corners[:, 0].astype(np.float64), corners[:, 1].astype(np.float64)
    size = float(patch_size_level0)
    shapely.prepare(geometry)
    fractions = shapely.contains_xy(geometry, x0 + size / 2, y0 + size / 2).astype(np.float64)
    boxes = shapely.box(x0, y0, x0 + size, y0 + size)
    crossed = np.unique(STRtree(boxes).query(_boundary_segments(geometry))[1])
    if len(crossed):
        fractions[crossed] = shapely.area(shapely.intersection(boxes[crossed], geometry)) / size**2
    return np.clip(fractions, 0.0, 1.0).astype(np.float32)
