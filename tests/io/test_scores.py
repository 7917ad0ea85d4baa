"""Per-patch score files: the one reader and writer, with its errors."""

import h5py
import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.scores import read_patch_scores, write_patch_scores


def test_round_trip_and_heads(tmp_path):
    coords = np.array([[0, 0], [512, 0], [1024, 0]])
    values = np.array([[1.0, -1.0], [2.0, -np.inf], [0.5, 3.0]], np.float32)
    path = tmp_path / "attention" / "s1.h5"
    write_patch_scores(path, values, coords, {"patch_size_level0": 512}, {"model": "abmil", "slide_id": "s1"})
    scores = read_patch_scores(path)
    assert scores.slide_id == "s1" and scores.model == "abmil" and scores.n_heads == 2 and len(scores) == 3
    assert (scores.coords == coords).all() and scores.attr("patch_size_level0") == 512.0
    np.testing.assert_array_equal(scores.head(1), [-1.0, -np.inf, 3.0])
    with pytest.raises(PathattnError, match="--head 2 does not exist: .* 2 head"):
        scores.head(2)
    with pytest.raises(PathattnError, match="lack the 'mpp_level0' attribute"):
        scores.attr("mpp_level0")


def test_one_dimensional_scores_and_other_datasets(tmp_path):
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["probability"] = np.array([0.1, 0.9])
        f["coords"] = np.zeros((2, 2), np.int64)
    scores = read_patch_scores(path, "probability")
    assert scores.slide_id == "p" and scores.n_heads == 1 and scores.head(0).tolist() == [0.1, 0.9]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ({"coords": np.zeros((2, 2), np.int64)}, "no 'attention' dataset"),
        ({"attention": np.zeros((2, 1))}, "no 'coords' dataset"),
        ({"attention": np.zeros((3, 1)), "coords": np.zeros((2, 2), np.int64)}, "3 rows but 'coords' has 2"),
        ({"attention": np.zeros((2, 1, 1, 1)), "coords": np.zeros((2, 2), np.int64)}, "got shape (2, 1, 1, 1)"),
    ],
)
def test_bad_files(tmp_path, content, needle):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        for name, value in content.items():
            f[name] = value
    with pytest.raises(PathattnError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        read_patch_scores(path)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(PathattnError, match="score file not found"):
        read_patch_scores(tmp_path / "nope.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(PathattnError, match="not a readable HDF5 file"):
        read_patch_scores(tmp_path / "bad.h5")
