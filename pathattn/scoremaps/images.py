"""Images of a slide as files: the thumbnail every figure is drawn on, and PNG files read and written."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import atomic_path
from pathattn.io.slide import Slide

THUMBNAIL_SIDE = 1024  # pixels on the long side of a thumbnail (fewer when level 0 is smaller)


def thumbnail_mpp(slide_size_um: float, mpp0: float) -> float:
    """The µm/px of a thumbnail whose long side is about ``THUMBNAIL_SIDE`` pixels (never finer than level 0).

    Args:
        slide_size_um: the slide's long side in µm.
        mpp0: level-0 µm/px.
    """
    return max(mpp0, slide_size_um / THUMBNAIL_SIDE)


def slide_thumbnail(slide: Slide, mpp: float | None = None) -> tuple[np.ndarray, float]:
    """The whole slide at ``mpp`` µm/px (default: :func:`thumbnail_mpp`).

    Returns:
        image: (H, W, 3) uint8 RGB, and its level-0 pixels per pixel (the mean of x and y).
    """
    mpp = mpp or thumbnail_mpp(max(slide.dimensions) * slide.mpp.mean, slide.mpp.mean)
    image, level0_per_px = slide.read_at_mpp(mpp)
    return image, sum(level0_per_px) / 2


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB image as PNG atomically."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def read_rgb(path: str | os.PathLike[str], fix: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB.

    Raises:
        PathattnError: the file is missing or not an image (the message ends with ``fix``).
    """
    image = cv2.imread(str(Path(path)), cv2.IMREAD_COLOR)
    if image is None:
        raise PathattnError(f"{path} is missing or not a readable image; {fix}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
