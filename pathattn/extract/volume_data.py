"""Volume slices and 3-D patches read from the prepared volume in DataLoader workers.

A :class:`VolumePatches` is the read plan of one tiled volume (a coordinates file with ``coord_space``
``voxel_ijk``). A reading process prepares the volume once with the settings recorded at tiling
(:func:`pathattn.volumes.prepare.prepare_volume`: RAS, resampled, preset-mapped, (C, I, J, K)), so the grid is the
one the coordinates index, keeps only that volume (they are large), and cuts its rows from it:

* **slices**, for 2-D encoders: row r is the plane at its index on the slice axis, cut by
  :mod:`pathattn.volumes.slices` (the channel rule: n = 1 planes repeated, 2 as (a, b, a), 3 as RGB; other
  counts are refused before extraction, naming ``--context-slices``), as uint8 so that the device-side
  normalisation of images applies unchanged.
* **3-D patches**, for 3-D encoders: row r is ``image[:, i:i+Pi, j:j+Pj, k:k+Pk]``, (C, Pi, Pj, Pk) float32
  preset values on the RAS grid, never resized; the device normalises them as ``(x - 0.5) / 0.5``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.extract.encoders_3d import PRESETS_3D
from pathattn.io.coords import PatchCoords, is_volume_attrs, read_coords
from pathattn.volumes.slices import RGB_FROM, patch_block, slice_image, slice_planes

if TYPE_CHECKING:
    from pathattn.extract.encoders import Encoder
    from pathattn.volumes.prepare import PrepareParams

VOLUME_PRELOAD = ("pathattn.volumes.prepare",)
"""Modules the reading processes import before they fork, when a run has volumes (MONAI takes seconds)."""


@dataclass(frozen=True)
class VolumePatches:
    """The slices or 3-D patches of one volume to read (module docstring).

    Args:
        volume_id: the volume's id.
        paths: modality → image file or DICOM folder, in the order of tiling (the channel order).
        modalities: one per channel of the prepared volume (the ``modality`` attribute).
        channels: the channels of the prepared volume the encoder sees, in order (the tiling's ``channels``).
        prepare: the settings the volume was prepared with at tiling.
        coords: (N, 3) int64 voxel (i, j, k) of each row.
        mode: ``slices`` or ``patches``.
        axis: the slice axis (0, 1, 2).
        context: 2.5-D neighbours on each side of a slice.
        patch_size: (3,) voxels of a 3-D patch along i, j, k.
        shape: (I, J, K) of the prepared grid recorded at tiling.
        series: modality → the DICOM series read at tiling.
    """

    volume_id: str
    paths: Mapping[str, Path]
    modalities: tuple[str, ...]
    channels: tuple[int, ...]
    prepare: PrepareParams
    coords: np.ndarray
    mode: Literal["slices", "patches"]
    axis: int
    context: int
    patch_size: tuple[int, int, int]
    shape: tuple[int, int, int]
    series: Mapping[str, str] = field(default_factory=dict)

    max_open: ClassVar[int] = 1  # prepared volumes kept per reading process
    pinned: ClassVar[bool] = True  # costly to open: read by one process (pathattn.extract.data.batch_order)

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def source(self) -> str:
        """The image files, for the manifest."""
        return ";".join(str(p) for p in self.paths.values())

    def item_shape(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """(3, H, W) of a slice, (C, Pi, Pj, Pk) of a 3-D patch."""
        return (3, *input_size) if self.mode == "slices" else (len(self.channels), *self.patch_size)

    def blank(self, input_size: Sequence[int]) -> torch.Tensor:
        """Zeros in place of a row that cannot be read."""
        dtype = torch.uint8 if self.mode == "slices" else torch.float32
        return torch.zeros(self.item_shape(input_size), dtype=dtype)

    def open(self) -> np.ndarray:
        """Prepare the volume as at tiling, keep the encoder's channels: (C, I, J, K) float32.

        Raises:
            PathattnError: an image cannot be read, or it no longer gives the grid the coordinates index.
        """
        from pathattn.volumes.prepare import prepare_volume
        from pathattn.volumes.presets import resolve_presets

        presets = resolve_presets(self.prepare.presets, self.modalities)
        foreground = any(p.uses_foreground for p in presets)  # their statistics use the body only
        volume = prepare_volume(self.paths, self.prepare, series=self.series, axis=self.axis, foreground=foreground)
        if volume.shape != self.shape:
            raise PathattnError(
                f"volume {self.volume_id}: {self.source} now gives a {_dims(volume.shape)} grid but it was tiled on "
                f"a {_dims(self.shape)} grid; the image changed since tiling: tile it again"
            )
        everything = self.channels == tuple(range(len(self.modalities)))
        return volume.image if everything else volume.image[list(self.channels)]

    def read(self, image: np.ndarray, row: int, input_size: Sequence[int]) -> torch.Tensor:
        """Row ``row``: a (3, H, W) uint8 slice or a (C, Pi, Pj, Pk) float32 patch."""
        corner = self.coords[row]
        if self.mode == "slices":
            planes = slice_planes(image, self.axis, int(corner[self.axis]), self.context)
            return torch.from_numpy(slice_image(planes, input_size))
        return torch.from_numpy(patch_block(image, corner, self.patch_size))


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in shape)


def _modalities(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(m for m in str(attrs.get("modality", "")).split(",") if m)


def _channels(attrs: Mapping[str, Any]) -> tuple[str, ...]:
    """The modalities the encoder sees (the tiling's ``--channels``; all of them in files written without it)."""
    return tuple(m for m in str(attrs.get("channels", "")).split(",") if m) or _modalities(attrs)


def _mode(attrs: Mapping[str, Any], coords_file: Path) -> Literal["slices", "patches"]:
    mode = attrs.get("mode")
    if mode not in ("slices", "patches"):
        raise PathattnError(f"{coords_file} records the volume mode {mode!r}, not slices or patches; tile it again")
    return mode


def check_encoder(encoder: Encoder, attrs: Mapping[str, Any], coords_file: Path) -> None:
    """Refuse an encoder that cannot embed the rows of a coordinates file (before anything is read).

    Raises:
        PathattnError: a 3-D encoder on slide patches or volume slices, a 2-D encoder on 3-D patches, slices
            whose channel count a 3-channel encoder cannot take, or 3-D patches with another channel count
            than the encoder's.
    """
    name, three_d = encoder.name, encoder.spatial_dims == 3
    if not is_volume_attrs(attrs):
        if three_d:
            raise PathattnError(f"--encoder {name} is a 3-D encoder for the 3-D patches of volumes but {coords_file} "
                                "holds slide patches; choose a 2-D --encoder (a preset or a timm model)")  # fmt: skip
        return
    mode, modalities = _mode(attrs, coords_file), _channels(attrs)
    if mode == "patches" and not three_d:
        raise PathattnError(
            f"{coords_file} holds 3-D patches (--volume-mode patches) but --encoder {name} is a 2-D image encoder; "
            f"choose a 3-D --encoder ({', '.join(PRESETS_3D)}) or tile with --volume-mode slices"
        )
    if mode == "slices" and three_d:
        raise PathattnError(
            f"{coords_file} holds 2-D slices (--volume-mode slices) but --encoder {name} is a 3-D encoder; choose a "
            "2-D --encoder (a preset or a timm model, e.g. resnet18) or tile with --volume-mode patches"
        )
    if mode == "patches" and len(modalities) != encoder.in_channels:
        raise PathattnError(
            f"{coords_file} has {len(modalities)} channels ({','.join(modalities)}) but --encoder {name} was built for "
            f"{encoder.in_channels}; extract volumes of other modalities in a separate run (--slide-ids)"
        )
    context = int(attrs.get("context_slices", 0))
    n = len(modalities) * (2 * context + 1)
    if mode == "slices" and n not in RGB_FROM:
        kinds = "modality" if len(modalities) == 1 else "modalities"
        fix = "--context-slices 0 or 1" if len(modalities) == 1 else "--context-slices 0 and at most 3 modalities"
        raise PathattnError(
            f"{coords_file}: its slices have {n} channels ({len(modalities)} {kinds} x {2 * context + 1} slices, "
            f"--context-slices {context}) but a 2-D --encoder {name} takes 1, 2 or 3 (docs/volumes.md); tile "
            f"again with {fix}"
        )


def input_channels(coords_files: Sequence[Path]) -> int:
    """The channels a 3-D encoder needs for the 3-D patch tilings among ``coords_files`` (1 without any).

    Unreadable files are left to the batch (they fail there).

    Raises:
        PathattnError: the tilings have different channel counts.
    """
    counts: dict[int, str] = {}
    for path in coords_files:
        try:
            attrs = read_coords(path).attrs
        except PathattnError:
            continue
        if is_volume_attrs(attrs) and attrs.get("mode") == "patches":
            counts.setdefault(len(_channels(attrs)), path.stem)
    if len(counts) > 1:
        listed = ", ".join(f"{n} in {stem}" for n, stem in sorted(counts.items()))
        raise PathattnError(f"--coords: the 3-D patches have different channel counts ({listed}); a 3-D encoder "
                            "takes one: extract them in separate runs (--slide-ids)")  # fmt: skip
    return next(iter(counts), 1)


def _image_paths(
    attrs: Mapping[str, Any], override: Mapping[str, Path] | None, volume_id: str, coords_file: Path
) -> dict[str, Path]:
    """Modality → image, as recorded at tiling or from ``--samples``, after checking that every image exists."""
    try:
        recorded = {str(m).upper(): Path(p) for m, p in json.loads(str(attrs.get("volume_paths", ""))).items()}
    except (json.JSONDecodeError, AttributeError):
        recorded = {}
    if not recorded and not override:
        raise PathattnError(f"{coords_file} does not name its images (volume_paths); pass --samples with "
                            "<modality>_path columns, or tile it again")  # fmt: skip
    paths = recorded
    if override:
        given = {str(m).upper(): Path(p) for m, p in override.items()}
        if recorded and set(given) != set(recorded):
            raise PathattnError(
                f"--samples gives the images {', '.join(given)} for volume {volume_id} but it was tiled from "
                f"{', '.join(recorded)} ({coords_file}); give the same <modality>_path columns"
            )
        paths = {m: given[m] for m in recorded} if recorded else given
    for modality, path in paths.items():
        if not path.exists():
            raise PathattnError(
                f"volume {volume_id}: its {modality} image {path} is not found; pass --samples with its "
                f"{modality.lower()}_path column, or tile it again"
            )
    return paths


def _check_rows(plan: VolumePatches, coords_file: Path) -> None:
    """Refuse rows outside the prepared grid recorded at tiling."""
    xyz, shape = plan.coords, np.asarray(plan.shape)
    if plan.mode == "slices":
        index = xyz[:, plan.axis]
        outside = np.flatnonzero((index < 0) | (index >= shape[plan.axis]))
    else:
        outside = np.flatnonzero((xyz < 0).any(axis=1) | (xyz + np.asarray(plan.patch_size) > shape).any(axis=1))
    if len(outside):
        first = tuple(int(v) for v in xyz[outside[0]])
        raise PathattnError(
            f"{coords_file}: {len(outside)} of {len(xyz)} rows lie outside the {_dims(plan.shape)} prepared grid "
            f"(the first at voxel {first}); tile it again"
        )


def plan_volume(
    coords: PatchCoords, coords_file: Path, encoder: Encoder, override: Mapping[str, Path] | None = None
) -> VolumePatches:
    """The read plan of a tiled volume, after checking the encoder, the images and the rows.

    Args:
        coords: the volume's coordinates file, read.
        coords_file: its path (for messages).
        encoder: the encoder the rows are for.
        override: modality → image from ``--samples`` (images that moved since tiling).

    Raises:
        PathattnError: the encoder does not fit (:func:`check_encoder`), an image is missing, the file records
            no preparation settings, or rows lie outside the grid.
    """
    from pathattn.volumes.prepare import PrepareParams, encoder_channels, recorded_series

    attrs, volume_id = coords.attrs, coords_file.stem
    check_encoder(encoder, attrs, coords_file)
    try:
        prepare = PrepareParams.from_attrs(attrs)
        shape = tuple(int(v) for v in attrs["shape"])
        patch_size = tuple(int(v) for v in attrs["patch_size_vox"])
        axis = int(attrs["axis_index"])
    except (KeyError, TypeError, ValueError) as err:
        raise PathattnError(f"{coords_file} records no {err} of its volume grid; tile it again") from None
    plan = VolumePatches(
        volume_id, _image_paths(attrs, override, volume_id, coords_file), _modalities(attrs),
        encoder_channels(_channels(attrs), _modalities(attrs)), prepare, coords.coords, _mode(attrs, coords_file),
        axis, int(attrs.get("context_slices", 0)), patch_size, shape, recorded_series(attrs),
    )  # fmt: skip
    _check_rows(plan, coords_file)
    return plan


def channel_names(attrs: Mapping[str, Any]) -> list[str]:
    """What each input channel of the encoder holds, e.g. ``["CT@-1", "CT@0", "CT@+1"]`` or ``["PET", "CT", "PET"]``."""
    modalities, context = _channels(attrs), int(attrs.get("context_slices", 0))
    if attrs.get("mode") == "patches":
        return list(modalities)
    names = [m if context == 0 else f"{m}@{o:+d}".replace("@+0", "@0") for m in modalities
             for o in range(-context, context + 1)]  # fmt: skip
    return [names[c] for c in RGB_FROM.get(len(names), range(len(names)))]


def volume_provenance(attrs: Mapping[str, Any]) -> dict[str, object]:
    """The feature file's volume attributes: grid, slice axis, context, modality, channels."""
    return {
        "volume_id": str(attrs.get("name", "")),
        "spacing": np.asarray(attrs.get("spacing", []), np.float64),
        "axis": str(attrs.get("axis", "")),
        "axis_index": int(attrs.get("axis_index", -1)),
        "context_slices": int(attrs.get("context_slices", 0)),
        "modality": str(attrs.get("modality", "")),
        "channels": ",".join(_channels(attrs)),
        "preset": str(attrs.get("preset", "")),
        "mode": str(attrs.get("mode", "")),
        "patch_size_vox": np.asarray(attrs.get("patch_size_vox", []), np.int64),
        "input_channels": json.dumps(channel_names(attrs)),
    }
