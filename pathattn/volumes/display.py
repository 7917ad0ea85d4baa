"""Planes of a RAS volume as images in the radiological convention, with mask contours.

Every plane is shown as radiologists read it: the patient's right on the viewer's left, anterior at the top
of axial planes, superior at the top of coronal and sagittal planes (anterior on the left of sagittal
planes). Rows and columns are stretched by the voxel spacing so anatomy keeps its proportions.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

LESION_COLOR = (230, 30, 30)
FOREGROUND_COLOR = (0, 190, 0)


def display_plane(values: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One plane of an (I, J, K) volume as displayed: the two remaining axes flipped, then transposed.

    Args:
        values: (I, J, K) on a RAS grid.
        axis: the axis held fixed (0 sagittal, 1 coronal, 2 axial).
        index: the plane's index along it.

    Returns:
        (H, W): rows run from anterior (axial) or superior (coronal, sagittal) down; columns from the patient's
        right (axial, coronal) or anterior (sagittal).
    """
    plane = values[(slice(None),) * axis + (index,)]  # a view: np.take would copy a non-C-ordered volume first
    return np.ascontiguousarray(plane[::-1, ::-1].T)


def plane_spacing(spacing: Sequence[float], axis: int) -> tuple[float, float]:
    """(row, column) mm of :func:`display_plane` images of a volume with ``spacing`` along i, j, k."""
    first, second = (spacing[a] for a in range(3) if a != axis)
    return float(second), float(first)


def to_rgb(plane: np.ndarray, spacing: tuple[float, float], height: int) -> np.ndarray:
    """A [0, 1] plane as a grey (H', W', 3) uint8 image ``height`` pixels high, in physical proportions."""
    rows, cols = plane.shape
    width = max(1, round(height * (cols * spacing[1]) / (rows * spacing[0])))
    grey = np.clip(np.nan_to_num(plane, nan=0.0), 0.0, 1.0)
    grey = cv2.resize((grey * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_AREA)
    return np.repeat(grey[..., None], 3, axis=2)


def draw_contour(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """Draw the outline of a plane's mask (resized to the image) onto the image, in place; return it."""
    if not mask.any():
        return image
    resized = cv2.resize(mask.astype(np.uint8), image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(resized, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, color, 1, cv2.LINE_AA)
    return image


def render_plane(
    values: np.ndarray,
    spacing: Sequence[float],
    axis: int,
    index: int,
    height: int,
    masks: Sequence[tuple[np.ndarray, tuple[int, int, int]]] = (),
) -> np.ndarray:
    """A plane of a [0, 1] volume as an RGB image with the outlines of some masks.

    Args:
        values: (I, J, K) in [0, 1].
        spacing: mm along i, j, k.
        axis: the axis held fixed.
        index: the plane.
        height: output height in pixels.
        masks: (I, J, K) bool masks and the colour of their outline.

    Returns:
        (height, W, 3) uint8.
    """
    image = to_rgb(display_plane(values, axis, index), plane_spacing(spacing, axis), height)
    for mask, color in masks:
        draw_contour(image, display_plane(mask, axis, index), color)
    return image


def hstack_padded(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Images side by side on a white background, top-aligned, ``gap`` pixels apart."""
    height = max(i.shape[0] for i in images)
    width = sum(i.shape[1] for i in images) + gap * (len(images) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for image in images:
        canvas[: image.shape[0], x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas
