"""Inputs of whole-slide localization: per-patch scores, the slide's raster, its tissue and tumor ground truth.

Per-patch scores come from any of:

* ``pathattn predict``: ``PRED/attention/{slide_id}.h5`` (dataset ``attention``, (N, K) raw scores, with
  ``coords`` and the tiling attributes); ``--head`` picks the column;
* any HDF5 file with ``coords`` (N, 2) and a dataset of (N,) or (N, K) scores, or (N, h, w) maps (a CAM
  per patch), named by ``dataset``;
* ``pathattn explain``: ``EXPLAIN/slides/{slide_id}.json`` records, whose ``patches`` block holds
  per-patch lists (``single_effect`` for HIPPO's effect of removing each patch); their coordinates come
  from the feature files the explanation ran on (``--features``).

A slide takes part when it has scores and an annotation file ``{slide_id}.geojson`` (a tumor-free slide
needs a file without regions: a missing file means "not annotated", and the slide is skipped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.evaluate.protocol import Sample
from pathattn.evaluate.rasters import SlideGrid, lesion_boxes, patch_fractions, patch_raster, region_mask
from pathattn.io.coords import read_coords
from pathattn.io.geojson import read_annotations
from pathattn.io.jsonfile import read_json
from pathattn.io.scores import PatchScores
from pathattn.io.scores import read_patch_scores as read_score_file

POSITIVE_FRACTION = 0.5  # a patch at least half inside the tumor is a tumor patch; one not touching it is not
MIN_PATCH_PIXELS = 2  # a patch must span at least this many raster pixels, or the raster cannot place it
MAX_RASTER_PIXELS = 50_000_000  # a slide's raster (H x W) is held in several float64 copies


def find_score_files(folder: str | Path) -> dict[str, Path]:
    """Score files by slide id: ``DIR/attention/*.h5``, ``DIR/slides/*.json`` (explain) or ``DIR/*.h5``.

    Raises:
        PathattnError: the folder is missing or holds none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PathattnError(f"--scores folder not found: {folder}; pass 'pathattn predict' or 'explain' output")
    for pattern in ("attention/*.h5", "slides/*.json", "*.h5"):
        files = {p.stem: p for p in sorted(folder.glob(pattern)) if not p.name.startswith(".")}
        if files:
            return files
    raise PathattnError(f"--scores {folder} holds no attention/*.h5, slides/*.json or *.h5 files")


def _read_record(path: Path, key: str, features: Path | None) -> PatchScores:
    """Per-patch values of a ``pathattn explain`` record, with the coordinates of its feature file."""
    record = read_json(path, "run 'pathattn explain' again")
    patches = record.get("patches", {}) if isinstance(record, dict) else {}
    if key not in patches:
        raise PathattnError(f"{path} has no per-patch '{key}'; it has {sorted(patches)} (pass one as --dataset)")
    if features is None:
        raise PathattnError("scores from 'pathattn explain' records need --features (the patches' coordinates)")
    tiling = read_coords(features / "h5_files" / f"{path.stem}.h5")
    return PatchScores(path.stem, tiling.coords, np.asarray(patches[key], np.float64), tiling.attrs, {})


def read_patch_scores(
    path: Path, dataset: str = "attention", head: int = 0, features: Path | None = None
) -> PatchScores:
    """One slide's scores, (N,) or (N, h, w) per-patch maps (module docstring for the accepted files).

    Raises:
        PathattnError: the file is unreadable, lacks the dataset or the head, or its rows disagree with coords.
    """
    scores = _read_record(path, dataset, features) if path.suffix == ".json" else read_score_file(path, dataset)
    scores.values = scores.head(head)
    if len(scores.values) != len(scores.coords):
        raise PathattnError(
            f"{path}: {len(scores.values)} scores for {len(scores.coords)} patches; the files do not belong together"
        )
    scores.slide_id = path.stem
    return scores


def check_raster_mpp(raster_mpp: float, slides: Mapping[str, PatchScores]) -> None:
    """Refuse a raster resolution that cannot work for these slides, before anything is rasterised.

    Too coarse: a patch would span fewer than :data:`MIN_PATCH_PIXELS` raster pixels (a slide is then a few
    pixels, and even a uniform map localises "perfectly"). Too fine: a slide's raster would exceed
    :data:`MAX_RASTER_PIXELS` pixels.

    Raises:
        PathattnError: naming ``--raster-mpp``, the slide that limits it and the largest or smallest sensible value.
    """
    for slide_id, patches in slides.items():
        mpp0 = patches.attr("mpp_level0")
        side_um = patches.attr("patch_size_level0") * mpp0
        if raster_mpp > side_um / MIN_PATCH_PIXELS:
            raise PathattnError(
                f"--raster-mpp {raster_mpp:g} is too coarse: the {side_um:g} µm patches of slide {slide_id} would "
                f"span less than {MIN_PATCH_PIXELS} raster pixels; use at most {side_um / MIN_PATCH_PIXELS:g} µm/px"
            )
        area_um2 = patches.attr("level0_width") * patches.attr("level0_height") * mpp0**2
        if area_um2 / raster_mpp**2 > MAX_RASTER_PIXELS:
            raise PathattnError(
                f"--raster-mpp {raster_mpp:g} is too fine: the raster of slide {slide_id} would exceed "
                f"{MAX_RASTER_PIXELS:,} pixels; use at least {math.sqrt(area_um2 / MAX_RASTER_PIXELS):.3g} µm/px"
            )


def read_geometry(path: Path, classes: Sequence[str] | None = None) -> BaseGeometry:
    """The union of a GeoJSON file's regions of the given classes (all classes when None)."""
    regions = [a.geometry for a in read_annotations(path) if classes is None or a.name in classes]
    return shapely.union_all(regions) if regions else shapely.Polygon()


@dataclass
class SlideTruth:
    """A slide's raster and ground truth.

    Args:
        grid: the raster.
        region: (H, W) bool, the evaluated pixels (tissue).
        sample: the ground truth for the metrics (tumor mask inside the region, the rest ignored; lesion boxes).
        fractions: (N,) tumor fraction of each patch.
    """

    grid: SlideGrid
    region: np.ndarray
    sample: Sample
    fractions: np.ndarray

    @property
    def has_tumor(self) -> bool:
        return bool(self.sample.truth is not None and self.sample.truth.any())


def slide_truth(
    patches: PatchScores, annotation: Path, tissue: Path | None, mpp: float, classes: Sequence[str] | None = None
) -> SlideTruth:
    """Rasterise the tissue and the tumor of one slide on its grid at ``mpp`` µm/px.

    The region is the tissue of ``tissue`` (the tiling's tissue GeoJSON), else the patches' footprints.
    """
    size = (int(patches.attr("level0_width")), int(patches.attr("level0_height")))
    grid = SlideGrid.at_mpp(size, patches.attr("mpp_level0"), mpp)
    side = int(patches.attr("patch_size_level0"))
    if tissue is not None:
        region = region_mask(read_geometry(tissue), grid)
    else:
        region = np.isfinite(patch_raster(patches.coords, side, np.ones(len(patches.coords)), grid))
    tumor = read_geometry(annotation, classes)
    truth = region_mask(tumor, grid) & region
    sample = Sample(patches.slide_id, truth=truth, ignore=~region, boxes=lesion_boxes(tumor, grid))
    return SlideTruth(grid, region, sample, patch_fractions(patches.coords, side, tumor))


def patch_labels(fractions: np.ndarray) -> np.ndarray:
    """Patch labels for patch-level metrics: 1 at least half tumor, 0 tumor-free, -1 border (left out)."""
    labels = np.full(len(fractions), -1, np.int64)
    labels[fractions >= POSITIVE_FRACTION] = 1
    labels[fractions == 0] = 0
    return labels


def assign_splits(
    has_tumor: dict[str, bool],
    calibration_ids: Sequence[str] | None = None,
    n_calibration: int = 6,
    seed: int = 0,
    kind: tuple[str, str, str] = ("slide", "tumor", "annotation file"),
) -> tuple[list[str], list[str]]:
    """The calibration and test slides (or volumes: ``kind`` names the items, their positives and their truth).

    Given ``calibration_ids``, those slides calibrate and the others are the test split. Otherwise
    ``n_calibration`` slides are drawn at random (seeded), half of them (rounded up) with tumor, leaving at least
    one tumor slide and one other slide (when there is one) to the test split, so that small cohorts work too.

    Raises:
        PathattnError: a named slide is not evaluable, or the split leaves no tumor slide on either side.
    """
    ids = sorted(has_tumor)
    if calibration_ids is not None:
        unknown = sorted(set(calibration_ids) - set(ids))
        if unknown:
            raise PathattnError(f"calibration {kind[0]}s {unknown[:5]} have no scores or no {kind[2]}")
        calibration = sorted(set(calibration_ids))
    else:
        rng = np.random.default_rng(seed)
        tumor, normal = [s for s in ids if has_tumor[s]], [s for s in ids if not has_tumor[s]]
        n_tumor = max(0, min(len(tumor) - 1, (n_calibration + 1) // 2))
        n_normal = max(0, min(len(normal) - 1, n_calibration - n_tumor))
        calibration = sorted(str(s) for s in [*rng.permutation(tumor)[:n_tumor], *rng.permutation(normal)[:n_normal]])
    test = [s for s in ids if s not in set(calibration)]
    for name, split in (("calibration", calibration), ("test", test)):
        if not any(has_tumor[s] for s in split):
            raise PathattnError(
                f"the {name} split has no {kind[0]} with {kind[1]} ({len(split)} {kind[0]}s); annotate more "
                f"{kind[1]} {kind[0]}s or choose the calibration {kind[0]}s with --calibration-ids"
            )
    return calibration, test
