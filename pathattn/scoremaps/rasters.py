"""Patch values on an image of the slide, and polygons rasterised on the same pixels.

An image of the slide has ``scale`` image pixels per level-0 pixel. A patch at level-0 top-left ``(x, y)`` of
side ``s`` covers the pixels from ``round(x * scale)`` to ``round((x + s) * scale)`` (end exclusive, at least
one pixel); where patches overlap, their values are averaged. Polygons are rasterised with their vertices
moved to the nearest pixel centre and ``cv2.fillPoly`` (boundary pixels are inside, holes are out).
"""

from __future__ import annotations

import cv2
import numpy as np
from shapely.geometry.base import BaseGeometry

from pathattn.io.geojson import as_polygons


def patch_boxes(coords: np.ndarray, patch_size_level0: int, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Image pixel spans of the patches: (N, 4) int64 x0, y0, x1, y1 (end exclusive, clipped, >= 1 px).

    Args:
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        shape: (H, W) of the image.
        scale: image pixels per level-0 pixel.
    """
    height, width = shape
    start = np.round(np.asarray(coords, np.float64) * scale).astype(np.int64)
    end = np.round((np.asarray(coords, np.float64) + patch_size_level0) * scale).astype(np.int64)
    end = np.maximum(end, start + 1)
    limit = np.array([width, height])
    return np.concatenate([np.clip(start, 0, limit), np.clip(end, 0, limit)], axis=1).reshape(-1, 4)


def _box_sum(boxes: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel sum of ``weights`` over the boxes (a summed-area table of corner increments): (H, W)."""
    height, width = shape
    table = np.zeros((height + 1, width + 1))
    x0, y0, x1, y1 = boxes.T
    for ys, xs, sign in ((y0, x0, 1), (y0, x1, -1), (y1, x0, -1), (y1, x1, 1)):
        np.add.at(table, (ys, xs), sign * weights)
    return table.cumsum(axis=0).cumsum(axis=1)[:height, :width]


def patch_mean(
    coords: np.ndarray, patch_size_level0: int, values: np.ndarray, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """The mean value of the patches covering each pixel of an image of the slide.

    Args:
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        values: (N,) one value per patch; non-finite values are left out.
        shape: (H, W) of the image.
        scale: image pixels per level-0 pixel.

    Returns:
        (H, W) float64; NaN where no patch with a finite value covers the pixel.
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    boxes = patch_boxes(np.asarray(coords).reshape(-1, 2)[finite], patch_size_level0, shape, scale)
    total = _box_sum(boxes, values[finite], shape)
    count = np.rint(_box_sum(boxes, np.ones(len(boxes)), shape))
    return np.divide(total, count, out=np.full(shape, np.nan), where=count > 0)


def stitch_patch_maps(
    coords: np.ndarray, patch_size_level0: int, maps: np.ndarray, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """Per-patch maps (a CAM per patch) resized to their footprints and averaged where patches overlap.

    Args:
        coords: (N, 2) level-0 top-left x, y.
        patch_size_level0: patch side in level-0 pixels.
        maps: (N, h, w) one map per patch, on a common (not per-patch) scale; a map with a non-finite value
            (a masked patch) is left out.
        shape: (H, W) of the image.
        scale: image pixels per level-0 pixel.

    Returns:
        (H, W) float64; NaN where no patch is.
    """
    height, width = shape
    total, count = np.zeros(shape), np.zeros(shape)
    corners = np.asarray(coords, np.float64)
    start = np.round(corners * scale).astype(np.int64)  # the footprints of patch_mean
    end = np.maximum(np.round((corners + patch_size_level0) * scale).astype(np.int64), start + 1)
    for (x0, y0), (x1, y1), patch in zip(start, end, np.asarray(maps, np.float32), strict=True):
        resized = cv2.resize(patch, (int(x1 - x0), int(y1 - y0)), interpolation=cv2.INTER_LINEAR)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if cx1 > cx0 and cy1 > cy0 and np.isfinite(resized).all():
            total[cy0:cy1, cx0:cx1] += resized[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            count[cy0:cy1, cx0:cx1] += 1
    return np.divide(total, count, out=np.full(shape, np.nan), where=count > 0)


def polygon_mask(geometry: BaseGeometry, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Polygons (level-0 pixels) rasterised on an image of the slide: (H, W) bool.

    Every ring goes to one ``cv2.fillPoly`` call, whose even-odd filling leaves the holes out.

    Args:
        geometry: a (Multi)Polygon in level-0 pixels.
        shape: (H, W) of the image.
        scale: image pixels per level-0 pixel.
    """
    mask = np.zeros(shape, np.uint8)
    rings = [r for p in as_polygons(geometry) for r in (p.exterior, *p.interiors)]
    # a pixel's centre is at index + 0.5 in level-0 * scale units
    points = [np.round(np.asarray(r.coords) * scale - 0.5).astype(np.int32) for r in rings]
    if points:
        cv2.fillPoly(mask, points, 1)
    return mask.astype(bool)
