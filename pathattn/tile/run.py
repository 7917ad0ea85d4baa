"""Tile one slide, or a resumable batch of slides with a manifest.

Outputs under the run folder ``OUT``::

    OUT/coords/{slide_id}.h5        patch coordinates (written last: its presence marks a finished slide)
    OUT/tissue/{slide_id}.geojson   the tissue used, QuPath-editable (pass it back with --tissue-geojson)
    OUT/qc/{slide_id}.png           thumbnail with tissue contours, kept patches and annotations
    OUT/manifest.csv                one row per slide: status, patches, resolution, error

Every file is written atomically. A finished slide is skipped on the next run unless ``overwrite``;
a slide that fails is recorded with its error and the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import shapely

from pathattn import __version__
from pathattn.errors import PathattnError
from pathattn.io.atomic import remove_stale_temporaries
from pathattn.io.coords import PatchCoords, is_complete, read_coords, write_coords
from pathattn.io.geojson import Annotation, read_annotations, union_by_class, write_annotations
from pathattn.io.manifest import write_manifest
from pathattn.io.samples import SlideEntry
from pathattn.io.slide import Slide, resize_to_mpp
from pathattn.tile.grid import GridSpec, coverage, grid_axes, grid_corners, plan_grid
from pathattn.tile.params import TileParams
from pathattn.tile.qc import qc_mpp, render_qc, write_png
from pathattn.tile.tissue import detect_tissue

Status = Literal["done", "skipped", "empty", "failed"]
GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass
class SlideResult:
    """One row of the manifest."""

    slide_id: str
    status: Status
    n_patches: int = 0
    mpp: float = float("nan")
    mpp_source: str = ""
    tissue_source: str = ""
    seconds: float = 0.0
    slide_path: str = ""
    error: str = ""


@dataclass(frozen=True)
class TileJob:
    """What to tile and where: shared by every slide of a batch.

    Args:
        out: the run folder.
        params: grid and tissue parameters.
        tissue_geojson: folder of ``{slide_id}.geojson`` files that replace automatic tissue detection.
        annotations: folder of ``{slide_id}.geojson`` annotation files (class names, e.g. Tumor).
        slide_mpp: level-0 µm/px for slides whose metadata and sample-sheet row lack it.
        overwrite: redo slides that are already finished.
    """

    out: Path
    params: TileParams = TileParams()
    tissue_geojson: Path | None = None
    annotations: Path | None = None
    slide_mpp: float | None = None
    overwrite: bool = False

    def coords_path(self, slide_id: str) -> Path:
        return self.out / "coords" / f"{slide_id}.h5"

    def tissue_path(self, slide_id: str) -> Path:
        return self.out / "tissue" / f"{slide_id}.geojson"

    def qc_path(self, slide_id: str) -> Path:
        return self.out / "qc" / f"{slide_id}.png"

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"


def _find_geojson(folder: Path | None, slide_id: str) -> Path | None:
    if folder is None:
        return None
    return next((folder / f"{slide_id}{s}" for s in GEOJSON_SUFFIXES if (folder / f"{slide_id}{s}").is_file()), None)


def _grid_attrs(slide: Slide, spec: GridSpec, job: TileJob, tissue_source: str) -> dict[str, object]:
    level_dim = slide.level_dimensions[spec.patch_level]
    downsample = slide.level_downsamples[spec.patch_level]
    return {
        "patch_size": spec.patch_size,
        "patch_level": spec.patch_level,
        "downsample": (downsample, downsample),
        "level_dim": level_dim,
        "downsampled_level_dim": level_dim,
        "level0_width": slide.dimensions[0],
        "level0_height": slide.dimensions[1],
        "patch_size_level0": spec.patch_size_level0,
        "stride_level0": spec.stride_level0,
        "read_size": spec.read_size,
        "target_mpp": spec.target_mpp,
        "mpp_level0": spec.mpp0,
        "mpp_source": slide.mpp.source,
        "overlap": job.params.grid.overlap,
        "min_tissue": job.params.grid.min_tissue,
        "target_magnification": 10.0 / spec.target_mpp,
        "level0_magnification": 10.0 / spec.mpp0,
        "name": slide.slide_id,
        "slide_path": str(slide.path),
        "vendor": slide.vendor,
        "tissue_source": tissue_source,
        "coord_space": "level0_px",
        "coord_anchor": "top_left",
        "pathattn_version": __version__,
    }


def _tile(entry: SlideEntry, job: TileJob) -> SlideResult:
    """Tile one slide (errors propagate)."""
    with Slide(entry.path, entry.mpp if entry.mpp is not None else job.slide_mpp) as slide:
        seg_mpp = job.params.tissue.seg_mpp
        # one read serves both: the QC thumbnail, and the detection image resized from it
        view_mpp = min(seg_mpp, qc_mpp(max(slide.dimensions) * slide.mpp.mean, slide.mpp.mean))
        thumbnail, level0_per_px = slide.read_at_mpp(view_mpp)
        tissue_file = _find_geojson(job.tissue_geojson, entry.slide_id)
        if tissue_file is not None:
            tissue = shapely.union_all([a.geometry for a in read_annotations(tissue_file)])
            tissue_source = str(tissue_file)
        else:
            seg_image, seg_scale = resize_to_mpp(thumbnail, level0_per_px, slide.mpp.mean, seg_mpp)
            tissue, _ = detect_tissue(seg_image, seg_scale, slide.mpp.mean, job.params.tissue)
            tissue_source = "auto"
        spec = plan_grid(slide, job.params.grid)
        candidates = grid_corners(*grid_axes(*slide.dimensions, spec))
        fractions = coverage(tissue, candidates, spec.patch_size_level0)
        keep = (fractions >= job.params.grid.min_tissue) & (fractions > 0)
        coords = candidates[keep]
        annotation_file = _find_geojson(job.annotations, entry.slide_id)
        regions = union_by_class(read_annotations(annotation_file)) if annotation_file else {}
        annotation_fraction = np.stack(
            [coverage(g, coords, spec.patch_size_level0) for g in regions.values()], axis=1
        ) if regions else np.zeros((len(coords), 0), np.float32)  # fmt: skip

        write_annotations(job.tissue_path(entry.slide_id), [Annotation(tissue, "Tissue")])
        caption = f"{entry.slide_id}: {len(coords)} patches, {spec.patch_size} px at {spec.target_mpp:g} um/px"
        qc = render_qc(thumbnail, level0_per_px[0], tissue, coords, spec.patch_size_level0, regions, caption)
        write_png(job.qc_path(entry.slide_id), qc)
        write_coords(
            job.coords_path(entry.slide_id),
            PatchCoords(
                coords,
                _grid_attrs(slide, spec, job, tissue_source),
                fractions[keep],
                annotation_fraction,
                list(regions),
            ),
        )
        return SlideResult(
            entry.slide_id,
            "done" if len(coords) else "empty",
            len(coords),
            slide.mpp.mean,
            slide.mpp.source,
            tissue_source,
            slide_path=str(entry.path),
        )


def tile_slide(entry: SlideEntry, job: TileJob) -> SlideResult:
    """Tile one slide; never raises for a bad slide (the error is in the result).

    A finished slide (its coordinates file complete) is skipped unless ``job.overwrite``.
    """
    start = time.perf_counter()
    coords_path = job.coords_path(entry.slide_id)
    if not job.overwrite and is_complete(coords_path):
        done = read_coords(coords_path)
        return SlideResult(
            entry.slide_id,
            "skipped",
            len(done),
            float(done.attrs.get("mpp_level0", float("nan"))),
            str(done.attrs.get("mpp_source", "")),
            str(done.attrs.get("tissue_source", "")),
            slide_path=str(entry.path),
        )
    try:
        result = _tile(entry, job)
    except PathattnError as err:
        result = SlideResult(entry.slide_id, "failed", slide_path=str(entry.path), error=str(err))
    except Exception as err:  # noqa: BLE001 - one bad slide must not stop the batch
        message = " ".join(f"{type(err).__name__}: {err}".split())
        result = SlideResult(entry.slide_id, "failed", slide_path=str(entry.path), error=message)
    result.seconds = round(time.perf_counter() - start, 3)
    return result


def tile_batch(
    entries: Sequence[SlideEntry],
    job: TileJob,
    workers: int = 1,
    on_result: Callable[[SlideResult], None] | None = None,
) -> list[SlideResult]:
    """Tile slides, ``workers`` at a time, updating the manifest after every slide.

    Args:
        entries: the slides.
        job: shared settings and the output folder.
        workers: slides processed in parallel (separate processes).
        on_result: called with each result as it arrives (e.g. to advance a progress bar).

    Returns:
        One result per slide, in input order.
    """
    job.out.mkdir(parents=True, exist_ok=True)
    for sub in ("coords", "tissue", "qc"):
        (job.out / sub).mkdir(exist_ok=True)
        remove_stale_temporaries(job.out / sub)
    results: dict[str, SlideResult] = {}

    def record(result: SlideResult) -> None:
        results[result.slide_id] = result
        write_manifest(job.manifest_path, SlideResult, [results[e.slide_id] for e in entries if e.slide_id in results])
        if on_result is not None:
            on_result(result)

    if workers <= 1 or len(entries) <= 1:
        for entry in entries:
            record(tile_slide(entry, job))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(tile_slide, entry, job) for entry in entries]
            for future in as_completed(futures):
                record(future.result())
    return [results[e.slide_id] for e in entries]
