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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from pathattn import __version__
from pathattn.batch import Batch, BatchRow, guarded, print_error
from pathattn.io.coords import PatchCoords, is_complete, read_coords, write_coords
from pathattn.io.geojson import Annotation, read_annotations, union_by_class, write_annotations
from pathattn.io.ids import check_id, output_path
from pathattn.io.samples import SlideEntry
from pathattn.io.slide import Slide, resize_to_mpp
from pathattn.scoremaps.images import thumbnail_mpp, write_png
from pathattn.tile.grid import GridSpec, coverage, grid_axes, grid_corners, plan_grid
from pathattn.tile.params import TileParams
from pathattn.tile.qc import render_qc
from pathattn.tile.tissue import detect_tissue

GEOJSON_SUFFIXES = (".geojson", ".json")


@dataclass(kw_only=True)
class TileRow(BatchRow):
    """One row of the manifest."""

    n_patches: int = 0
    mpp: float = float("nan")
    mpp_source: str = ""
    tissue_source: str = ""
    slide_path: str = ""


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
        return output_path(self.out, "coords", f"{check_id(slide_id)}.h5")

    def tissue_path(self, slide_id: str) -> Path:
        return output_path(self.out, "tissue", f"{check_id(slide_id)}.geojson")

    def qc_path(self, slide_id: str) -> Path:
        return output_path(self.out, "qc", f"{check_id(slide_id)}.png")

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"

    @property
    def folders(self) -> tuple[Path, ...]:
        """The folders the slides write into."""
        return tuple(self.out / sub for sub in ("coords", "tissue", "qc"))


def _find_geojson(folder: Path | None, slide_id: str) -> Path | None:
    if folder is None:
        return None
    return next((folder / f"{slide_id}{s}" for s in GEOJSON_SUFFIXES if (folder / f"{slide_id}{s}").is_file()), None)


def _grid_attrs(slide: Slide, spec: GridSpec, job: TileJob, tissue_source: str) -> dict[str, object]:
    """The attributes of ``coords`` (docs/formats.md).

    ``patch_size`` is the side read at ``patch_level`` and ``target_magnification`` the magnification of that
    level, so that CLAM's reader (``read_region(xy, patch_level, (patch_size, patch_size))``) and TRIDENT's
    (``patch_size`` at ``target_magnification`` from ``level0_magnification``) read exactly the region pathattn
    reads; pathattn's own target is ``target_patch_size`` pixels at ``target_mpp``.
    """
    level_dim = slide.level_dimensions[spec.patch_level]
    downsample = slide.level_downsamples[spec.patch_level]
    overlap = job.params.grid.overlap
    return {
        "patch_size": spec.read_size,
        "patch_level": spec.patch_level,
        "downsample": (downsample, downsample),
        "level_dim": level_dim,
        "downsampled_level_dim": level_dim,
        "level0_width": slide.dimensions[0],
        "level0_height": slide.dimensions[1],
        "patch_size_level0": spec.patch_size_level0,
        "stride_level0": spec.stride_level0,
        "read_size": spec.read_size,
        "target_patch_size": spec.patch_size,
        "target_mpp": spec.target_mpp,
        "mpp_level0": spec.mpp0,
        "mpp_source": slide.mpp.source,
        "overlap": round(overlap * spec.read_size / spec.patch_size),
        "target_overlap": overlap,
        "min_tissue": job.params.grid.min_tissue,
        "target_magnification": 10.0 / (spec.mpp0 * downsample),
        "level0_magnification": 10.0 / spec.mpp0,
        "name": slide.slide_id,
        "slide_path": str(slide.path),
        "vendor": slide.vendor,
        "tissue_source": tissue_source,
        "coord_space": "level0_px",
        "coord_anchor": "top_left",
        "pathattn_version": __version__,
    }


def _tile(entry: SlideEntry, job: TileJob) -> TileRow:
    """Tile one slide (errors propagate)."""
    with Slide(entry.path, entry.mpp if entry.mpp is not None else job.slide_mpp) as slide:
        seg_mpp = job.params.tissue.seg_mpp
        # one read serves both: the QC thumbnail, and the detection image resized from it
        view_mpp = min(seg_mpp, thumbnail_mpp(max(slide.dimensions) * slide.mpp.mean, slide.mpp.mean))
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
        return TileRow(
            entry.slide_id,
            "done" if len(coords) else "empty",
            n_patches=len(coords),
            mpp=slide.mpp.mean,
            mpp_source=slide.mpp.source,
            tissue_source=tissue_source,
            slide_path=str(entry.path),
        )


def _tile_or_skip(entry: SlideEntry, job: TileJob) -> TileRow:
    """Tile one slide, or skip it when its coordinates file is complete (and ``job.overwrite`` is off)."""
    coords_path = job.coords_path(entry.slide_id)
    if job.overwrite or not is_complete(coords_path):
        return _tile(entry, job)
    done = read_coords(coords_path)
    return TileRow(
        entry.slide_id,
        "skipped",
        n_patches=len(done),
        mpp=float(done.attrs.get("mpp_level0", float("nan"))),
        mpp_source=str(done.attrs.get("mpp_source", "")),
        tissue_source=str(done.attrs.get("tissue_source", "")),
        slide_path=str(entry.path),
    )


def tile_slide(entry: SlideEntry, job: TileJob) -> TileRow:
    """Tile one slide; never raises for a bad slide (the error is in the row).

    A finished slide (its coordinates file complete) is skipped unless ``job.overwrite``.
    """
    row = guarded(functools.partial(_tile_or_skip, job=job), entry, entry.slide_id, TileRow)
    row.slide_path = row.slide_path or str(entry.path)
    return row


def _batch(job: TileJob, entries: Sequence[SlideEntry], workers: int) -> Batch[TileRow]:
    """Tile the slides in a :class:`~pathattn.batch.Batch` (manifest updated after every slide)."""
    with Batch("tile", job.out, TileRow, job.folders, total=len(entries), counter="n_patches") as batch:
        batch.run(entries, functools.partial(tile_slide, job=job), lambda e: e.slide_id, workers)
    return batch


def tile_batch(entries: Sequence[SlideEntry], job: TileJob, workers: int = 1) -> list[TileRow]:
    """Tile slides, ``workers`` at a time, updating the manifest after every slide.

    Args:
        entries: the slides.
        job: shared settings and the output folder.
        workers: slides processed in parallel (separate processes).

    Returns:
        One row per slide, in input order.
    """
    return _batch(job, entries, workers).outcome([e.slide_id for e in entries]).rows


def run_tile(job: TileJob, entries: Sequence[SlideEntry], workers: int = 1, allow_empty: bool = False) -> int:
    """``pathattn tile``: tile the slides and print the summary; return the exit code.

    Returns:
        1 when a slide failed, or had no tissue and ``allow_empty`` is off; else 0.
    """
    batch = _batch(job, entries, workers)
    outcome = batch.outcome([e.slide_id for e in entries])
    if outcome.report():
        return 1
    empty = [row.slide_id for row in outcome.rows if row.status == "empty"]
    if empty and not allow_empty:
        print_error("tile", f"{len(empty)} slides have no tissue ({', '.join(empty[:5])}); check their QC images, "
                    "lower --min-tissue or --tissue-threshold, or pass --allow-empty")  # fmt: skip
        return 1
    return 0
