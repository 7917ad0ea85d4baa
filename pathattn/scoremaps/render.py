"""Drawing on images of a slide: scores blended in a colour map, legends and banners, polygons and patches.

Every function takes and returns (H, W, 3) uint8 RGB arrays; geometry is given in level-0 pixels with the
image's ``scale`` (image pixels per level-0 pixel).
"""

from __future__ import annotations

import cv2
import matplotlib
import numpy as np
from shapely.geometry.base import BaseGeometry

from pathattn.io.geojson import as_polygons
from pathattn.scoremaps.rasters import patch_mean, polygon_mask

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BLACK = (0, 0, 0)
CAPTION_HEIGHT = 30
LEGEND_HEIGHT = 56


def blend_scores(
    thumbnail: np.ndarray,
    level0_per_px: float,
    coords: np.ndarray,
    patch_size_level0: int,
    values: np.ndarray,
    tissue: BaseGeometry | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend patch values, coloured by a colour map, over the thumbnail.

    Each thumbnail pixel gets the mean value of the patches covering it; it is coloured only where some
    patch with a finite value covers it and, with ``tissue``, inside the tissue.

    Args:
        thumbnail: (H, W, 3) uint8 RGB image of the whole slide.
        level0_per_px: level-0 pixels per thumbnail pixel.
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        values: (N,) in [0, 1]; NaN is not drawn.
        tissue: tissue (Multi)Polygon in level-0 pixels, or None to colour wherever patches are.
        cmap: a matplotlib colour map name.
        alpha: opacity of the colours, in [0, 1].

    Returns:
        image: (H, W, 3) uint8 RGB.
    """
    shape = thumbnail.shape[:2]
    mean = patch_mean(coords, patch_size_level0, values, shape, 1.0 / level0_per_px)
    drawn = np.isfinite(mean)
    if tissue is not None:
        drawn &= polygon_mask(tissue, shape, 1.0 / level0_per_px)
    colors = matplotlib.colormaps[cmap](np.clip(mean[drawn], 0.0, 1.0))[:, :3] * 255.0
    image = thumbnail.copy()
    image[drawn] = np.round((1.0 - alpha) * thumbnail[drawn] + alpha * colors).astype(np.uint8)
    return image


def fill_polygons(
    image: np.ndarray, geometry: BaseGeometry, scale: float, color: tuple[int, int, int], alpha: float
) -> np.ndarray:
    """A copy of ``image`` with the polygons filled translucently (holes left out)."""
    inside = polygon_mask(geometry, image.shape[:2], scale)
    out = image.copy()
    out[inside] = np.round((1.0 - alpha) * out[inside] + alpha * np.asarray(color, np.float64)).astype(np.uint8)
    return out


def draw_polygons(
    image: np.ndarray,
    geometry: BaseGeometry,
    scale: float,
    color: tuple[int, int, int],
    hole_color: tuple[int, int, int] | None = None,
    thickness: int = 2,
) -> None:
    """Outline the polygons of ``geometry`` on ``image`` in place (holes in ``hole_color``, else ``color``)."""
    for polygon in as_polygons(geometry):
        rings = [(polygon.exterior, color)] + [(r, hole_color or color) for r in polygon.interiors]
        for ring, ring_color in rings:
            points = np.round(np.asarray(ring.coords) * scale).astype(np.int32)
            cv2.polylines(image, [points], True, ring_color, thickness, lineType=cv2.LINE_AA)


def draw_patches(
    image: np.ndarray,
    coords: np.ndarray,
    patch_size_level0: int,
    scale: float,
    color: tuple[int, int, int],
    thickness: int = 1,
    min_side: int = 1,
) -> None:
    """Outline square patches (level-0 top-left ``coords`` (N, 2)) on ``image`` in place."""
    side = max(min_side, round(patch_size_level0 * scale))
    for x, y in np.round(np.asarray(coords).reshape(-1, 2) * scale).astype(np.int64):
        cv2.rectangle(image, (int(x), int(y)), (int(x) + side - 1, int(y) + side - 1), color, thickness)


def add_caption(image: np.ndarray, caption: str) -> np.ndarray:
    """Put a white banner with one line of text above the image: (H + 30, W, 3)."""
    banner = np.full((CAPTION_HEIGHT, image.shape[1], 3), 255, np.uint8)
    cv2.putText(banner, caption, (8, 21), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
    return np.concatenate([banner, image], axis=0)


def add_legend(image: np.ndarray, caption: str, label: str, cmap: str = "jet") -> np.ndarray:
    """Put a white banner above the image: the caption, then a colour bar from 0 to 1 and its label.

    Args:
        image: (H, W, 3) uint8 RGB.
        caption: first line (slide, model, prediction).
        label: what the colours mean, written after the colour bar.
        cmap: the colour map of the image.

    Returns:
        image: (H + 56, W, 3) uint8 RGB.
    """
    width = image.shape[1]
    banner = np.full((LEGEND_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(banner, caption, (8, 20), _FONT, 0.55, _BLACK, 1, cv2.LINE_AA)
    bar_width = int(np.clip(width - 260, 32, 256))
    ramp = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, bar_width))[:, :3] * 255.0
    banner[32:48, 30 : 30 + bar_width] = np.round(ramp).astype(np.uint8)[None, : max(0, width - 30)]
    cv2.putText(banner, "0", (14, 46), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(banner, f"1  {label}", (36 + bar_width, 46), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    return np.concatenate([banner, image], axis=0)
