"""Feature bags: pathattn files, and CLAM / TRIDENT / STAMP files read back (interchange round trips)."""

import h5py
import numpy as np
import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.io.bags import find_bags, read_bag, write_clam_pt, write_features

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(5, 8)).astype(np.float32)
COORDS = np.arange(10, dtype=np.int64).reshape(5, 2) * 256


def test_pathattn_round_trip_and_clam_pt(tmp_path):
    write_features(
        tmp_path / "h5_files" / "s1.h5", FEATURES, COORDS, {"patch_size": 256}, {"encoder": "enc", "embed_dim": 8}
    )
    bag = read_bag(tmp_path / "h5_files" / "s1.h5")
    assert bag.slide_id == "s1" and bag.attrs["encoder"] == "enc" and bag.attrs["coords"]["patch_size"] == 256
    np.testing.assert_array_equal(bag.features, FEATURES)
    np.testing.assert_array_equal(bag.coords, COORDS)
    with h5py.File(tmp_path / "h5_files" / "s1.h5") as f:  # TRIDENT's reader looks at these
        assert f["features"].attrs["encoder"] == "enc" and f["coords"].dtype == np.int64
    write_clam_pt(tmp_path / "pt_files" / "s1.pt", FEATURES)
    assert torch.equal(torch.load(tmp_path / "pt_files" / "s1.pt"), torch.from_numpy(FEATURES))  # what CLAM loads
    pt = read_bag(tmp_path / "pt_files" / "s1.pt")
    assert pt.coords is None and np.array_equal(pt.features, FEATURES)
    assert find_bags(tmp_path) == {"s1": tmp_path / "h5_files" / "s1.h5"}


def test_reads_clam_h5_with_int32_coords(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["features"] = FEATURES
        f["coords"] = COORDS.astype(np.int32)
    bag = read_bag(tmp_path / "c.h5")
    assert bag.coords.dtype == np.int64 and np.array_equal(bag.coords, COORDS)


def test_reads_trident_h5(tmp_path):
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f.create_dataset("features", data=FEATURES[None])  # (1, N, D) as some versions save
        f["features"].attrs["encoder"] = "uni_v1"
        f["coords"] = COORDS
        f["coords"].attrs["patch_size_level0"] = 512
    bag = read_bag(tmp_path / "t.h5")
    assert bag.features.shape == (5, 8) and bag.attrs["encoder"] == "uni_v1"
    assert bag.attrs["coords"]["patch_size_level0"] == 512


def test_reads_stamp_h5_without_pixel_coords(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["feats"] = FEATURES.astype(np.float16)
        f["coords"] = COORDS.astype(np.float64) * 0.5
        f.attrs["unit"] = "um"
    bag = read_bag(tmp_path / "s.h5")
    assert bag.coords is None and bag.features.dtype == np.float16


def test_clam_pt_folder_and_bags_without_coords(tmp_path):
    (tmp_path / "pt_files").mkdir()
    torch.save(torch.from_numpy(FEATURES), tmp_path / "pt_files" / "a.pt")
    assert list(find_bags(tmp_path)) == ["a"]
    assert read_bag(find_bags(tmp_path)["a"]).coords is None


def _features_file(path, features):
    with h5py.File(path, "w") as f:
        f["features"] = features


@pytest.mark.parametrize(
    ("name", "make", "needle"),
    [
        ("x.pt", lambda p: p.write_bytes(b"junk"), "not a readable torch file"),
        ("x.pt", lambda p: torch.save({"a": torch.zeros(2)}, p), "without 'features'"),
        ("x.pt", lambda p: torch.save(torch.zeros(2, 3, 4), p), "shape"),
        ("x.h5", lambda p: p.write_bytes(b"junk"), "not a readable HDF5"),
        ("x.h5", lambda p: h5py.File(p, "w").close(), "no 'features'"),
        (
            "flat.h5",
            lambda p: _features_file(p, np.arange(5.0)),
            r"flat.h5 holds float64 features of shape \(5,\); expected numbers of shape \(patches, features\): "
            r"extract it again \('pathattn extract'\)$",
        ),
        ("words.h5", lambda p: _features_file(p, np.array([[b"a"]])), "holds |S1"),
        ("missing.h5", lambda p: None, "not found"),
        ("missing.pt", lambda p: None, "not found"),
    ],
)
def test_bad_bags(tmp_path, name, make, needle):
    make(tmp_path / name)
    with pytest.raises(PathattnError, match=needle):
        read_bag(tmp_path / name)


def test_mismatched_rows(tmp_path):
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["features"] = FEATURES
        f["coords"] = COORDS[:3]
    with pytest.raises(PathattnError, match="5 feature rows but 3"):
        read_bag(tmp_path / "m.h5")
