import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.tile.volume_grid import (
    VolumeGridParams,
    axis_origins,
    box_fractions,
    label_fractions,
    patch_grid,
    patch_voxels,
    slice_grid,
)


def test_slices_along_each_axis_with_their_foreground_fraction():
    fg = np.zeros((4, 5, 6), bool)
    fg[1:3, 1:4, 2] = True  # 6 of the 20 voxels of axial slice 2
    coords, fractions = slice_grid(fg, VolumeGridParams(axis="axial"))
    assert coords.tolist() == [[0, 0, k] for k in range(6)]
    assert fractions.tolist() == pytest.approx([0, 0, 6 / 20, 0, 0, 0])
    coords, fractions = slice_grid(fg, VolumeGridParams(axis="sagittal"))
    assert coords[:, 0].tolist() == [0, 1, 2, 3] and not coords[:, 1:].any()
    assert fractions.tolist() == pytest.approx([0, 3 / 30, 3 / 30, 0])


def test_patch_sizes_in_mm_become_voxels_per_axis():
    size, stride = patch_voxels(VolumeGridParams(mode="patches", patch_size_mm=30, overlap_mm=10), (1.0, 1.5, 5.0))
    assert size.tolist() == [30, 20, 6] and stride.tolist() == [20, 13, 4]


def test_origins_cover_the_axis_with_one_flush_row():
    assert axis_origins(10, 4, 4).tolist() == [0, 4, 6]
    assert axis_origins(8, 4, 4).tolist() == [0, 4]
    assert axis_origins(4, 4, 2).tolist() == [0]


def test_box_fractions_equal_direct_counts():
    rng = np.random.default_rng(1)
    mask = rng.random((12, 9, 7)) > 0.6
    corners = np.array([[0, 0, 0], [3, 2, 1], [8, 5, 3], [11, 8, 6]])
    size = np.array([4, 4, 4])
    expected = [mask[i : i + 4, j : j + 4, k : k + 4].sum() / 64 for i, j, k in corners]
    assert box_fractions(mask, corners, size).tolist() == pytest.approx(expected)


def test_patch_grid_and_label_fractions():
    fg = np.ones((20, 20, 10), bool)
    label = np.zeros((20, 20, 10), np.int16)
    label[0:5, 0:5, 0:5] = 1
    label[15:, 15:, 5:] = 2
    params = VolumeGridParams(mode="patches", patch_size_mm=10.0)
    coords, fractions, size = patch_grid(fg, params, (1.0, 1.0, 2.0))
    assert size.tolist() == [10, 10, 5] and len(coords) == 8 and (fractions == 1).all()
    labels = label_fractions(label, coords, params, size, 2)
    first = coords.tolist().index([0, 0, 0])
    last = coords.tolist().index([10, 10, 5])
    assert labels[first].tolist() == pytest.approx([125 / 500, 0])
    assert labels[last].tolist() == pytest.approx([0, 125 / 500])
    slices = VolumeGridParams()
    coords, _ = slice_grid(fg, slices)
    per_slice = label_fractions(label, coords, slices, size, 2)
    assert per_slice[0].tolist() == pytest.approx([25 / 400, 0])
    assert per_slice[9].tolist() == pytest.approx([0, 25 / 400])
    assert label_fractions(None, coords, slices, size, 0).shape == (10, 0)


def test_a_patch_larger_than_the_volume_and_bad_options():
    with pytest.raises(PathattnError, match=r"--patch-size-mm 64 is \(64, 64, 13\) voxels, larger than the volume"):
        patch_grid(np.ones((40, 40, 20), bool), VolumeGridParams(mode="patches", patch_size_mm=64), (1, 1, 5))
    for kwargs, message in [
        ({"patch_size_mm": 0}, "--patch-size-mm must be a positive side in mm"),
        ({"overlap_mm": 40}, "--overlap-mm must be 0 or positive and smaller than --patch-size-mm"),
        ({"min_foreground": 1.5}, "--min-foreground must be a fraction in"),
        ({"context": -1}, "--context-slices must be 0 or a positive number"),
        ({"axis": "oblique"}, "--axis must be axial, coronal or sagittal"),
    ]:
        with pytest.raises(PathattnError, match=message):
            VolumeGridParams(**kwargs)
