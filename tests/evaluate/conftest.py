"""A small cohort of patch grids on disk (no slide files): scores, features, tissue and tumor annotations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import shapely

from pathattn.io.bags import write_features
from pathattn.io.geojson import Annotation, write_annotations

WIDTH, HEIGHT, SIDE = 400, 320, 40  # level-0 pixels at 0.5 µm/px; a 10 x 8 grid of patches
TUMORS = {
    "s0": [shapely.box(40, 40, 160, 120)],
    "s1": [shapely.box(200, 120, 320, 240), shapely.box(40, 240, 100, 300)],
    "s2": [shapely.box(120, 80, 240, 200)],
    "s3": [shapely.box(280, 40, 360, 160)],
    "s4": [shapely.box(60, 160, 180, 280)],
    "s5": [],
    "s6": [],
    "s7": [],
    "s8": [],
}


@dataclass(frozen=True)
class MiniCohort:
    """Folders of the mini cohort: ``scores/attention``, ``features/h5_files``, ``tiles/tissue``, ``annotations``."""

    root: Path
    scores: Path
    features: Path
    tiles: Path
    annotations: Path


def grid_coords() -> np.ndarray:
    ys, xs = np.mgrid[0:HEIGHT:SIDE, 0:WIDTH:SIDE]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


COORDS_ATTRS = {
    "patch_size_level0": SIDE, "level0_width": WIDTH, "level0_height": HEIGHT, "mpp_level0": 0.5,
    "patch_size": SIDE, "target_mpp": 0.5,
}  # fmt: skip


def tumor_fraction(slide_id: str, coords: np.ndarray) -> np.ndarray:
    boxes = shapely.box(coords[:, 0], coords[:, 1], coords[:, 0] + SIDE, coords[:, 1] + SIDE)
    tumor = shapely.union_all(TUMORS[slide_id]) if TUMORS[slide_id] else shapely.Polygon()
    return shapely.area(shapely.intersection(boxes, tumor)) / SIDE**2


@pytest.fixture
def mini_cohort(tmp_path: Path) -> MiniCohort:
    """Attention = tumor fraction + noise; features carry the fraction in one of 8 dimensions."""
    rng = np.random.default_rng(0)
    cohort = MiniCohort(tmp_path, tmp_path / "scores", tmp_path / "features", tmp_path / "tiles", tmp_path / "ann")
    coords = grid_coords()
    tissue = shapely.box(10, 10, WIDTH - 10, HEIGHT - 10)
    for slide_id, tumors in TUMORS.items():
        fraction = tumor_fraction(slide_id, coords)
        attention = (fraction + 0.25 * rng.standard_normal(len(coords)))[:, None].astype(np.float32)
        write_features(cohort.scores / "attention" / f"{slide_id}.h5", attention, coords, COORDS_ATTRS, {}, "attention")
        features = rng.standard_normal((len(coords), 8)).astype(np.float32)
        features[:, 0] += 3 * fraction
        write_features(cohort.features / "h5_files" / f"{slide_id}.h5", features, coords, COORDS_ATTRS, {})
        write_annotations(cohort.tiles / "tissue" / f"{slide_id}.geojson", [Annotation(tissue, "Tissue")])
        write_annotations(cohort.annotations / f"{slide_id}.geojson", [Annotation(t, "Tumor") for t in tumors])
    return cohort
