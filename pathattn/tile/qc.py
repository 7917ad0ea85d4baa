"""The tiling QC image: a thumbnail with the tissue contours, the kept patches and the annotations."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from shapely.geometry.base import BaseGeometry

from pathattn.io.geojson import class_color
from pathattn.scoremaps.render import add_caption, draw_patches, draw_polygons

MAX_SIDE = 2048
_TISSUE = (0, 170, 0)
_HOLE = (0, 90, 255)
_PATCH = (255, 200, 0)


def render_qc(
    thumbnail: np.ndarray,
    level0_per_px: float,
    tissue: BaseGeometry,
    coords: np.ndarray,
    patch_size_level0: int,
    annotations: Mapping[str, BaseGeometry] | None = None,
    caption: str = "",
) -> np.ndarray:
    """Draw the QC overlay.

    Args:
        thumbnail: (H, W, 3) uint8 RGB image of the whole slide.
        level0_per_px: level-0 pixels per thumbnail pixel.
        tissue: tissue (Multi)Polygon in level-0 pixels.
        coords: (N, 2) level-0 top-left corners of the kept patches.
        patch_size_level0: patch side in level-0 pixels.
        annotations: class name to (Multi)Polygon in level-0 pixels.
        caption: a line of text shown in a banner above the image.

    Returns:
        image: (H', W', 3) uint8 RGB, at most ``MAX_SIDE`` pixels on its long side (plus the banner).
    """
    shrink = min(1.0, MAX_SIDE / max(thumbnail.shape[:2]))
    image = (
        thumbnail if shrink == 1.0 else cv2.resize(thumbnail, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    )
    image = np.ascontiguousarray(image)
    scale = shrink / level0_per_px
    draw_patches(image, coords, patch_size_level0, scale, _PATCH)
    draw_polygons(image, tissue, scale, _TISSUE, _HOLE)
    for name, geometry in (annotations or {}).items():
        draw_polygons(image, geometry, scale, class_color(name))
    return add_caption(image, caption) if caption else image
