"""The 2-D slices of a volume tiling as a labelled image set (``pathattn classify`` and ``pathattn cams``).

Each volume of a slice tiling (``--volume-mode slices``) is prepared again with the settings recorded at tiling
(:func:`pathattn.volumes.prepare.prepare_volume`, the same series, spacing and presets), and every kept slice is cut as
a (3, H, W) uint8 image by the channel rule of :mod:`pathattn.volumes.slices` from the channels chosen (the
tiling's ``channels`` by default: ``--channels PET`` or ``PET,CT`` picks among the modalities tiled).

**Per-slice labels** (the PET/CT paper's rule: a slice is positive when it crosses a tumour): ``positive`` when
the slice's lesion fraction, recorded at tiling from the label volume, is above ``min_fraction`` (default 0:
at least one lesion voxel in the slice), else ``negative``. The lesion mask of each slice is cut from the
label volume on the image's pixels (:func:`~pathattn.volumes.slices.slice_mask`), for the localization of CAMs.
A volume tiled without a label volume gives unlabelled slices (label -1), which can be predicted but not
trained on.

Patients and centres come from the sample sheet (``volume_id``, ``patient_id``, ``centre``); without one
every volume is its own patient. A volume that cannot be read is left out and listed in ``skipped`` (the rest
go on).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pathattn.errors import PathattnError
from pathattn.io.coords import PatchCoords, is_volume_attrs, read_coords
from pathattn.io.image_set import ImageSet, read_image_sheet
from pathattn.io.manifest import run_files
from pathattn.io.samples import read_table
from pathattn.volumes.slices import RGB_FROM, slice_image, slice_mask, slice_planes

CLASSES = ("negative", "positive")
UNLABELLED = -1


@dataclass(frozen=True)
class SliceSetOptions:
    """How slices become images.

    Args:
        size: (height, width) of every image.
        channels: the modalities the network sees, in order (None: the tiling's ``channels``).
        min_fraction: a slice is positive above this lesion fraction.
        with_masks: cut the lesion mask of each slice.
    """

    size: tuple[int, int] = (224, 224)
    channels: tuple[str, ...] | None = None
    min_fraction: float = 0.0
    with_masks: bool = True


@dataclass(frozen=True)
class _VolumeSlices:
    volume_id: str
    ids: list[str]
    images: np.ndarray
    fractions: np.ndarray
    masks: np.ndarray | None
    labelled: bool


def slice_id(volume_id: str, axis: str, index: int) -> str:
    """The image id of a slice: ``{volume_id}_{a}{index:04d}`` with ``a`` the axis' initial (``P001_s1_a0012``)."""
    return f"{volume_id}_{axis[:1] or 's'}{int(index):04d}"


def _channels(attrs: Mapping[str, object], wanted: Sequence[str] | None, path: Path) -> tuple[int, ...]:
    """Indices of the wanted modalities among those prepared (the tiling's ``modality``)."""
    modalities = [m for m in str(attrs.get("modality", "")).split(",") if m]
    chosen = list(wanted) if wanted else [m for m in str(attrs.get("channels", "")).split(",") if m] or modalities
    unknown = [m for m in chosen if m.upper() not in modalities]
    if unknown:
        raise PathattnError(f"--channels {','.join(chosen)}: {path} was tiled from {','.join(modalities)}; choose "
                            "among those")  # fmt: skip
    context = int(attrs.get("context_slices", 0))
    if len(chosen) * (2 * context + 1) not in RGB_FROM:
        raise PathattnError(f"--channels {','.join(chosen)} with {context} context slices gives "
                            f"{len(chosen) * (2 * context + 1)} planes; a 2-D network takes 1, 2 or 3")  # fmt: skip
    return tuple(modalities.index(m.upper()) for m in chosen)


def check_slice_tiling(coords: PatchCoords, path: Path) -> None:
    """Refuse a coordinates file that does not hold volume slices.

    Raises:
        PathattnError: slide patches or 3-D patches, naming the file and the fix.
    """
    if not is_volume_attrs(coords.attrs):
        raise PathattnError(f"{path} holds slide patches; image classifiers take volume slices: tile volumes with "
                            "--volume-mode slices, or pass --images with an image sheet")  # fmt: skip
    if coords.attrs.get("mode") != "slices":
        raise PathattnError(f"{path} holds 3-D patches; tile the volumes again with --volume-mode slices")


def cut_volume(path: Path, options: SliceSetOptions) -> _VolumeSlices:
    """Prepare one tiled volume as at tiling and cut its slices, masks and fractions."""
    from pathattn.volumes.prepare import PrepareParams, prepare_volume, recorded_series
    from pathattn.volumes.presets import resolve_presets

    coords = read_coords(path)
    check_slice_tiling(coords, path)
    attrs, volume_id = coords.attrs, path.stem
    chosen = _channels(attrs, options.channels, path)
    params = PrepareParams.from_attrs(attrs)
    modalities = tuple(m for m in str(attrs["modality"]).split(",") if m)
    paths = {m.upper(): Path(p) for m, p in json.loads(str(attrs["volume_paths"])).items()}
    label_path = Path(str(attrs["label_path"])) if coords.is_annotated and attrs.get("label_path") else None
    statistics = any(p.uses_foreground for p in resolve_presets(params.presets, modalities))
    axis, context = int(attrs["axis_index"]), int(attrs.get("context_slices", 0))
    volume = prepare_volume(paths, params, label_path=label_path, series=recorded_series(attrs), axis=axis,
                            foreground=statistics)  # fmt: skip
    image = volume.image[list(chosen)]
    indices = [int(row[axis]) for row in coords.coords]
    images = np.stack([slice_image(slice_planes(image, axis, k, context), options.size) for k in indices])
    masks = None
    if options.with_masks and volume.label is not None:
        masks = np.stack([slice_mask(volume.label, axis, k, options.size) for k in indices])
    labelled = coords.is_annotated and len(coords.classes) > 0
    fractions = coords.lesion_fraction() if labelled else np.zeros(len(indices))
    ids = [slice_id(volume_id, str(attrs.get("axis", "")), k) for k in indices]
    return _VolumeSlices(volume_id, ids, images, fractions, masks, labelled or label_path is not None)


class _Volumes(Dataset):
    """One item per tiled volume: its slices, or the one-line error that stopped it."""

    def __init__(self, paths: Sequence[Path], options: SliceSetOptions) -> None:
        self.paths, self.options = list(paths), options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> _VolumeSlices | tuple[str, str]:
        torch.set_num_threads(1)
        try:
            return cut_volume(self.paths[index], self.options)
        except PathattnError as err:
            return self.paths[index].stem, " ".join(str(err).split())


def _read_all(paths: Sequence[Path], options: SliceSetOptions, workers: int) -> Iterator[_VolumeSlices | tuple]:
    """The volumes' slices (or their errors), read by ``workers`` processes."""
    loader = DataLoader(_Volumes(paths, options), batch_size=None, num_workers=workers, collate_fn=lambda item: item)
    yield from loader


def _people(samples: Path | None) -> tuple[dict[str, str], dict[str, str]]:
    """volume id → patient id and → centre, from the sample sheet (empty without one)."""
    if samples is None:
        return {}, {}
    rows = read_table(samples, ("volume_id",), aliases={"volume_id": "slide_id"})
    patients = {r["volume_id"]: r.get("patient_id") or r["volume_id"] for r in rows}
    return patients, {r["volume_id"]: r.get("centre", "") for r in rows}


def read_slice_set(
    tiles: Path,
    options: SliceSetOptions,
    samples: Path | None = None,
    volume_ids: Sequence[str] | None = None,
    workers: int = 0,
) -> ImageSet:
    """Every kept slice of a slice tiling as an :class:`~pathattn.io.image_set.ImageSet` (module docstring).

    Args:
        tiles: the ``pathattn tile`` output (``coords/*.h5``).
        options: size, channels, label threshold, masks.
        samples: the sample sheet with ``volume_id``, ``patient_id`` and ``centre``.
        volume_ids: only these volumes (None: all).
        workers: processes reading volumes (0: this one).

    Raises:
        PathattnError: no tiling, a tiling that is not of slices, no volume left, or a volume of the sheet
            missing from the tiling.
    """
    files = {p.stem: p for p in run_files(tiles, "coords", "--tiles", "tile")}
    if volume_ids is not None:
        absent = [v for v in volume_ids if v not in files]
        if absent:
            raise PathattnError(f"--tiles {tiles} has no tiling of volume(s) {', '.join(absent[:5])}; tile them first")
        files = {v: files[v] for v in volume_ids}
    patients, centres = _people(samples)
    parts, skipped = [], []
    for item in _read_all(list(files.values()), options, workers):
        if isinstance(item, tuple):
            skipped.append(item)
        elif len(item.ids):
            parts.append(item)
    if not parts:
        reason = f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise PathattnError(f"--tiles {tiles}: no volume gave slices{reason}; fix the tiling")
    return _assemble(parts, skipped, patients, centres, options.min_fraction)


def _assemble(
    parts: Sequence[_VolumeSlices], skipped: list[tuple[str, str]], patients: Mapping[str, str],
    centres: Mapping[str, str], min_fraction: float,
) -> ImageSet:  # fmt: skip
    """One image set from the volumes' slices."""
    each = lambda name: tuple(v for p in parts for v in [getattr(p, name)] * len(p.ids))  # noqa: E731
    fractions = np.concatenate([p.fractions for p in parts]).astype(np.float64)
    labelled = np.concatenate([np.full(len(p.ids), p.labelled) for p in parts])
    labels = np.where(labelled, (fractions > min_fraction).astype(np.int64), UNLABELLED)
    masks = None
    if all(p.masks is not None for p in parts):
        masks = np.concatenate([p.masks for p in parts])
    volumes = each("volume_id")
    return ImageSet(
        tuple(i for p in parts for i in p.ids), np.concatenate([p.images for p in parts]), labels, CLASSES,
        tuple(patients.get(v, v) for v in volumes), tuple(centres.get(v, "") for v in volumes), volumes,
        masks, fractions, tuple(skipped),
    )  # fmt: skip


def read_images(
    tiles: Path | None, sheet: Path | None, options: SliceSetOptions, samples: Path | None = None, workers: int = 0
) -> ImageSet:
    """The images of ``--tiles`` (a slice tiling, with the sample sheet ``samples``) or of ``--images`` (a sheet).

    Raises:
        PathattnError: neither or both given, or what :func:`read_slice_set` and
            :func:`~pathattn.io.image_set.read_image_sheet` refuse.
    """
    if (tiles is None) == (sheet is None):
        raise PathattnError("pass either --tiles (a slice tiling of volumes) or --images (an image sheet)")
    if sheet is not None:
        return read_image_sheet(sheet, options.size)
    return read_slice_set(tiles, options, samples, workers=workers)
