"""Results folders built with the pipeline's own writers: tiling of synthetic slides, feature files, a real
cross-validation on small random bags, `pathattn predict` and `pathattn heatmap`.

The studies are built once per test session (a few seconds each) and must not be modified by tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box

from pathattn.cli.main import main
from pathattn.extract.run import ExtractRow
from pathattn.io.bags import write_features
from pathattn.io.coords import read_coords
from pathattn.io.geojson import Annotation, write_annotations
from pathattn.io.manifest import write_manifest
from pathattn.io.samples import SlideEntry
from pathattn.synth.wsi import write_slide
from pathattn.tile.run import TileJob, tile_batch
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.crossval import train_cv
from pathattn.train.predict import predict

DIM = 8
TILED = ("s00", "s01", "s02")  # slides with a real slide file, tiling, attention and heatmap
TUMOR_BOX = (512, 512, 2048, 1536)  # level-0 px: the ground-truth tumor of s00
RECTS = [(512, 512, 2048, 1536), (2560, 1536, 3584, 2560)]  # tissue of the synthetic slides (4096 x 3072 px)


def rect_slide(path: Path) -> Path:
    """A 4096 x 3072 px slide at 0.25 µm/px with two pink tissue rectangles on white glass."""
    image = np.full((3072, 4096, 3), 242, np.uint8)
    for x0, y0, x1, y1 in RECTS:
        image[y0:y1, x0:x1] = (200, 120, 170)
    return write_slide(path, image, 0.25)


def _label(k: int, n_classes: int) -> str:
    return ["normal", "tumor"][k % 2] if n_classes == 2 else ["a", "b", "c"][k % 3]


def write_cohort(root: Path, n_classes: int = 2, n_slides: int = 15, tiled: tuple[str, ...] = ()) -> Path:
    """Sample sheet and feature files of ``n_slides`` slides of ``min(n_slides, 12)`` patients.

    Class k's bags hold 3 instances shifted along feature k, so every model learns something. The
    ``tiled`` slides are made, tiled into ``root/tiles`` and get features at their real patch coordinates.

    Returns:
        The sample sheet (slide_id, patient_id, label, time, event, slide_path).
    """
    rng = np.random.default_rng(n_classes)
    (root / "slides").mkdir(parents=True, exist_ok=True)
    paths = {s: rect_slide(root / "slides" / f"{s}.tif") for s in tiled}
    if tiled:
        tile_batch([SlideEntry(s, p) for s, p in paths.items()], TileJob(root / "tiles"))
    rows, extracted, outcomes = ["slide_id,patient_id,label,time,event,slide_path"], [], {}
    for k in range(n_slides):
        slide_id, label = f"s{k:02d}", _label(k, n_classes)
        if slide_id in paths:
            tiling = read_coords(root / "tiles" / "coords" / f"{slide_id}.h5")
            coords, attrs = tiling.coords, tiling.attrs
        else:
            n = int(rng.integers(8, 16))
            coords = np.stack([np.arange(n) * 512, np.zeros(n, np.int64)], axis=1)
            attrs = {"patch_size_level0": 512}
        bag = rng.normal(size=(len(coords), DIM)).astype(np.float32)
        bag[:3, k % n_classes] += 4.0
        write_features(root / "features" / "h5_files" / f"{slide_id}.h5", bag, coords, attrs, {"encoder": "test"})
        extracted.append(ExtractRow(slide_id, "done", n_patches=len(bag), embed_dim=DIM, encoder="test"))
        patient = f"p{k % 12:02d}"  # s12 to s17 share the patient (label, time and event) of s00 to s05
        short = k % 2 == 1  # odd slides (tumor) die early
        time, event = (rng.uniform(5, 20), 1) if short else (rng.uniform(20, 60), int(k % 3 > 0))
        time, event = outcomes.setdefault(patient, (time, event))
        rows.append(f"{slide_id},{patient},{label},{time:.1f},{event},slides/{slide_id}.tif")
    write_manifest(root / "features" / "manifest.csv", ExtractRow, extracted)
    (root / "samples.csv").write_text("\n".join(rows) + "\n")
    return root / "samples.csv"


def cross_validate(samples: Path, features: Path, out: Path, **kwargs: object) -> Path:
    """A real `train_cv` run, kept short."""
    base = dict(n_folds=3, max_epochs=3, lr=5e-3, val_fraction=0.25, n_boot=20, accelerator="cpu", patience=3)
    train_cv(TrainConfig(samples, features, out, **(base | kwargs)))
    return out


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A binary study: tiles/, features/, train/, predict/ and heatmaps/ of 15 slides, 3 of them real slides.

    Ground truth (``annotations``): s00 has a tumor region, s01 an empty annotation file (no tumor), s02 none.
    """
    root = tmp_path_factory.mktemp("study")
    samples = write_cohort(root, tiled=TILED)
    cross_validate(samples, root / "features", root / "train")
    checkpoint = root / "train" / "fold_0" / "checkpoints" / "last.ckpt"
    predict(root / "features", root / "predict", checkpoint, slide_ids=list(TILED))
    assert main(["heatmap", "--predictions", str(root / "predict"), "--tiles", str(root / "tiles"),
                 "--out", str(root / "heatmaps")]) == 0  # fmt: skip
    annotations = tmp_path_factory.mktemp("annotations")
    write_annotations(annotations / "s00.geojson", [Annotation(box(*TUMOR_BOX), "Tumor")])
    write_annotations(annotations / "s01.geojson", [])
    return {"root": root, "samples": samples, "annotations": annotations}


@pytest.fixture(scope="session")
def multiclass_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare `pathattn train` folder of a 3-class run (no other stage)."""
    root = tmp_path_factory.mktemp("multiclass")
    return cross_validate(write_cohort(root, n_classes=3, n_slides=18), root / "features", root / "run")


@pytest.fixture(scope="session")
def survival_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare `pathattn train` folder of a survival run."""
    root = tmp_path_factory.mktemp("survival")
    samples = write_cohort(root, n_slides=16)
    return cross_validate(samples, root / "features", root / "run", task="survival", monitor="c_index", n_bins=2)
