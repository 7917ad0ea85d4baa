"""The grid of a volume: 2-D slices along an axis, or 3-D patches of a size in mm, with their fractions.

Coordinates are voxel indices (i, j, k) of the prepared (RAS, resampled) grid:

* **slices**: one row per slice kept; the slice axis holds the slice index, the other two are 0. With
  ``context`` k > 0 the encoder sees the 2k + 1 slices centred on it (2.5-D; the extraction pads the first
  and last slices by repeating the edge).
* **patches**: one row per patch kept, the corner of a ``patch_size_vox`` box; origins step by the stride
  (patch size - overlap) from 0, and a last row/column/layer flush with the far edge is added when the
  steps do not reach it, so the whole volume is covered.

A slice or patch is kept when its foreground fraction (of the slice's area or the patch's voxels) is at
least ``min_foreground`` and above 0. Label fractions are the fraction of the slice or patch covered by each
label value 1..C, exactly as a slide patch carries the fraction of each annotation class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pathattn.errors import PathattnError

GridMode = Literal["slices", "patches"]
AxisName = Literal["axial", "coronal", "sagittal"]
AXES: dict[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
"""Slice axis names and their index on the RAS grid (i: sagittal planes, j: coronal, k: axial)."""


@dataclass(frozen=True)
class VolumeGridParams:
    """The grid of a volume, in physical units.

    Args:
        mode: ``slices`` (2-D slices along ``axis``) or ``patches`` (a 3-D patch grid).
        axis: the slice axis.
        context: 2.5-D neighbours on each side of a slice (0: single slices).
        patch_size_mm: side of a 3-D patch, mm.
        overlap_mm: overlap of neighbouring 3-D patches, mm.
        min_foreground: minimum foreground fraction to keep a slice or patch, in [0, 1].
        channels: the modalities the encoder sees, in this order (e.g. ``("PET",)`` of a PET/CT study: the CT
            still gives the grid and the foreground); empty: every modality, in the tiling's order.
    """

    mode: GridMode = "slices"
    axis: AxisName = "axial"
    context: int = 0
    patch_size_mm: float = 32.0
    overlap_mm: float = 0.0
    min_foreground: float = 0.05
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checks = (
            (self.mode in ("slices", "patches"), "--volume-mode", "must be 'slices' or 'patches'"),
            (self.axis in AXES, "--axis", "must be axial, coronal or sagittal"),
            (self.context >= 0, "--context-slices", "must be 0 or a positive number of neighbours per side"),
            (math.isfinite(self.patch_size_mm) and self.patch_size_mm > 0, "--patch-size-mm",
             "must be a positive side in mm (e.g. 32)"),
            (0 <= self.overlap_mm < self.patch_size_mm, "--overlap-mm",
             f"must be 0 or positive and smaller than --patch-size-mm ({self.patch_size_mm:g})"),
            (0 <= self.min_foreground <= 1, "--min-foreground", "must be a fraction in [0, 1]"),
        )  # fmt: skip
        for ok, option, message in checks:
            if not ok:
                raise PathattnError(f"{option} {message}")

    @property
    def axis_index(self) -> int:
        """The slice axis on the RAS grid (0, 1, 2)."""
        return AXES[self.axis]


def patch_voxels(params: VolumeGridParams, spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Patch size and stride in voxels along i, j, k (at least one voxel each)."""
    spacing_arr = np.asarray(spacing, np.float64)
    size = np.maximum(1, np.rint(params.patch_size_mm / spacing_arr)).astype(np.int64)
    stride = np.maximum(1, np.rint((params.patch_size_mm - params.overlap_mm) / spacing_arr)).astype(np.int64)
    return size, np.minimum(stride, size)


def axis_origins(length: int, size: int, stride: int) -> np.ndarray:
    """Origins along one axis: every ``stride`` from 0, plus one flush with the end if the steps miss it."""
    origins = np.arange(0, length - size + 1, stride, dtype=np.int64)
    if origins[-1] + size < length:
        origins = np.append(origins, length - size)
    return origins


def slice_grid(foreground: np.ndarray, params: VolumeGridParams) -> tuple[np.ndarray, np.ndarray]:
    """Slices as grid rows.

    Args:
        foreground: (I, J, K) bool.
        params: the grid parameters (``axis``, ``min_foreground``).

    Returns:
        coords: (S, 3) int64 of every slice (0 but on the slice axis); fractions: (S,) float32 foreground
        fraction of each slice's area.
    """
    axis = params.axis_index
    other = tuple(a for a in range(3) if a != axis)
    fractions = foreground.mean(axis=other, dtype=np.float64).astype(np.float32)
    coords = np.zeros((foreground.shape[axis], 3), np.int64)
    coords[:, axis] = np.arange(foreground.shape[axis])
    return coords, fractions


def patch_grid(
    foreground: np.ndarray, params: VolumeGridParams, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3-D patches as grid rows.

    Args:
        foreground: (I, J, K) bool.
        params: the grid parameters.
        spacing: mm along i, j, k of the prepared grid.

    Returns:
        coords: (P, 3) int64 patch corners; fractions: (P,) float32 foreground fraction of each patch; the
        patch size in voxels (3,).

    Raises:
        PathattnError: the patch is larger than the volume along some axis.
    """
    size, stride = patch_voxels(params, spacing)
    if np.any(size > np.asarray(foreground.shape)):
        raise PathattnError(
            f"--patch-size-mm {params.patch_size_mm:g} is {tuple(int(s) for s in size)} voxels, larger than the "
            f"volume ({foreground.shape}); choose a smaller patch"
        )
    axes = [axis_origins(n, int(s), int(t)) for n, s, t in zip(foreground.shape, size, stride, strict=True)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return coords, box_fractions(foreground, coords, size), size


def box_fractions(mask: np.ndarray, corners: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The fraction of each box ``[corner, corner + size)`` covered by ``mask``, by a summed-volume table.

    Args:
        mask: (I, J, K) bool.
        corners: (P, 3) int64.
        size: (3,) box size in voxels.

    Returns:
        (P,) float32.
    """
    table = np.zeros(tuple(n + 1 for n in mask.shape), np.int64)
    table[1:, 1:, 1:] = mask.cumsum(0).cumsum(1).cumsum(2)
    lo, hi = corners, np.minimum(corners + size, mask.shape)
    total = np.zeros(len(corners), np.int64)
    for bits in range(8):
        pick = [(hi if (bits >> a) & 1 else lo)[:, a] for a in range(3)]
        sign = (-1) ** (3 - bin(bits).count("1"))
        total += sign * table[pick[0], pick[1], pick[2]]
    return (total / float(np.prod(size))).astype(np.float32)


def label_fractions(
    label: np.ndarray | None, coords: np.ndarray, params: VolumeGridParams, size: np.ndarray, n_classes: int
) -> np.ndarray:
    """Per row, the fraction of the slice or patch covered by each label value 1..``n_classes``.

    Returns:
        (N, C) float32 (C = 0 without a label volume).
    """
    if label is None or n_classes == 0:
        return np.zeros((len(coords), 0), np.float32)
    columns = []
    for value in range(1, n_classes + 1):
        mask = label == value
        if params.mode == "slices":
            axis = params.axis_index
            per_slice = mask.mean(axis=tuple(a for a in range(3) if a != axis), dtype=np.float64)
            columns.append(per_slice[coords[:, axis]].astype(np.float32))
        else:
            columns.append(box_fractions(mask, coords, size))
    return np.stack(columns, axis=1)
