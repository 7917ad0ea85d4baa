"""Extract patch features for a batch of tiled slides or volumes: resumable, atomic, one bad item never stops
the rest.

Outputs under the run folder ``OUT`` (CLAM's layout, so CLAM-style training code can read it)::

    OUT/h5_files/{slide_id}.h5   features (N, D) + coords (N, 2) or (N, 3) voxels + provenance attributes
    OUT/pt_files/{slide_id}.pt   (N, D) tensor, with ``clam_pt``
    OUT/manifest.csv             one row per slide or volume: status, patches, embedding size, error

Slides and volumes are told apart by their coordinates file (``coord_space``) and read through one
DataLoader (:mod:`pathattn.extract.data`, :mod:`pathattn.extract.volume_data`). Reading, decoding and resizing
run in DataLoader workers; the forward pass runs on the device on uint8 batches (float32 for 3-D patches)
normalised there (pinned memory, non-blocking copies, channels_last, autocast), so the stages overlap.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import timm
import torch
from torch.utils.data import DataLoader

from pathattn import __version__
from pathattn.batch import Batch, BatchOutcome, BatchRow, one_line
from pathattn.devices import resolve_device
from pathattn.errors import PathattnError
from pathattn.extract.data import (
    PatchDataset,
    ReadPlan,
    Source,
    batch_order,
    make_plan,
    plan_slide,
    provenance_extras,
    recorded_source,
    sample_sources,
)
from pathattn.extract.embed import Embedder, Precision
from pathattn.extract.encoders import Encoder, create_encoder
from pathattn.extract.encoders_3d import PRESETS_3D
from pathattn.extract.resume import recipe, refuse_stale
from pathattn.extract.volume_data import VOLUME_PRELOAD, check_encoder, input_channels
from pathattn.extract.workers import worker_context
from pathattn.io.bags import write_clam_pt, write_features
from pathattn.io.coords import PatchCoords, is_volume_attrs, read_coords
from pathattn.io.ids import check_id, output_path
from pathattn.io.manifest import run_files
from pathattn.io.samples import select_ids

FeatureDtype = Literal["float32", "float16"]
_check_slide = plan_slide  # its former name here (tests/tile/test_compat.py)


@dataclass(kw_only=True)
class ExtractRow(BatchRow):
    """One row of the manifest."""

    n_patches: int = 0
    embed_dim: int = 0
    encoder: str = ""
    slide_path: str = ""


@dataclass(frozen=True)
class ExtractJob:
    """Settings shared by every slide of a run.

    Args:
        out: the run folder.
        batch_size: patches per forward pass.
        workers: DataLoader worker processes reading patches (0 reads in the main process; None: one on
            the CPU, where the model needs the cores, and up to 8 beside a GPU).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
        precision: autocast precision of the forward pass.
        dtype: storage type of the features.
        clam_pt: also write CLAM's ``pt_files/{slide_id}.pt``.
        compile: ``torch.compile`` the encoder.
        overwrite: redo slides whose features exist.
    """

    out: Path
    batch_size: int = 64
    workers: int | None = None
    device: str = "auto"
    precision: Precision = "fp32"
    dtype: FeatureDtype = "float32"
    clam_pt: bool = False
    compile: bool = False
    overwrite: bool = False

    def features_path(self, slide_id: str) -> Path:
        return output_path(self.out, "h5_files", f"{check_id(slide_id)}.h5")

    def pt_path(self, slide_id: str) -> Path:
        return output_path(self.out, "pt_files", f"{check_id(slide_id)}.pt")

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """The number of reading processes: as asked, else 1 on the CPU and up to 8 (cores - 1) beside a GPU."""
    if workers is not None:
        return workers
    return 1 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))


def find_coords(folder: str | Path) -> list[Path]:
    """Coordinate files of a tiling run: ``DIR/coords/*.h5``, or ``DIR/*.h5`` when given the coords folder."""
    return run_files(folder, "coords", "--coords", "tile")


def _provenance(encoder: Encoder, job: ExtractJob, coords: PatchCoords, slide_id: str) -> dict[str, object]:
    """The feature file's attributes: its recipe (:mod:`pathattn.extract.resume`), where it comes from, and the
    slide's resolution or the volume's grid (:func:`pathattn.extract.data.provenance_extras`)."""
    return (
        recipe(encoder, job.precision, job.dtype, coords)
        | {
            "name": slide_id,
            "weights_file": encoder.weights_file,
            "embed_dim": encoder.embed_dim,
            "pathattn_version": __version__,
            "timm_version": timm.__version__,
            "torch_version": str(torch.__version__),
        }
        | provenance_extras(coords)
    )


def _finish(job: ExtractJob, encoder: Encoder, slide_id: str, coords: PatchCoords, features: np.ndarray) -> None:
    """Write a slide's outputs (h5, then the optional .pt)."""
    features = features.astype(np.dtype(job.dtype), copy=False)
    write_features(
        job.features_path(slide_id),
        features,
        coords.coords,
        coords.attrs,
        _provenance(encoder, job, coords, slide_id),
    )
    if job.clam_pt:
        write_clam_pt(job.pt_path(slide_id), features)


@dataclass
class _Pending:
    """A slide whose patches are being embedded."""

    row: ExtractRow
    coords: PatchCoords
    plan: ReadPlan
    features: np.ndarray
    remaining: int
    started: float


def _prepare(
    coords_file: Path, encoder: Encoder, job: ExtractJob, sources: Mapping[str, Source]
) -> ExtractRow | _Pending:
    """What a slide or volume needs: nothing (its features exist), nothing to embed (no row), or its read plan.

    Raises:
        PathattnError: the coordinates file cannot be read, or the slide or volume cannot be read as tiled.
    """
    slide_id, started = coords_file.stem, time.perf_counter()
    row = ExtractRow(slide_id, embed_dim=encoder.embed_dim, encoder=encoder.name)
    coords = read_coords(coords_file)
    if job.features_path(slide_id).exists() and not job.overwrite:  # current: checked by _check_run
        row.status, row.n_patches, row.slide_path = "skipped", len(coords), recorded_source(coords)
        return row
    plan = make_plan(coords, coords_file, encoder, sources.get(slide_id))
    row.slide_path, row.n_patches = plan.source, len(coords)
    if len(coords) == 0:
        _finish(job, encoder, slide_id, coords, np.zeros((0, encoder.embed_dim), np.float32))
        row.status, row.seconds = "empty", round(time.perf_counter() - started, 3)
        return row
    return _Pending(row, coords, plan, np.zeros((len(coords), encoder.embed_dim), np.float32), len(coords), started)


def _check_run(coords_files: Sequence[Path], encoder: Encoder, job: ExtractJob) -> None:
    """Refuse, before anything is read, an encoder that cannot embed these rows, and an output folder holding
    features that resuming would keep although they are not current.

    An item whose coordinates file cannot be read is left to the batch (it fails there).

    Raises:
        PathattnError: the encoder does not fit a tiling (:func:`pathattn.extract.volume_data.check_encoder`),
            or a feature file of these items was made from other coordinates, another encoder or weights, or
            other settings (:mod:`pathattn.extract.resume`), and ``overwrite`` is off.
    """
    for coords_file in coords_files:
        out = job.features_path(coords_file.stem)
        try:
            coords = read_coords(coords_file)
        except PathattnError:
            continue
        check_encoder(encoder, coords.attrs, coords_file)
        if out.exists() and not job.overwrite:
            current = recipe(encoder, job.precision, job.dtype, coords)
            kind = "volume" if is_volume_attrs(coords.attrs) else "slide"
            refuse_stale(out, coords_file.stem, job.out, current, kind)


def extract(
    coords_files: Sequence[Path],
    encoder: Encoder,
    job: ExtractJob,
    slide_paths: Mapping[str, Source] | None = None,
) -> BatchOutcome[ExtractRow]:
    """Embed every patch, slice or 3-D patch of the tiled slides or volumes (a :class:`~pathattn.batch.Batch`:
    manifest, failures, progress).

    Args:
        coords_files: coordinate files of ``pathattn tile`` (or CLAM/TRIDENT with a ``read_size``-less plan).
        encoder: the encoder (its model, input size and normalisation): 2-D for slides and volume slices, 3-D
            for 3-D patches.
        job: shared settings and the output folder.
        slide_paths: id → slide file, or → modality → image file for a volume, overriding the paths recorded
            at tiling (items that moved).

    Returns:
        One row per coordinates file, in input order.

    Raises:
        PathattnError: the encoder does not fit a tiling, or the output folder holds features that are not
            current (:func:`_check_run`).
    """
    _check_run(coords_files, encoder, job)
    folders = [job.out / "h5_files", job.out / "pt_files"]
    with Batch("extract", job.out, ExtractRow, folders) as batch:
        pending: list[_Pending] = []
        for coords_file in coords_files:
            try:
                prepared = _prepare(coords_file, encoder, job, slide_paths or {})
            except Exception as err:  # noqa: BLE001 - one bad slide or volume must not stop the batch
                prepared = ExtractRow(coords_file.stem, "failed", embed_dim=encoder.embed_dim,
                                      encoder=encoder.name, error=one_line(err))  # fmt: skip
            if isinstance(prepared, _Pending):
                pending.append(prepared)
            else:
                batch.record(prepared, advance=prepared.n_patches)
        batch.set_total(sum(row.n_patches for row in batch.rows.values()) + sum(p.remaining for p in pending))
        if pending:
            _embed_all(pending, encoder, job, batch)
    return batch.outcome([p.stem for p in coords_files])


def extract_batch(
    coords_files: Sequence[Path],
    encoder: Encoder,
    job: ExtractJob,
    slide_paths: Mapping[str, Source] | None = None,
) -> list[ExtractRow]:
    """The rows of :func:`extract` (arguments alike): one per coordinates file, in input order."""
    return extract(coords_files, encoder, job, slide_paths).rows


def run_extract(
    job: ExtractJob,
    coords: str | Path,
    encoder: str,
    weights: str | Path | None = None,
    slide_ids: Sequence[str] | None = None,
    samples: str | Path | None = None,
    allow_failed: bool = False,
) -> int:
    """``pathattn extract``: embed the tiled slides or volumes of a run folder and print the summary; return the
    exit code.

    Args:
        job: shared settings and the output folder.
        coords: the output folder of ``pathattn tile`` (or its ``coords/``).
        encoder: a preset (2-D or 3-D), a timm model name or ``hf-hub:ORG/NAME``.
        weights: the encoder's weights file (None: random init).
        slide_ids: only these slides or volumes (default: all).
        samples: a sample sheet whose ``slide_path`` (slides) or ``<modality>_path`` (volumes) columns override
            the paths recorded at tiling.
        allow_failed: exit 0 even when slides failed.
    """
    files = list(select_ids({f.stem: f for f in find_coords(coords)}, slide_ids, f"--coords {coords}").values())
    paths = sample_sources(samples)
    resolve_device(job.device)
    channels = input_channels(files) if encoder in PRESETS_3D else 1
    model = create_encoder(encoder, weights, in_channels=channels)
    outcome = extract(files, model, job, paths)
    return outcome.report(f" with {model.name} ({model.embed_dim}-d)", allow_failed=allow_failed)


def _embed_all(pending: list[_Pending], encoder: Encoder, job: ExtractJob, batch: Batch[ExtractRow]) -> None:
    """Embed every pending slide, writing each as soon as it is complete; if the loader or the model fails (a
    reading worker killed, the device out of memory), the slides not yet written fail with that error."""
    try:
        _embed(pending, encoder, job, batch)
    except Exception as err:  # noqa: BLE001 - the finished slides are kept, the others recorded as failed
        for entry in pending:
            if entry.remaining:
                entry.row.status, entry.row.error = "failed", one_line(err)
                entry.row.seconds = round(time.perf_counter() - entry.started, 3)
                batch.record(entry.row, advance=0)


def _embed(pending: list[_Pending], encoder: Encoder, job: ExtractJob, batch: Batch[ExtractRow]) -> None:
    """Run the DataLoader over every pending slide or volume, writing each as soon as it is complete.

    Batches come back in order, so that the DataLoader hands batch b to worker b mod W and each volume is read
    by the worker :func:`~pathattn.extract.data.batch_order` meant; a worker preparing its next volume is
    ahead of the model by up to ``prefetch_factor`` of its batches, which hides the preparation.
    """
    embed = Embedder(encoder, job)
    workers = resolve_workers(job.workers, embed.device)
    plans = [p.plan for p in pending]
    volumes = any(p.pinned for p in plans)
    context, init = worker_context(VOLUME_PRELOAD if volumes else ()) if workers else (None, None)
    loader = DataLoader(
        PatchDataset(plans, encoder.input_size),
        batch_sampler=batch_order(plans, encoder.input_size, job.batch_size, workers),
        num_workers=workers,
        pin_memory=embed.device.type == "cuda",
        worker_init_fn=init,
        prefetch_factor=4 if workers else None,
        multiprocessing_context=context,
    )
    for slide_index, patch_index, images, errors in loader:
        features = embed(images)
        slide_index, patch_index = slide_index.numpy(), patch_index.numpy()
        for s in np.unique(slide_index):
            rows = slide_index == s
            entry = pending[s]
            entry.features[patch_index[rows]] = features[rows]
            entry.remaining -= int(rows.sum())
            failed = next((e for e, r in zip(errors, rows, strict=True) if r and e), "")
            if failed and entry.row.status != "failed":
                entry.row.status, entry.row.error = "failed", failed
            if entry.remaining == 0:
                batch.record(_complete(entry, encoder, job), advance=0)
        batch.advance(len(images))


def _complete(entry: _Pending, encoder: Encoder, job: ExtractJob) -> ExtractRow:
    """Write a finished slide's features (unless a patch failed) and return its row."""
    row = entry.row
    if row.status != "failed":
        try:
            _finish(job, encoder, row.slide_id, entry.coords, entry.features)
        except OSError as err:
            row.status, row.error = "failed", f"could not write features: {err}"
    row.seconds = round(time.perf_counter() - entry.started, 3)
    entry.features = np.zeros((0, 0), np.float32)  # free the memory of a finished slide
    return row
