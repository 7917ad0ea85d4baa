"""Tile one volume, or a resumable batch of volumes with a manifest (``pathattn tile`` on volumes).

Outputs under the run folder ``OUT`` (the layout of slide tiling)::

    OUT/coords/{volume_id}.h5              slice or patch origins, fractions, the grid's attributes (written last)
    OUT/foreground/{volume_id}.nii.gz      the body mask on the prepared grid (the volume's tissue mask)
    OUT/qc/{volume_id}.png                 orthogonal planes and a montage with foreground and label outlines
    OUT/manifest.csv                       one row per volume: status, rows kept, spacing, error

Every file is written atomically; a finished volume is skipped on the next run unless ``overwrite``; a
volume that fails is recorded with its error and the batch goes on.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from pathattn import __version__
from pathattn.batch import Batch, BatchRow, guarded, print_error
from pathattn.errors import PathattnError
from pathattn.io.atomic import atomic_path
from pathattn.io.coords import VOXEL_IJK, PatchCoords, is_complete, read_coords, write_coords
from pathattn.io.ids import check_id, output_path
from pathattn.io.volume_samples import VolumeEntry
from pathattn.scoremaps.images import write_png
from pathattn.tile.volume_grid import VolumeGridParams, label_fractions, patch_grid, slice_grid
from pathattn.tile.volume_qc import render_volume_qc
from pathattn.volumes.prepare import PreparedVolume, PrepareParams, encoder_channels, prepare_volume


@dataclass(kw_only=True)
class VolumeTileRow(BatchRow):
    """One row of the manifest."""

    n_patches: int = 0
    spacing: str = ""
    shape: str = ""
    modalities: str = ""


@dataclass(frozen=True)
class VolumeTileJob:
    """What to tile and where: shared by every volume of a batch.

    Args:
        out: the run folder.
        grid: slices or 3-D patches, and their filter.
        prepare: spacing, presets and CT threshold.
        label_names: names of label values 1, 2, ... (values beyond the list are named ``label_<v>``).
        overwrite: redo volumes that are already finished.
    """

    out: Path
    grid: VolumeGridParams = VolumeGridParams()
    prepare: PrepareParams = PrepareParams()
    label_names: tuple[str, ...] = ("lesion",)
    overwrite: bool = False
    folders_: tuple[str, ...] = field(default=("coords", "foreground", "qc"), repr=False)

    def path(self, folder: str, volume_id: str, suffix: str) -> Path:
        """The output ``OUT/folder/{volume_id}{suffix}``, checked to stay inside ``OUT``."""
        return output_path(self.out, folder, f"{check_id(volume_id, 'volume')}{suffix}")

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders the volumes write into."""
        return tuple(self.out / sub for sub in self.folders_)


def class_names(label: np.ndarray | None, names: Sequence[str]) -> list[str]:
    """Names of the label values 1..max(label): ``names`` first, then ``label_<v>``."""
    if label is None:
        return []
    top = max(int(label.max()), 0)
    return [names[v - 1] if v <= len(names) else f"label_{v}" for v in range(1, top + 1)]


def grid_attrs(entry: VolumeEntry, volume: PreparedVolume, job: VolumeTileJob, size: np.ndarray) -> dict:
    """The attributes of ``coords`` for a volume (docs/formats.md, "Volumes")."""
    spacing = np.asarray(volume.spacing)
    return {
        "coord_space": VOXEL_IJK,
        "coord_order": "ijk",
        "coord_anchor": "origin_corner",
        "orientation": "RAS",
        "name": entry.volume_id,
        "spacing": spacing,
        "original_spacing": np.asarray(volume.original_spacing),
        "affine": volume.affine,
        "shape": np.asarray(volume.shape),
        "modality": ",".join(volume.modalities),
        "preset": ",".join(volume.presets),
        "mode": job.grid.mode,
        "axis": job.grid.axis,
        "axis_index": job.grid.axis_index,
        "context_slices": job.grid.context,
        "channels": ",".join(volume.modalities[c] for c in encoder_channels(job.grid.channels, volume.modalities)),
        "patch_size_vox": size,
        "patch_size_mm": size * spacing,
        "min_foreground": job.grid.min_foreground,
        "volume_paths": json.dumps({m: str(p) for m, p in entry.paths.items()}),
        "label_path": str(entry.label_path or ""),
        "sources": json.dumps(list(volume.sources), default=str),
        "pathattn_version": __version__,
        **job.prepare.as_attrs(),
    }


def write_mask(path: Path, mask: np.ndarray, affine: np.ndarray) -> None:
    """Write a bool mask as a uint8 NIfTI file atomically."""
    with atomic_path(path) as tmp:
        # NIfTI stores column-major: hand nibabel a Fortran-ordered array, so it writes without a strided copy
        nib.save(nib.Nifti1Image(np.asfortranarray(mask, dtype=np.uint8), affine), str(tmp))


def plan(volume: PreparedVolume, job: VolumeTileJob) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept grid rows, their foreground fractions, and the slice or patch size in voxels."""
    assert volume.foreground is not None
    if not volume.foreground.any():
        raise PathattnError("the volume has no foreground (nothing above the threshold); check its intensities, "
                            "--ct-threshold or the QC image")  # fmt: skip
    if job.grid.mode == "slices":
        coords, fractions = slice_grid(volume.foreground, job.grid)
        size = np.asarray(volume.shape, np.int64)
        size[job.grid.axis_index] = 1
    else:
        coords, fractions, size = patch_grid(volume.foreground, job.grid, volume.spacing)
    keep = (fractions >= job.grid.min_foreground) & (fractions > 0)
    return coords[keep], fractions[keep], size


def _tile(entry: VolumeEntry, job: VolumeTileJob) -> VolumeTileRow:
    """Tile one volume (errors propagate)."""
    volume = prepare_volume(
        entry.paths, job.prepare, label_path=entry.label_path, series=entry.series, axis=job.grid.axis_index
    )
    coords, fractions, size = plan(volume, job)
    classes = class_names(volume.label, job.label_names)
    labels = label_fractions(volume.label, coords, job.grid, size, len(classes))
    caption = f"{entry.volume_id}: {len(coords)} {job.grid.mode}, {' x '.join(f'{s:.2g}' for s in volume.spacing)} mm"
    write_mask(job.path("foreground", entry.volume_id, ".nii.gz"), volume.foreground, volume.affine)
    write_png(job.path("qc", entry.volume_id, ".png"), render_volume_qc(volume, coords, job.grid.axis_index, caption))
    attrs = grid_attrs(entry, volume, job, size)
    write_coords(job.path("coords", entry.volume_id, ".h5"), PatchCoords(coords, attrs, fractions, labels, classes))
    return _row(entry.volume_id, "done" if len(coords) else "empty", len(coords), attrs)


def _row(volume_id: str, status: str, n: int, attrs: dict) -> VolumeTileRow:
    fmt = lambda values: "x".join(f"{float(v):g}" for v in values)  # noqa: E731
    return VolumeTileRow(volume_id, status, n_patches=n, spacing=fmt(attrs["spacing"]), shape=fmt(attrs["shape"]),
                         modalities=str(attrs["modality"]))  # fmt: skip


def _tile_or_skip(entry: VolumeEntry, job: VolumeTileJob) -> VolumeTileRow:
    """Tile one volume, or skip it when its coordinates file is complete (and ``job.overwrite`` is off)."""
    coords_path = job.path("coords", entry.volume_id, ".h5")
    if job.overwrite or not is_complete(coords_path):
        return _tile(entry, job)
    done = read_coords(coords_path)
    return _row(entry.volume_id, "skipped", len(done), done.attrs)


def tile_volume(entry: VolumeEntry, job: VolumeTileJob) -> VolumeTileRow:
    """Tile one volume; never raises for a bad volume (the error is in the row)."""
    return guarded(functools.partial(_tile_or_skip, job=job), entry, entry.volume_id, VolumeTileRow)


def run_tile_volumes(job: VolumeTileJob, entries: Sequence[VolumeEntry], workers: int = 1,
                     allow_empty: bool = False) -> int:  # fmt: skip
    """``pathattn tile`` on volumes: tile them and print the summary; return the exit code.

    Returns:
        1 when a volume failed, or kept no slice or patch and ``allow_empty`` is off; else 0.
    """
    with Batch("tile", job.out, VolumeTileRow, job.folders, total=len(entries), unit="volumes",
               counter="n_patches") as batch:  # fmt: skip
        batch.run(entries, functools.partial(tile_volume, job=job), lambda e: e.volume_id, workers)
    outcome = batch.outcome([e.volume_id for e in entries])
    if outcome.report():
        return 1
    empty = [row.slide_id for row in outcome.rows if row.status == "empty"]
    if empty and not allow_empty:
        print_error("tile", f"{len(empty)} volumes kept no {job.grid.mode} ({', '.join(empty[:5])}); check their QC "
                    "images, lower --min-foreground, or pass --allow-empty")  # fmt: skip
        return 1
    return 0
