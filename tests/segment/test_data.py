"""Segmentation cases from a synthetic PET/CT sheet and the training transforms' patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.io.volume_samples import read_volume_sheet
from pathattn.segment.data import read_case, train_transforms
from pathattn.volumes.prepare import PrepareParams


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("segment_cohort")
    args = ["synth", "volume", "--out", str(out), "--n-patients", "4", "--shape", "[40,40,12]", "--dicom-fraction", "0"]
    assert main(args) == 0
    return read_volume_sheet(out / "samples.csv")


def test_a_case_is_prepared_as_the_tiling_prepares_it(entries: list) -> None:
    entry = next(e for e in entries if e.extra.get("label") == "1")
    case = read_case(entry, PrepareParams(spacing=(4.0, 4.0, None)), n_classes=2)
    assert case.image.shape[0] == len(entry.paths) and case.image.dtype == np.float32
    assert case.label.shape == (1, *case.image.shape[1:]) and set(np.unique(case.label)) <= {0, 1}
    assert case.label.any() and case.patient_id == entry.extra["patient_id"]
    assert np.allclose(np.linalg.norm(case.affine[:3, :3], axis=0)[:2], 4.0)


def test_patches_are_padded_cut_around_lesions_and_augmented(entries: list) -> None:
    entry = next(e for e in entries if e.extra.get("label") == "1")
    case = read_case(entry, PrepareParams(), n_classes=2)
    size = (24, 24, 2 * case.image.shape[3])  # deeper than the volume: padded
    transforms = train_transforms(size, samples=6, positive=1.0)
    transforms.set_random_state(0)
    patches = transforms(case.as_dict())
    assert len(patches) == 6
    for patch in patches:
        assert patch["image"].shape == (case.image.shape[0], *size) and patch["label"].shape == (1, *size)
        assert patch["image"].dtype == torch.float32 and patch["label"].dtype == torch.int64
        assert patch["label"].any()  # centred on a lesion voxel
    background = train_transforms(size, samples=4, positive=0.0, augment=False)
    background.set_random_state(0)
    assert len(background(case.as_dict())) == 4


def test_augmentation_rescales_lesions_about_the_patch_centre() -> None:
    label = np.zeros((1, 40, 40, 40), np.int64)
    label[:, 16:24, 16:24, 16:24] = 1  # a cube of 512 voxels, inside every patch centred on one of its voxels
    case = {"image": np.random.default_rng(0).random((2, 40, 40, 40), dtype=np.float32), "label": label}
    counts = {}
    for augment in (False, True):
        transforms = train_transforms((32, 32, 32), samples=40, positive=1.0, augment=augment)
        transforms.set_random_state(0)
        counts[augment] = [int(p["label"].sum()) for p in transforms(case)]
    assert set(counts[False]) == {512}  # cut only: the cube whole
    rescaled = [n for n in counts[True] if n != 512]  # flips and quarter turns keep the count; rescaling does not
    assert 4 <= len(rescaled) <= 24  # about 30 % of 40
    assert all(512 * 0.75**3 * 0.8 <= n <= 512 * 1.25**3 * 1.2 for n in rescaled)
    assert min(rescaled) < 512 < max(rescaled)  # both smaller and larger


def test_bad_cases_and_options(entries: list, tmp_path: Path) -> None:
    entry = entries[0]
    with pytest.raises(PathattnError, match=r"label classes \[1\] outside 0..0"):
        read_case(next(e for e in entries if e.extra.get("label") == "1"), PrepareParams(), n_classes=1)
    unlabelled = type(entry)(entry.volume_id, entry.paths, None, entry.extra)
    with pytest.raises(PathattnError, match="no label volume; give it in the sample sheet's label_path column"):
        read_case(unlabelled, PrepareParams(), n_classes=2)
    with pytest.raises(PathattnError, match="--patch-size needs three positive voxel counts"):
        train_transforms((32, 32))
    with pytest.raises(PathattnError, match="--positive must lie in"):
        train_transforms((8, 8, 8), positive=1.5)
