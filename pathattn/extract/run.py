"""Extract patch features for a batch of tiled slides: resumable, atomic, one bad slide never stops the rest.

Outputs under the run folder ``OUT`` (CLAM's layout, so CLAM-style training code can read it)::

    OUT/h5_files/{slide_id}.h5   features (N, D) + coords (N, 2) + provenance attributes
    OUT/pt_files/{slide_id}.pt   (N, D) tensor, with ``clam_pt``
    OUT/manifest.csv             one row per slide: status, patches, embedding size, error

Reading, decoding and resizing run in DataLoader workers; the forward pass runs on the device on
uint8 batches normalised there (pinned memory, non-blocking copies, channels_last, autocast), so the
stages overlap.
"""

from __future__ import annotations

import multiprocessing
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
from pathattn.extract.data import PatchDataset, SlidePatches, worker_init
from pathattn.extract.encoders import Encoder, create_encoder
from pathattn.io.bags import read_bag, write_clam_pt, write_features
from pathattn.io.coords import PatchCoords, read_coords
from pathattn.io.manifest import run_files
from pathattn.io.samples import select_ids, slide_paths
from pathattn.io.slide import Slide

Precision = Literal["fp32", "bf16", "fp16"]
FeatureDtype = Literal["float32", "float16"]
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


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
        return self.out / "h5_files" / f"{slide_id}.h5"

    def pt_path(self, slide_id: str) -> Path:
        return self.out / "pt_files" / f"{slide_id}.pt"

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
    attrs = coords.attrs
    return {
        "encoder": encoder.name,
        "name": slide_id,
        "weights_sha256": encoder.weights_sha256,
        "weights_file": encoder.weights_file,
        "embed_dim": encoder.embed_dim,
        "input_size": encoder.input_size,
        "mean": encoder.mean,
        "std": encoder.std,
        "precision": job.precision,
        "dtype": job.dtype,
        "target_mpp": attrs.get("target_mpp", float("nan")),
        "mpp_level0": attrs.get("mpp_level0", float("nan")),
        "patch_size": attrs.get("target_patch_size", attrs.get("patch_size", -1)),
        "patch_size_level0": attrs.get("patch_size_level0", -1),
        "pathattn_version": __version__,
        "timm_version": timm.__version__,
        "torch_version": str(torch.__version__),
    }


def _check_slide(coords: PatchCoords, slide_path: Path, coords_file: Path) -> SlidePatches:
    """The read plan of a slide, after checking that it is the slide the coordinates were made for."""
    attrs = coords.attrs
    mpp0 = attrs.get("mpp_level0")
    with Slide(slide_path, float(mpp0) if mpp0 else None) as slide:
        expected = (attrs.get("level0_width"), attrs.get("level0_height"))
        if None not in expected and tuple(int(v) for v in expected) != slide.dimensions:
            raise PathattnError(
                f"{slide_path} is {slide.dimensions[0]}x{slide.dimensions[1]} px but {coords_file} was tiled from a "
                f"{expected[0]}x{expected[1]} px slide; point to the right slide (--samples) or tile again"
            )
        level = int(attrs.get("patch_level", 0))
        if level >= slide.level_count:
            raise PathattnError(f"{coords_file} reads level {level} but {slide_path} has {slide.level_count} levels")
        read_size = int(attrs.get("read_size", attrs.get("patch_size", 0)))
    return SlidePatches(slide_path, coords.coords, level, read_size, float(mpp0) if mpp0 else None)


def _features_match(path: Path, encoder: Encoder) -> bool:
    """Whether an existing feature file was made with this encoder and weights."""
    attrs = read_bag(path).attrs
    return attrs.get("encoder") == encoder.name and attrs.get("weights_sha256") == encoder.weights_sha256


class Embedder:
    """The encoder on its device: uint8 batches in, float32 features out."""

    def __init__(self, encoder: Encoder, job: ExtractJob) -> None:
        self.device = resolve_device(job.device)
        model = encoder.model.to(self.device).eval().to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if job.compile else model
        self.mean = torch.tensor(encoder.mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(encoder.std, device=self.device).view(1, 3, 1, 1) * 255
        self.autocast = _AUTOCAST.get(job.precision)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        x = images.to(self.device, non_blocking=True).float()
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.model(x)
        return out.float().cpu().numpy()


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
    plan: SlidePatches
    features: np.ndarray
    remaining: int
    started: float


def _prepare(
    coords_file: Path, encoder: Encoder, job: ExtractJob, slide_paths: Mapping[str, Path]
) -> ExtractRow | _Pending:
    """What a slide needs: nothing (its features exist), nothing to embed (no patch), or its read plan.

    Raises:
        PathattnError: the slide cannot be read as tiled.
    """
    slide_id, started = coords_file.stem, time.perf_counter()
    row = ExtractRow(slide_id, embed_dim=encoder.embed_dim, encoder=encoder.name)
    if job.features_path(slide_id).exists() and not job.overwrite:
        done = read_coords(coords_file)
        row.status, row.n_patches, row.slide_path = "skipped", len(done), str(done.attrs.get("slide_path", ""))
        return row
    coords = read_coords(coords_file)
    slide_path = slide_paths.get(slide_id) or Path(str(coords.attrs.get("slide_path", "")))
    row.slide_path, row.n_patches = str(slide_path), len(coords)
    if not str(slide_path):
        raise PathattnError(f"{coords_file} does not name its slide; pass --samples with a slide_path column")
    plan = _check_slide(coords, slide_path, coords_file)
    if len(coords) == 0:
        _finish(job, encoder, slide_id, coords, np.zeros((0, encoder.embed_dim), np.float32))
        row.status, row.seconds = "empty", round(time.perf_counter() - started, 3)
        return row
    return _Pending(row, coords, plan, np.zeros((len(coords), encoder.embed_dim), np.float32), len(coords), started)


def _check_outputs(coords_files: Sequence[Path], encoder: Encoder, job: ExtractJob) -> None:
    """Refuse an output folder holding features of another encoder (they would be kept as if current).

    Raises:
        PathattnError: a feature file of these slides was made with another encoder or weights.
    """
    if job.overwrite:
        return
    for coords_file in coords_files:
        out = job.features_path(coords_file.stem)
        if out.exists() and not _features_match(out, encoder):
            raise PathattnError(
                f"{out} holds features of another encoder or weights than '{encoder.name}'; "
                "use another --out folder or pass --overwrite"
            )


def extract(
    coords_files: Sequence[Path],
    encoder: Encoder,
    job: ExtractJob,
    slide_paths: Mapping[str, Path] | None = None,
) -> BatchOutcome[ExtractRow]:
    """Embed every patch of the tiled slides (a :class:`~pathattn.batch.Batch`: manifest, failures, progress).

    Args:
        coords_files: coordinate files of ``pathattn tile`` (or CLAM/TRIDENT with a ``read_size``-less plan).
        encoder: the encoder (its model, input size and normalisation).
        job: shared settings and the output folder.
        slide_paths: slide id → slide file, overriding the path recorded at tiling (slides that moved).

    Returns:
        One row per coordinates file, in input order.

    Raises:
        PathattnError: the output folder holds features of another encoder (and ``overwrite`` is off).
    """
    _check_outputs(coords_files, encoder, job)
    folders = [job.out / "h5_files", job.out / "pt_files"]
    with Batch("extract", job.out, ExtractRow, folders) as batch:
        pending: list[_Pending] = []
        for coords_file in coords_files:
            try:
                prepared = _prepare(coords_file, encoder, job, slide_paths or {})
            except PathattnError as err:
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
    slide_paths: Mapping[str, Path] | None = None,
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
    """``pathattn extract``: embed the tiled slides of a run folder and print the summary; return the exit code.

    Args:
        job: shared settings and the output folder.
        coords: the output folder of ``pathattn tile`` (or its ``coords/``).
        encoder: a preset, a timm model name or ``hf-hub:ORG/NAME``.
        weights: the encoder's weights file (None: random init).
        slide_ids: only these slides (default: all).
        samples: a sample sheet whose ``slide_path`` column overrides the paths recorded at tiling.
        allow_failed: exit 0 even when slides failed.
    """
    files = list(select_ids({f.stem: f for f in find_coords(coords)}, slide_ids, f"--coords {coords}").values())
    paths = slide_paths(samples)
    resolve_device(job.device)
    model = create_encoder(encoder, weights)
    outcome = extract(files, model, job, paths)
    return outcome.report(f" with {model.name} ({model.embed_dim}-d)", allow_failed=allow_failed)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Clean worker processes: OpenSlide, OpenCV's and OpenMP's thread pools are not fork-safe.

    A fork server (started once per program, with the reading modules preloaded) gives clean workers that
    start fast; where there is none (Windows), spawn.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["pathattn.extract.data"])
    return context


def _embed_all(pending: list[_Pending], encoder: Encoder, job: ExtractJob, batch: Batch[ExtractRow]) -> None:
    """Run the DataLoader over every pending slide, writing each slide as soon as it is complete."""
    embed = Embedder(encoder, job)
    workers = resolve_workers(job.workers, embed.device)
    loader = DataLoader(
        PatchDataset([p.plan for p in pending], encoder.input_size),
        batch_size=job.batch_size,
        num_workers=workers,
        pin_memory=embed.device.type == "cuda",
        worker_init_fn=worker_init if workers else None,
        prefetch_factor=4 if workers else None,
        multiprocessing_context=_worker_context() if workers else None,
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
