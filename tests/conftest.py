"""Shared fixtures: slides written on the fly, a tiled and embedded cohort, and CLAM-SB's forward from the paper."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

# Triton decides at @triton.jit time whether a kernel runs in its CPU interpreter, so the switch is set before
# any kernel module is imported: without a GPU, the Triton kernels are tested in the interpreter (correctness).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pathattn.synth.wsi import write_slide  # noqa: E402


@dataclass(frozen=True)
class EmbeddedCohort:
    """A synthetic cohort after ``pathattn tile`` and ``pathattn extract``.

    Args:
        root: the cohort folder (``slides/``, ``annotations/``, ``samples.csv``, ``cohort.json``).
        samples: its sample sheet.
        tiles: the tiling run (``coords/`` with tumor fractions from the annotations).
        features: the extraction run (``h5_files/``).
    """

    root: Path
    samples: Path
    tiles: Path
    features: Path


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedCohort:
    """The 40-slide synthetic cohort (seed 0), tiled at 0.5 µm/px and embedded by a seeded random-init ResNet-18.

    Built once per session through the command line (about 5 minutes on 2 CPU cores).
    """
    from pathattn.cli.main import main

    root = tmp_path_factory.mktemp("synthetic_cohort")
    cohort, tiles, features = root / "cohort", root / "tiles", root / "features"
    assert main(["synth", "wsi", "--out", str(cohort), "--n-slides", "40", "--seed", "0"]) == 0
    samples = cohort / "samples.csv"
    tile = ["tile", "--samples", str(samples), "--annotations", str(cohort / "annotations"), "--out", str(tiles)]
    assert main([*tile, "--workers", "2"]) == 0
    assert main(["extract", "--coords", str(tiles), "--out", str(features), "--encoder", "resnet18"]) == 0
    return EmbeddedCohort(cohort, samples, tiles, features)


SMALL_COHORT_CONFIGS = (
    "configs/model/abmil.yaml",
    "configs/data/small_cohort.yaml",
    "configs/trainer/fixed_epochs.yaml",
)


@pytest.fixture(scope="session")
def trained_synthetic_run(synthetic_cohort: EmbeddedCohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gated ABMIL cross-validated on :func:`synthetic_cohort` by ``pathattn train`` with the small-cohort configs.

    Returns the run folder (``predictions.csv`` with each slide's out-of-fold checkpoint, ``metrics.json``).
    """
    from pathattn.cli.main import main

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path_factory.mktemp("trained_synthetic_run") / "run"
    configs = [arg for name in SMALL_COHORT_CONFIGS for arg in ("--config", str(repo / name))]
    data = ["--samples", str(synthetic_cohort.samples), "--features", str(synthetic_cohort.features)]
    assert main(["train", *configs, *data, "--out", str(out), "--accelerator", "cpu", "--n-boot", "200"]) == 0
    return out


@dataclass(frozen=True)
class SliceTiling:
    """A small synthetic PET/CT cohort tiled into axial slices that the networks see as PET.

    Args:
        samples: the cohort's sample sheet (volume_id, patient_id, centre, label paths).
        tiles: the tiling run (``coords/`` with the lesion fraction of every slice).
    """

    samples: Path
    tiles: Path


@pytest.fixture(scope="session")
def slice_tiling(tmp_path_factory: pytest.TempPathFactory) -> SliceTiling:
    """16 patients (21 studies), 64 x 64 x 24 voxels, tiled by ``configs/tile/volume_pet_axial.yaml`` (about 25 s)."""
    from pathattn.cli.main import main

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("slice_tiling")
    cohort, tiles = root / "cohort", root / "tiles"
    synth = ["synth", "volume", "--out", str(cohort), "--n-patients", "16", "--shape", "[64,64,24]"]
    assert main([*synth, "--dicom-fraction", "0"]) == 0
    config = str(repo / "configs/tile/volume_pet_axial.yaml")
    assert main(["tile", "--config", config, "--samples", str(cohort / "samples.csv"), "--out", str(tiles)]) == 0
    return SliceTiling(cohort / "samples.csv", tiles)


@pytest.fixture(scope="session")
def trained_slice_run(slice_tiling: SliceTiling, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ResNet-18 slice classifier, fold 0 of 2 by patient, 64 x 64 px, 2 epochs (``pathattn classify fit``)."""
    from pathattn.cli.main import main

    out = tmp_path_factory.mktemp("trained_slice_run") / "run"
    data = ["--tiles", str(slice_tiling.tiles), "--samples", str(slice_tiling.samples), "--out", str(out)]
    fit = ["--image-size", "64", "--n-folds", "2", "--folds", "[0]", "--max-epochs", "2", "--lr", "0.001"]
    assert main(["classify", "fit", *data, *fit, "--n-boot", "100", "--accelerator", "cpu"]) == 0
    return out


@pytest.fixture(scope="session")
def segmentation_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 patients (11 PET/CT studies with lesion labels), 40 x 40 x 12 voxels (``pathattn synth volume``)."""
    from pathattn.cli.main import main

    out = tmp_path_factory.mktemp("segmentation_cohort")
    args = ["synth", "volume", "--out", str(out), "--n-patients", "8", "--shape", "[40,40,12]", "--dicom-fraction", "0"]
    assert main(args) == 0
    return out


TINY_SEGMENTATION = ["--model-args", "{channels: [4, 8, 16, 32, 64]}", "--patch-size", "[32,32,16]", "--batch-size",
                     "4", "--accelerator", "cpu", "--n-folds", "3", "--val-fraction", "0.5"]  # fmt: skip


@pytest.fixture(scope="session")
def segmentation_options() -> list[str]:
    """The options of the tiny ``segment fit`` runs of the tests (and of :func:`segmentation_run`)."""
    return list(TINY_SEGMENTATION)


@pytest.fixture(scope="session")
def segmentation_run(segmentation_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Attention U-Net, fold 0 of 3 by patient, 2 epochs, patches deeper than the volumes (``segment fit``).

    Written as a workflow study lays it out: ``results/segment/attention_unet`` (the run folder is returned).
    """
    from pathattn.cli.main import main

    out = tmp_path_factory.mktemp("segmentation_results") / "segment" / "attention_unet"
    args = ["segment", "fit", "--samples", str(segmentation_cohort / "samples.csv"), "--out", str(out)]
    assert main([*args, "--max-epochs", "2", *TINY_SEGMENTATION]) == 0
    return out


@pytest.fixture
def make_slide(tmp_path: Path):
    """Write ``image`` as a slide ``{name}.tif`` (``.svs`` for the Aperio layout) and return its path.

    ``level_factor`` is the downsample between pyramid levels (4 gives levels at 1, 4, 16, ...).
    """
    folder = tmp_path / "slides"
    folder.mkdir(exist_ok=True)

    def make(name: str, image: np.ndarray, mpp: float, layout: str = "pyramid", level_factor: int = 4,
             mpp_metadata: bool = True) -> Path:  # fmt: skip
        return write_slide(folder / f"{name}.tif", image, mpp, layout=layout, level_factor=level_factor,
                           mpp_metadata=mpp_metadata)  # fmt: skip

    return make


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that build the synthetic cohort (several CPU minutes, once per session) get a longer timeout."""
    for item in items:
        if "synthetic_cohort" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(2400))


ClamForward = Callable[[Mapping[str, torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def clam_sb_forward(weights: Mapping[str, torch.Tensor], features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CLAM-SB's eval forward from the paper's formulas: fc + ReLU, gated attention, softmax pooling, classifier.

    Args:
        weights: a CLAM-SB state dict (``attention_net.0``, ``attention_net.{2 or 3}.attention_{a,b,c}``,
            ``classifiers``).
        features: (N, D) one bag.

    Returns:
        logits (1, C) and raw attention (N, 1).
    """
    net = next(f"attention_net.{i}" for i in (3, 2) if f"attention_net.{i}.attention_a.0.weight" in weights)
    h = torch.relu(features @ weights["attention_net.0.weight"].T + weights["attention_net.0.bias"])
    a = torch.tanh(h @ weights[f"{net}.attention_a.0.weight"].T + weights[f"{net}.attention_a.0.bias"])
    b = torch.sigmoid(h @ weights[f"{net}.attention_b.0.weight"].T + weights[f"{net}.attention_b.0.bias"])
    raw = (a * b) @ weights[f"{net}.attention_c.weight"].T + weights[f"{net}.attention_c.bias"]
    pooled = torch.softmax(raw, dim=0).T @ h
    return pooled @ weights["classifiers.weight"].T + weights["classifiers.bias"], raw


@pytest.fixture
def clam_forward() -> ClamForward:
    """:func:`clam_sb_forward`, for the tests to call."""
    return clam_sb_forward
