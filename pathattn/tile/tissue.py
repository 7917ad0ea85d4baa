"""Classical tissue detection: HSV saturation, median blur, threshold, closing, contour filters.

The steps follow the common practice of CLAM and hs2p (re-implemented here): tissue is stained and
therefore saturated, glass is not. Areas are filtered in mm², so one setting works at any scan
resolution. The result is a (Multi)Polygon in level-0 pixels, ready for GeoJSON.
"""

from __future__ import annotations

import cv2
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from pathattn.tile.params import TissueParams


def saturation_mask(image: np.ndarray, params: TissueParams) -> tuple[np.ndarray, int]:
    """Binary tissue mask of an RGB image.

    Args:
        image: (H, W, 3) uint8 RGB at ``params.seg_mpp``.
        params: detection parameters.

    Returns:
        mask: (H, W) uint8 with 1 for tissue, and the saturation threshold used.
    """
    saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
    saturation = cv2.medianBlur(saturation, params.median_blur)
    threshold = params.threshold
    if params.method == "otsu":
        otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = max(int(otsu), params.threshold)
    mask = (saturation > threshold).astype(np.uint8)
    if params.close > 0:
        kernel = np.ones((params.close, params.close), np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    return mask, threshold


def mask_to_geometry(
    mask: np.ndarray,
    scale: tuple[float, float],
    mpp0: float,
    min_area_mm2: float,
    min_hole_mm2: float,
) -> BaseGeometry:
    """Polygons of a binary mask in level-0 pixels, with area filters in mm².

    Args:
        mask: (H, W) uint8, non-zero for foreground.
        scale: level-0 pixels per mask pixel along (x, y).
        mpp0: level-0 µm/px (to convert areas).
        min_area_mm2: drop fragments whose area (holes subtracted) is smaller.
        min_hole_mm2: fill holes smaller than this.

    Returns:
        A MultiPolygon (empty when nothing is kept).
    """
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return MultiPolygon()
    hierarchy = hierarchy[0]
    mm2_per_px = scale[0] * scale[1] * (mpp0 * 1e-3) ** 2
    polygons = []
    for i, (_, _, first_child, parent) in enumerate(hierarchy):
        if parent != -1 or len(contours[i]) < 3:
            continue
        holes, child = [], first_child
        while child != -1:
            if len(contours[child]) >= 3:
                holes.append(contours[child])
            child = hierarchy[child][0]
        hole_areas = [cv2.contourArea(h) * mm2_per_px for h in holes]
        area = cv2.contourArea(contours[i]) * mm2_per_px - sum(hole_areas)
        if area < min_area_mm2 or area <= 0:
            continue
        kept = [_to_level0(h, scale) for h, a in zip(holes, hole_areas, strict=True) if a >= min_hole_mm2]
        # contours run through the centres of the boundary pixels: grow by half a pixel to the true edge
        polygon = shapely.make_valid(Polygon(_to_level0(contours[i], scale), kept))
        polygon = polygon.buffer(0.25 * (scale[0] + scale[1]), join_style="mitre", mitre_limit=2.0)
        polygons.extend(g for g in getattr(polygon, "geoms", [polygon]) if isinstance(g, Polygon) and g.area > 0)
    return MultiPolygon(polygons) if polygons else MultiPolygon()


def _to_level0(contour: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Contour points (pixel centres of the mask) as level-0 coordinates: (P, 2) float."""
    return (contour[:, 0, :].astype(np.float64) + 0.5) * np.asarray(scale)


def detect_tissue(
    image: np.ndarray, scale: tuple[float, float], mpp0: float, params: TissueParams
) -> tuple[BaseGeometry, int]:
    """Detect tissue on a low-resolution image of a slide.

    Args:
        image: (H, W, 3) uint8 RGB at about ``params.seg_mpp``.
        scale: level-0 pixels per image pixel along (x, y).
        mpp0: level-0 µm/px.
        params: detection parameters.

    Returns:
        The tissue as a MultiPolygon in level-0 pixels, and the saturation threshold used.
    """
    mask, threshold = saturation_mask(image, params)
    return mask_to_geometry(mask, scale, mpp0, params.min_area_mm2, params.min_hole_mm2), threshold
