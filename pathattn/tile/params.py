"""Parameters of the tiling stage, with their defaults and validation.

Every pixel size is stated with its resolution: ``patch_size`` and ``overlap`` are pixels at the target
``mpp``; the tissue-detection kernels are pixels at ``seg_mpp``; areas are mm². Validation raises
:class:`~pathattn.errors.PathattnError` naming the command-line option and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pathattn.errors import PathattnError

ThresholdMethod = Literal["otsu", "fixed"]


@dataclass(frozen=True)
class TissueParams:
    """Classical tissue detection on a low-resolution image (HSV saturation).

    Args:
        seg_mpp: µm/px of the image segmented (8 µm/px is about 1.25x).
        method: ``"otsu"`` picks the saturation threshold per slide (never below ``threshold``);
            ``"fixed"`` uses ``threshold`` as is.
        threshold: saturation threshold 0-255 (the floor under Otsu; CLAM's default fixed value is 8).
        median_blur: median filter size, odd, pixels at ``seg_mpp``.
        close: morphological closing kernel size, pixels at ``seg_mpp`` (0 disables).
        min_area_mm2: tissue fragments smaller than this (holes subtracted) are dropped.
        min_hole_mm2: holes smaller than this are filled.
    """

    seg_mpp: float = 8.0
    method: ThresholdMethod = "otsu"
    threshold: int = 8
    median_blur: int = 7
    close: int = 4
    min_area_mm2: float = 0.05
    min_hole_mm2: float = 0.01

    def __post_init__(self) -> None:
        _require(self.seg_mpp > 0, "--seg-mpp", "must be positive (µm/px of the segmentation image, e.g. 8)")
        _require(self.method in ("otsu", "fixed"), "--tissue-method", "must be 'otsu' or 'fixed'")
        _require(0 <= self.threshold <= 255, "--tissue-threshold", "must be a saturation value in 0..255")
        _require(self.median_blur >= 1 and self.median_blur % 2 == 1, "--median-blur", "must be an odd number >= 1")
        _require(self.close >= 0, "--close", "must be 0 (off) or a positive kernel size")
        _require(self.min_area_mm2 >= 0, "--min-tissue-area", "must be 0 or a positive area in mm²")
        _require(self.min_hole_mm2 >= 0, "--min-hole-area", "must be 0 or a positive area in mm²")


@dataclass(frozen=True)
class GridParams:
    """The patch grid, in physical units.

    Args:
        mpp: target resolution of the patches, µm/px.
        patch_size: patch side in pixels at ``mpp``.
        overlap: overlap of neighbouring patches in pixels at ``mpp`` (stride = patch_size - overlap).
        min_tissue: minimum tissue fraction of a patch to keep it, in [0, 1] (0 keeps any patch that
            touches tissue).
    """

    mpp: float = 0.5
    patch_size: int = 256
    overlap: int = 0
    min_tissue: float = 0.25

    def __post_init__(self) -> None:
        _require(self.mpp > 0, "--mpp", "must be a positive target resolution in µm/px (e.g. 0.5 for 20x)")
        _require(self.patch_size > 0, "--patch-size", "must be a positive number of pixels (e.g. 256)")
        _require(self.overlap >= 0, "--overlap", "must be 0 or a positive number of pixels")
        _require(
            self.overlap < self.patch_size,
            "--overlap",
            f"must be smaller than --patch-size ({self.overlap} >= {self.patch_size})",
        )
        _require(0 <= self.min_tissue <= 1, "--min-tissue", "must be a fraction in [0, 1]")


@dataclass(frozen=True)
class TileParams:
    """Everything that determines a slide's tiling output."""

    grid: GridParams = field(default_factory=GridParams)
    tissue: TissueParams = field(default_factory=TissueParams)


def _require(ok: bool, option: str, message: str) -> None:
    if not ok:
        raise PathattnError(f"{option} {message}")
