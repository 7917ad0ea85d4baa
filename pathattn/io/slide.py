"""Whole-slide image access through OpenSlide, with physical resolution.

Every format OpenSlide reads is supported (Aperio SVS, Hamamatsu NDPI/VMS, MIRAX MRXS, Leica SCN,
Philips TIFF, Ventana BIF, Zeiss CZI, DICOM, generic tiled TIFF, ...).

Level-0 resolution (µm/px) is resolved in one documented order, and the source used is recorded:

1. ``user``: the value the user passed (``--slide-mpp``, or the sample sheet's ``mpp`` column), which
   overrides the metadata when given;
2. ``openslide``: OpenSlide's ``openslide.mpp-x``/``openslide.mpp-y`` (vendor metadata);
3. ``tiff-resolution``: the TIFF ``XResolution``/``YResolution`` tags with a centimetre or inch unit;
4. ``objective-power``: ``openslide.objective-power``, as 10 µm/px divided by the magnification;

otherwise :class:`~pathattn.errors.SlideError` tells the user to pass ``--slide-mpp``. A resolution outside
the plausible range :data:`MPP_RANGE` (0.05-50 µm/px; e.g. a default 72-dpi TIFF tag read as 353 µm/px) is
refused with the same fix, never tiled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import openslide

from pathattn.errors import SlideError

MppSource = Literal["openslide", "tiff-resolution", "objective-power", "user"]
SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs",
    ".svslide", ".bif", ".czi", ".dcm",
)  # fmt: skip
_UM_PER_UNIT = {"centimeter": 1e4, "inch": 25400.0}
MPP_RANGE = (0.05, 50.0)  # plausible level-0 µm/px: from 200x optics to a 0.2x overview
_STRIP_PIXELS = 1 << 24  # pixels per strip when reading a whole level (bounds memory on huge levels)


@dataclass(frozen=True)
class Mpp:
    """Level-0 resolution of a slide.

    Args:
        x: µm per pixel along x.
        y: µm per pixel along y.
        source: where the value came from (see the module docstring).
    """

    x: float
    y: float
    source: MppSource

    @property
    def mean(self) -> float:
        """The mean of x and y, µm per pixel."""
        return (self.x + self.y) / 2


def _positive(value: str | float | None) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def resolve_mpp(properties: Mapping[str, str], user_mpp: float | None = None) -> Mpp | None:
    """Level-0 µm/px from slide properties, in the documented order (module docstring).

    Args:
        properties: OpenSlide properties of the slide.
        user_mpp: the user's value, which overrides the metadata.

    Returns:
        The resolution and its source, or None when nothing gives it.
    """
    if user_mpp is not None:
        return Mpp(user_mpp, user_mpp, "user")
    mpp_x, mpp_y = _positive(properties.get("openslide.mpp-x")), _positive(properties.get("openslide.mpp-y"))
    if mpp_x or mpp_y:
        return Mpp(mpp_x or mpp_y, mpp_y or mpp_x, "openslide")  # type: ignore[arg-type]
    unit = _UM_PER_UNIT.get(str(properties.get("tiff.ResolutionUnit", "")).lower())
    res_x, res_y = _positive(properties.get("tiff.XResolution")), _positive(properties.get("tiff.YResolution"))
    if unit and (res_x or res_y):
        res_x, res_y = res_x or res_y, res_y or res_x
        return Mpp(unit / res_x, unit / res_y, "tiff-resolution")  # type: ignore[operator]
    power = _positive(properties.get("openslide.objective-power"))
    if power:
        return Mpp(10.0 / power, 10.0 / power, "objective-power")
    return None


def slide_id_of(path: str | os.PathLike[str]) -> str:
    """The slide id of a file: its name without the suffix (``.ome.tiff`` counts as one suffix)."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise SlideError(f"slide not found: {path}; check the path (or the slide_path column of the sample sheet)")
    if path.is_dir():
        raise SlideError(f"{path} is a folder, not a slide; pass slide files or a folder with --slides")
    if not os.access(path, os.R_OK):
        raise SlideError(f"cannot read {path}: permission denied; give your user read access to the slide")
    if openslide.OpenSlide.detect_format(str(path)) is None:
        raise SlideError(
            f"{path} is not a slide OpenSlide can read (SVS, NDPI, MRXS, SCN, BIF, CZI, DICOM, tiled TIFF, ...); "
            "convert it to a tiled pyramidal TIFF (e.g. with vips tiffsave --tile --pyramid)"
        )


class Slide:
    """An open whole-slide image.

    Args:
        path: the slide file.
        user_mpp: level-0 µm/px that overrides the slide's metadata (None: the metadata's).

    Raises:
        SlideError: the file is missing or unreadable, is not a slide, is corrupt, or has no plausible
            resolution.

    Example:
        >>> with Slide("slide.svs") as slide:
        ...     level = slide.best_level_for_mpp(0.5)
        ...     patch = slide.read_patch((1024, 2048), level, read_size=512, out_size=(224, 224))
    """

    def __init__(self, path: str | os.PathLike[str], user_mpp: float | None = None) -> None:
        self.path = Path(path)
        _check_readable(self.path)
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideError as err:
            raise SlideError(f"{self.path} is corrupt or truncated ({err}); re-export or re-copy the slide") from None
        mpp = resolve_mpp(self._osr.properties, user_mpp)
        if mpp is None or not MPP_RANGE[0] <= mpp.mean <= MPP_RANGE[1]:
            self.close()
            found = "has no resolution metadata" if mpp is None else (
                f"has a level-0 resolution of {mpp.mean:.4g} µm/px ({mpp.source}), outside the plausible "
                f"{MPP_RANGE[0]:g}-{MPP_RANGE[1]:g} µm/px"
            )  # fmt: skip
            raise SlideError(
                f"{self.path} {found}; pass --slide-mpp (its level-0 µm/px, e.g. 0.25 for a 40x scan) or give "
                "it in the sample sheet's mpp column"
            )
        self.mpp = mpp
        self.slide_id = slide_id_of(self.path)

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the OpenSlide handle."""
        self._osr.close()

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return self._osr.dimensions

    @property
    def level_count(self) -> int:
        return self._osr.level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._osr.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._osr.level_downsamples

    @property
    def properties(self) -> Mapping[str, str]:
        return self._osr.properties

    @property
    def vendor(self) -> str:
        return self._osr.properties.get("openslide.vendor", "unknown")

    def level_mpp(self, level: int) -> float:
        """Mean µm/px of a pyramid level."""
        return self.mpp.mean * self.level_downsamples[level]

    def best_level_for_mpp(self, target_mpp: float, tolerance: float = 0.01) -> int:
        """The coarsest level whose resolution is at least the target (µm/px at most ``target_mpp``).

        Args:
            target_mpp: the resolution wanted, µm/px.
            tolerance: relative slack, so that a level at 0.502 µm/px serves a 0.5 µm/px target.

        Returns:
            The level index; level 0 when even level 0 is coarser than the target (then patches are
            upsampled, which the caller may want to report).
        """
        fine_enough = [i for i in range(self.level_count) if self.level_mpp(i) <= target_mpp * (1 + tolerance)]
        return max(fine_enough) if fine_enough else 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Read an RGB region, composited on white where the slide is transparent.

        Args:
            location: level-0 (x, y) of the top-left corner.
            level: pyramid level to read.
            size: (width, height) in pixels of that level.

        Returns:
            image: (H, W, 3) uint8.

        Raises:
            SlideError: the slide's data cannot be decoded (corrupt or truncated file).
        """
        try:
            rgba = np.asarray(self._osr.read_region(location, level, size))
        except openslide.OpenSlideError as err:
            raise SlideError(f"{self.path} cannot be read ({err}); the file is corrupt or truncated") from None
        alpha = rgba[..., 3]
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[..., :3])
        # OpenSlide returns premultiplied RGBA: compositing on white adds the missing coverage.
        return cv2.add(np.ascontiguousarray(rgba[..., :3]), cv2.cvtColor(255 - alpha, cv2.COLOR_GRAY2RGB))

    def read_patch(
        self, location: tuple[int, int], level: int, read_size: int, out_size: tuple[int, int]
    ) -> np.ndarray:
        """Read a square patch at ``level`` and resize it to ``out_size``.

        Downsizing uses area interpolation (no aliasing), upsizing bilinear.

        Args:
            location: level-0 (x, y) of the top-left corner.
            level: pyramid level to read.
            read_size: patch side in pixels of that level.
            out_size: (height, width) of the result.

        Returns:
            patch: (H, W, 3) uint8.
        """
        patch = self.read_region(location, level, (read_size, read_size))
        height, width = out_size
        if (read_size, read_size) != (height, width):
            interp = cv2.INTER_AREA if read_size > max(height, width) else cv2.INTER_LINEAR
            patch = cv2.resize(patch, (width, height), interpolation=interp)
        return patch

    def read_at_mpp(self, target_mpp: float) -> tuple[np.ndarray, tuple[float, float]]:
        """Read the whole slide at about ``target_mpp`` (e.g. for tissue detection or a thumbnail).

        The best pyramid level is read in horizontal strips (bounded memory even for single-level slides)
        and each strip is resized to the target resolution.

        Args:
            target_mpp: µm/px of the returned image; clamped to level 0's resolution.

        Returns:
            image: (H, W, 3) uint8, and the (x, y) level-0 pixels per image pixel.
        """
        width0, height0 = self.dimensions
        scale = max(target_mpp / self.mpp.mean, 1.0)
        out_w, out_h = max(1, round(width0 / scale)), max(1, round(height0 / scale))
        level = self.best_level_for_mpp(target_mpp)
        lw, lh = self.level_dimensions[level]
        ds_y = height0 / lh
        rows = max(1, _STRIP_PIXELS // max(lw, 1))
        strips = []
        for top in range(0, lh, rows):
            h = min(rows, lh - top)
            strip = self.read_region((0, round(top * ds_y)), level, (lw, h))
            y0, y1 = round(top / lh * out_h), round((top + h) / lh * out_h)
            if y1 > y0:
                strips.append(cv2.resize(strip, (out_w, y1 - y0), interpolation=cv2.INTER_AREA))
        image = np.concatenate(strips, axis=0)
        return image, (width0 / out_w, height0 / out_h)


def find_slides(folder: str | os.PathLike[str]) -> list[Path]:
    """Slide files directly inside ``folder`` (by suffix), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES)


def resize_to_mpp(
    image: np.ndarray, level0_per_px: tuple[float, float], mpp0: float, target_mpp: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize an image of the slide to ``target_mpp`` (only ever down).

    Args:
        image: (H, W, 3) uint8, with ``level0_per_px`` level-0 pixels per pixel along (x, y).
        level0_per_px: its scale.
        mpp0: level-0 µm/px of the slide.
        target_mpp: the µm/px wanted.

    Returns:
        The resized image and its level-0 pixels per pixel.
    """
    factor = target_mpp / (mpp0 * (level0_per_px[0] + level0_per_px[1]) / 2)
    if factor <= 1.0:
        return image, level0_per_px
    height, width = image.shape[:2]
    out_w, out_h = max(1, round(width / factor)), max(1, round(height / factor))
    resized = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    return resized, (level0_per_px[0] * width / out_w, level0_per_px[1] * height / out_h)
