"""Slide-level score rasters from the patch grid, and the annotations rasterised on the same grid.

A slide's raster has one pixel per ``mpp`` µm (e.g. 16 µm/px: a 3 x 2 mm slide region is 188 x 125 px).
Per-patch scores (MIL attention, HIPPO effects, a patch classifier's probability) are normalised per slide,
painted over each patch's footprint and averaged where patches overlap (the heatmap's
:func:`~pathattn.scoremaps.rasters.patch_mean`); per-patch maps (a CAM inside each patch) are resized to
the footprint and averaged the same way, then normalised once per slide, never per patch. Tissue pixels
that no patch covers score 0; the evaluation region is the tissue (from the tiling's tissue GeoJSON), and
everything outside it is ignored.

Annotations are rasterised with the heatmap's tissue-mask rule (vertices moved to the nearest pixel,
``cv2.fillPoly``: boundary pixels are inside, holes are out); each lesion (a polygon of the union of the
annotations) gives one ground-truth box, the bounding box of its own raster pixels (at least one pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pathattn.io.geojson import as_polygons
from pathattn.scoremaps import rasters, wsol
from pathattn.scoremaps.normalise import Normalisation, normalise


@dataclass(frozen=True)
class SlideGrid:
    """The raster of one slide.

    Args:
        shape: (H, W) in raster pixels.
        level0_per_px: level-0 pixels per raster pixel.
    """

    shape: tuple[int, int]
    level0_per_px: float

    @classmethod
    def at_mpp(cls, level0_size: tuple[int, int], mpp_level0: float, mpp: float) -> SlideGrid:
        """The grid of a slide of ``level0_size`` (width, height) at ``mpp`` µm per raster pixel.

        Raises:
            ValueError: a resolution is not positive.
        """
        if not (mpp > 0 and mpp_level0 > 0):
            raise ValueError(f"resolutions must be positive (raster {mpp} µm/px, level 0 {mpp_level0} µm/px)")
        level0_per_px = mpp / mpp_level0
        width, height = level0_size
        return cls((max(1, round(height / level0_per_px)), max(1, round(width / level0_per_px))), level0_per_px)

    @property
    def scale(self) -> float:
        """Raster pixels per level-0 pixel."""
        return 1.0 / self.level0_per_px


def patch_raster(coords: np.ndarray, patch_size_level0: int, values: np.ndarray, grid: SlideGrid) -> np.ndarray:
    """One value per patch painted over its footprint, overlaps averaged: (H, W), NaN where no patch is."""
    return rasters.patch_mean(coords, patch_size_level0, values, grid.shape, grid.scale)


def stitch_patch_maps(coords: np.ndarray, patch_size_level0: int, maps: np.ndarray, grid: SlideGrid) -> np.ndarray:
    """Per-patch maps (N, h, w) resized to their footprints and averaged: (H, W), NaN where no patch is.

    See :func:`pathattn.scoremaps.rasters.stitch_patch_maps`.
    """
    return rasters.stitch_patch_maps(coords, patch_size_level0, maps, grid.shape, grid.scale)


def region_mask(geometry: BaseGeometry, grid: SlideGrid) -> np.ndarray:
    """Polygons in level-0 pixels rasterised on the grid (boundary pixels in, holes out): (H, W) bool."""
    return rasters.polygon_mask(geometry, grid.shape, grid.scale)


def lesion_boxes(geometry: BaseGeometry, grid: SlideGrid) -> np.ndarray:
    """One inclusive box per lesion (polygon of the geometry): its raster pixels' bounding box, (K, 4) int64."""
    boxes = []
    for polygon in as_polygons(geometry):
        mask = region_mask(polygon, grid)
        if mask.any():
            x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
            boxes.append([x, y, x + w - 1, y + h - 1])
    return np.asarray(boxes, np.int64).reshape(-1, 4)


def patch_fractions(coords: np.ndarray, patch_size_level0: int, geometry: BaseGeometry) -> np.ndarray:
    """The fraction of each patch that the geometry covers: (N,) float64 in [0, 1]."""
    x, y = (np.asarray(coords, np.float64)[:, i] for i in (0, 1))
    boxes = shapely.box(x, y, x + patch_size_level0, y + patch_size_level0)
    if geometry.is_empty:
        return np.zeros(len(boxes))
    shapely.prepare(geometry)
    return shapely.area(shapely.intersection(boxes, geometry)) / float(patch_size_level0) ** 2


def smooth(raster: np.ndarray, region: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing inside the region only (normalised convolution); the raster as is for sigma 0."""
    if sigma_px <= 0:
        return raster
    inside = region.astype(np.float64)
    blurred = cv2.GaussianBlur(raster * inside, (0, 0), sigma_px)
    weight = cv2.GaussianBlur(inside, (0, 0), sigma_px)
    return np.divide(blurred, weight, out=np.zeros_like(blurred), where=(weight > 1e-12) & region)


def slide_score_map(
    raster: np.ndarray, region: np.ndarray, sigma_px: float = 0.0, mode: wsol.Mode = "default"
) -> np.ndarray:
    """The score map evaluated: uncovered tissue 0, smoothed, min-max normalised inside the region, 0 outside."""
    filled = np.where(np.isfinite(raster), raster, 0.0)
    return wsol.normalize_map(smooth(filled, region, sigma_px), region, mode)


def patch_score_map(
    scores: np.ndarray,
    coords: np.ndarray,
    patch_size_level0: int,
    grid: SlideGrid,
    region: np.ndarray,
    method: Normalisation = "percentile",
    sigma_px: float = 0.0,
    mode: wsol.Mode = "default",
) -> np.ndarray:
    """Per-patch scores (N,) normalised per slide by ``method``, rastered and turned into the evaluated map (H, W)."""
    raster = patch_raster(coords, patch_size_level0, normalise(scores, method), grid)
    return slide_score_map(raster, region, sigma_px, mode)
