"""Round trip of a prediction: a volume stored in LPS with anisotropic spacing is prepared (RAS, resampled), segmented,
and its mask written back on the file's own grid, where a known cube lands on the same world coordinates."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pathattn.io.nifti import write_nifti
from pathattn.segment.predict import source_grid, to_source_grid
from pathattn.volumes.prepare import PrepareParams, prepare_volume

SPACING = (0.9, 1.3, 2.7)  # mm along the file's i, j, k
CUBE = (slice(20, 34), slice(12, 22), slice(5, 11))


@pytest.fixture(scope="module")
def lps_ct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CT in LPS (i towards L, j towards P, k towards S) with a 300 HU cube in water."""
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = (40.0, 25.0, -60.0)
    array = np.zeros((50, 36, 16), np.int16)
    array[CUBE] = 300
    path = tmp_path_factory.mktemp("lps") / "case_ct.nii.gz"
    write_nifti(path, array, affine)
    assert nib.aff2axcodes(affine) == ("L", "P", "S")
    return path


def segment_by_threshold(path: Path, spacing: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The cube segmented on the prepared grid (a perfect segmenter), written back: mask and affine on the file grid."""
    prepared = prepare_volume({"CT": path}, PrepareParams(spacing), foreground=False)
    image = prepared.image[0]
    cube = (image > (image.min() + image.max()) / 2).astype(np.float32)
    probabilities, affine = to_source_grid(np.stack([1 - cube, cube]), prepared)
    return np.argmax(probabilities, axis=0), affine


def world_centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return (affine @ np.append(np.argwhere(mask).mean(axis=0), 1.0))[:3]


def test_the_mask_is_written_on_the_file_grid_exactly_without_resampling(lps_ct: Path) -> None:
    stored = nib.load(lps_ct)
    mask, affine = segment_by_threshold(lps_ct, (None, None, None))
    assert mask.shape == stored.shape and np.allclose(affine, stored.affine)
    assert np.array_equal(mask.astype(bool), np.asarray(stored.dataobj) > 0)


def test_a_resampled_prediction_lands_on_the_same_world_coordinates(lps_ct: Path) -> None:
    stored = nib.load(lps_ct)
    truth = np.asarray(stored.dataobj) > 0
    mask, affine = segment_by_threshold(lps_ct, (2.0, 2.0, 2.0))  # coarser in-plane, finer across slices
    assert mask.shape == stored.shape and np.allclose(affine, stored.affine)
    dice = 2 * np.count_nonzero(mask.astype(bool) & truth) / (np.count_nonzero(mask) + np.count_nonzero(truth))
    assert dice > 0.85
    assert np.abs(world_centroid(mask.astype(bool), affine) - world_centroid(truth, stored.affine)).max() < 1.0


def test_the_source_grid_is_the_files_own(lps_ct: Path) -> None:
    prepared = prepare_volume({"CT": lps_ct}, PrepareParams((2.0, 2.0, 2.0)), foreground=False)
    affine, shape = source_grid(prepared)
    assert shape == (50, 36, 16) and np.allclose(affine, nib.load(lps_ct).affine)
    assert prepared.original_shape == (50, 36, 16) and prepared.shape != (50, 36, 16)
