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


@pytest.mark.parametrize(
    ("reader", "kind"),
    [("pathattn.io.coords.read_coords", "coordinates file"), ("pathattn.io.bags.read_bag", "feature file"),
     ("pathattn.io.scores.read_patch_scores", "score file"), ("pathattn.io.bags.bag_attrs", "feature file")],
)  # fmt: skip
def test_a_file_the_user_may_not_read_is_named_as_such(tmp_path, monkeypatch, reader, kind):
    """Never "not a readable HDF5 file" for a permission problem (simulated: the tests run as root)."""
    import importlib

    module, name = reader.rsplit(".", 1)
    path = tmp_path / "s.h5"
    write_coords(path, PatchCoords(np.zeros((1, 2), np.int64), {}))

    def denied(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(h5py, "File", denied)
    with pytest.raises(PathattnError) as error:
        getattr(importlib.import_module(module), name)(path)
    assert str(error.value) == f"cannot read {kind} {path}: permission denied; give your user read access"


@pytest.mark.parametrize(
    ("coords", "shape"), [(np.arange(8), "int64 of shape (8,)"), (np.zeros((4, 4)), "float64 of shape (4, 4)")]
)
def test_coords_of_another_shape_are_one_line(tmp_path, coords, shape):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["coords"] = coords
    with pytest.raises(PathattnError) as error:
        read_coords(path)
    assert str(error.value) == (
        f"{path}: 'coords' is {shape}, not (patches, 2) level-0 x, y pixels or (patches, 3) voxel i, j, k; "
        "run 'pathattn tile' again"
    )


def test_a_folder_or_a_damaged_file_is_one_line(tmp_path):
    with pytest.raises(PathattnError, match=r"is a folder, not a coordinates file; run 'pathattn tile' again$"):
        read_coords(tmp_path)
    (tmp_path / "half.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(20))
    with pytest.raises(PathattnError, match=r"half.h5 is not a readable HDF5 file \(.*\); run 'pathattn tile' again$"):
        read_coords(tmp_path / "half.h5")
