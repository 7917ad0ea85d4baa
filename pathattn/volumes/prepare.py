"""A volume made ready to cut: read (RAS), resampled to the target spacing, mapped by its presets.

``tile`` and ``extract`` both call :func:`prepare_volume` with the settings recorded in the coordinates file
(:meth:`PrepareParams.as_attrs`), so the voxels an encoder sees are those the grid was planned on, read
straight from the image files.

Spacing rule: ``spacing`` gives the target mm along i, j, k of the RAS grid; an axis given as ``None`` keeps
the volume's own spacing (the default keeps all three). Images are resampled with trilinear interpolation,
labels with nearest neighbour, both by MONAI's ``Spacing`` on the same input grid, so they stay aligned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Spacing

from pathattn.errors import PathattnError
from pathattn.io.volume import Volume, read_label, read_study
from pathattn.volumes.foreground import CT_THRESHOLD_HU, foreground_mask
from pathattn.volumes.presets import apply_preset, resolve_presets


@dataclass(frozen=True)
class PrepareParams:
    """How a volume is resampled and mapped to intensities.

    Args:
        spacing: target mm along i, j, k; ``None`` keeps the volume's own spacing on that axis.
        presets: the ``--preset`` items (names per channel, one for all, or ``MODALITY=name``); empty for
            each modality's default.
        ct_threshold: HU above which CT voxels are body (foreground detection).
    """

    spacing: tuple[float | None, float | None, float | None] = (None, None, None)
    presets: tuple[str, ...] = ()
    ct_threshold: float = CT_THRESHOLD_HU

    def __post_init__(self) -> None:
        if len(self.spacing) != 3:
            raise PathattnError(f"--spacing needs three values (mm along i, j, k), got {len(self.spacing)}")
        for value in self.spacing:
            if value is not None and not (math.isfinite(value) and value > 0):
                raise PathattnError(f"--spacing {value} must be a positive number of millimetres")

    def as_attrs(self) -> dict[str, str]:
        """The settings as HDF5 attributes (JSON strings), read back by :meth:`from_attrs`."""
        return {"prepare": json.dumps({"spacing": list(self.spacing), "presets": list(self.presets),
                                       "ct_threshold": self.ct_threshold})}  # fmt: skip

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> PrepareParams:
        """The settings a coordinates file was tiled with."""
        saved = json.loads(attrs["prepare"])
        return cls(tuple(saved["spacing"]), tuple(saved["presets"]), float(saved["ct_threshold"]))


@dataclass
class PreparedVolume:
    """A volume on its target grid.

    Args:
        image: (C, I, J, K) float32, each channel mapped by its preset.
        affine: (4, 4) voxel → RAS mm of the target grid.
        modalities: one per channel.
        presets: the preset of each channel.
        sources: per channel, what was read (file, format, original orientation, SUV conversion).
        foreground: (I, J, K) bool body mask, or None when not asked for.
        label: (I, J, K) int16 label volume on the same grid, or None.
        original_spacing: mm along i, j, k of the volume as read (RAS, before resampling).
        original_shape: (I, J, K) of the volume as read (RAS, before resampling).
    """

    image: np.ndarray
    affine: np.ndarray
    modalities: tuple[str, ...]
    presets: tuple[str, ...]
    sources: tuple[dict, ...] = ()
    foreground: np.ndarray | None = None
    label: np.ndarray | None = None
    original_spacing: tuple[float, float, float] = field(default=(math.nan, math.nan, math.nan))
    original_shape: tuple[int, int, int] = (0, 0, 0)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """mm along i, j, k."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(I, J, K)."""
        return tuple(int(v) for v in self.image.shape[1:])


def target_spacing(current: Sequence[float], wanted: Sequence[float | None]) -> tuple[float, float, float]:
    """The spacing to resample to: ``wanted`` where given, else ``current``."""
    return tuple(float(c if w is None else w) for c, w in zip(current, wanted, strict=True))


def resample(
    array: np.ndarray, affine: np.ndarray, spacing: Sequence[float], mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a channel-first array to ``spacing`` with MONAI's ``Spacing``.

    Args:
        array: (C, I, J, K).
        affine: (4, 4) voxel → RAS mm.
        spacing: target mm along i, j, k.
        mode: ``bilinear`` (trilinear in 3-D) or ``nearest``.

    Returns:
        The resampled (C, I', J', K') array (float32, or the input dtype for ``nearest``) and its affine.
    """
    current = np.linalg.norm(affine[:3, :3], axis=0)
    if np.allclose(current, spacing, rtol=1e-6, atol=1e-9):
        return array, affine
    tensor = MetaTensor(torch.as_tensor(np.asarray(array, np.float32)), affine=torch.as_tensor(affine))
    out = Spacing(pixdim=tuple(spacing), mode=mode, padding_mode="border" if mode != "nearest" else "zeros")(tensor)
    result = out.numpy()
    result = np.rint(result).astype(array.dtype) if mode == "nearest" else result.astype(np.float32)
    return result, np.asarray(out.affine, np.float64)


def encoder_channels(wanted: Sequence[str], modalities: Sequence[str]) -> tuple[int, ...]:
    """The channels of a prepared volume that an encoder sees: ``wanted`` modalities in that order, or all.

    Raises:
        PathattnError: a wanted modality the volume does not have.
    """
    upper = [m.upper() for m in modalities]
    missing = [w for w in wanted if w.upper() not in upper]
    if missing:
        raise PathattnError(f"--channels {' '.join(missing)}: the volume has {', '.join(modalities)}; name some of "
                            "these (or leave --channels out for all)")  # fmt: skip
    return tuple(upper.index(w.upper()) for w in wanted) if wanted else tuple(range(len(modalities)))


def recorded_series(attrs: Mapping[str, Any]) -> dict[str, str]:
    """Modality → the DICOM series a tiling read (its ``sources``), so later stages read the same series."""
    try:
        sources = json.loads(str(attrs.get("sources", "[]")))
    except json.JSONDecodeError:
        return {}
    modalities = str(attrs.get("modality", "")).split(",")
    return {m: str(s["series_uid"]) for m, s in zip(modalities, sources, strict=False)
            if isinstance(s, dict) and s.get("series_uid")}  # fmt: skip


def reference_channel(modalities: Sequence[str]) -> int:
    """The channel foreground detection runs on: the CT when present, else the first."""
    upper = [m.upper() for m in modalities]
    return upper.index("CT") if "CT" in upper else 0


def prepare_volume(
    paths: Mapping[str, Path],
    params: PrepareParams,
    *,
    label_path: Path | None = None,
    series: Mapping[str, str] | None = None,
    axis: int = 2,
    foreground: bool = True,
) -> PreparedVolume:
    """Read, resample, detect the foreground and apply the presets.

    Args:
        paths: modality → image file or DICOM folder (several: aligned on the reference grid).
        params: spacing, presets, CT threshold.
        label_path: a label volume on the image's grid, resampled alongside.
        series: modality → the SeriesInstanceUID to read from its DICOM folder (:func:`recorded_series`).
        axis: the slice axis (holes of the foreground are filled slice by slice along it).
        foreground: detect the foreground (``extract`` does not need it).

    Raises:
        PathattnError: an unreadable file, a label that does not match, a bad preset, an empty volume.
    """
    volume: Volume = read_study(paths, series=series)
    label = read_label(label_path, volume) if label_path is not None else None
    spacing = target_spacing(volume.spacing, params.spacing)
    image, affine = resample(volume.array, volume.affine, spacing, "bilinear")
    if label is not None:
        label = resample(label[None].astype(np.int16), volume.affine, spacing, "nearest")[0][0]
    if min(image.shape[1:]) < 1:
        raise PathattnError(f"{next(iter(paths.values()))}: the volume is empty after resampling to {spacing} mm")
    reference = reference_channel(volume.modalities)
    mask = (
        foreground_mask(image[reference], volume.modalities[reference], axis, params.ct_threshold, spacing)
        if foreground
        else None
    )
    presets = resolve_presets(params.presets, volume.modalities)
    for channel, preset in enumerate(presets):
        apply_preset(image[channel], preset, mask, out=image[channel])
    return PreparedVolume(
        image, affine, volume.modalities, tuple(p.name for p in presets), volume.sources, mask, label,
        tuple(float(s) for s in volume.spacing), volume.shape,
    )  # fmt: skip
