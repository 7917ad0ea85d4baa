"""The tiling QC image: a thumbnail with the tissue contours, the kept patches and the annotations."""

from __future__ import annotations

import os
from collections.abc import Mapping

import cv2
import numpy as np
from shapely.geometry.base import BaseGeometry

from pathattn.io.atomic import atomic_path
from pathattn.io.geojson import as_polygons, class_color

QC_SIDE = 1024  # pixels on the long side of the QC image (fewer when level 0 is smaller)
MAX_SIDE = 2048
_BANNER = 30
_TISSUE = (0, 170, 0)
_HOLE = (0, 90, 255)
_PATCH = (255, 200, 0)


def _polylines(image: np.ndarray, geometry: BaseGeometry, scale: float, color: tuple[int, int, int],
               hole_color: tuple[int, int, int] | None = None, thickness: int = 2) -> None:  # fmt: skip
    for polygon in as_polygons(geometry):
        rings = [(polygon.exterior, color)] + [(r, hole_color or color) for r in polygon.interiors]
        for ring, ring_color in rings:
            points = np.round(np.asarray(ring.coords) * scale).astype(np.int32)
            cv2.polylines(image, [points], True, ring_color, thickness, lineType=cv2.LINE_AA)


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
    side = max(1, round(patch_size_level0 * scale))
    for x, y in np.round(np.asarray(coords) * scale).astype(np.int64):
        cv2.rectangle(image, (int(x), int(y)), (int(x) + side - 1, int(y) + side - 1), _PATCH, 1)
    _polylines(image, tissue, scale, _TISSUE, _HOLE)
    for name, geometry in (annotations or {}).items():
        _polylines(image, geometry, scale, class_color(name))
    if caption:
        banner = np.full((_BANNER, image.shape[1], 3), 255, np.uint8)
        cv2.putText(banner, caption, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        image = np.concatenate([banner, image], axis=0)
    return image


def qc_mpp(slide_size_um: float, mpp0: float) -> float:
    """The µm/px of a QC thumbnail whose long side is about ``QC_SIDE`` pixels (never finer than level 0)."""
    return max(mpp0, slide_size_um / QC_SIDE)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB image as PNG atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
