"""Coordinate files: pathattn's own, and CLAM/TRIDENT-style files read back."""

import h5py
import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.coords import PatchCoords, is_complete, read_coords, write_coords


def test_round_trip(tmp_path):
    path = tmp_path / "s.h5"
    coords = np.array([[0, 0], [512, 0]], np.int64)
    data = PatchCoords(coords, {"patch_size": 256, "downsample": (1.0, 1.0)}, np.array([1.0, 0.5]),
                       np.array([[0.0], [0.25]]), ["Tumor"])  # fmt: skip
    write_coords(path, data)
    assert is_complete(path)
    back = read_coords(path)
    np.testing.assert_array_equal(back.coords, coords)
    assert back.attrs["patch_size"] == 256 and back.attrs["downsample"] == [1.0, 1.0]
    assert back.classes == ["Tumor"]
    np.testing.assert_allclose(back.annotation_fraction, [[0.0], [0.25]])
    with h5py.File(path) as f:  # what CLAM and TRIDENT readers look at
        assert f["coords"].dtype == np.int64 and f["coords"].attrs["patch_size"] == 256


def test_empty_grid(tmp_path):
    path = tmp_path / "e.h5"
    write_coords(path, PatchCoords(np.zeros((0, 2), np.int64), {"patch_size": 256}, np.zeros(0)))
    back = read_coords(path)
    assert back.coords.shape == (0, 2) and back.annotation_fraction.shape == (0, 0)


def test_reads_clam_style_file(tmp_path):
    path = tmp_path / "clam.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("coords", data=np.array([[10, 20]]))
        d.attrs["patch_size"] = 256
        d.attrs["patch_level"] = 0
    back = read_coords(path)
    assert back.coords.tolist() == [[10, 20]] and back.tissue_fraction is None
    assert back.annotation_fraction.shape == (1, 0)
    assert not is_complete(path)  # not ours: resume will re-tile it


def test_bad_files(tmp_path):
    with pytest.raises(PathattnError, match="not found"):
        read_coords(tmp_path / "none.h5")
    (tmp_path / "junk.h5").write_bytes(b"junk")
    with pytest.raises(PathattnError, match="not a readable HDF5"):
        read_coords(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "nocoords.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(PathattnError, match="no 'coords'"):
        read_coords(tmp_path / "nocoords.h5")
