"""Slices of a volume tiling as labelled images: the PET/CT paper's label rule, masks on the slice pixels."""

from pathlib import Path

import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.coords import read_coords, write_coords
from pathattn.volumes.slice_set import SliceSetOptions, read_slice_set
from pathattn.volumes.slices import slice_mask


def test_labels_masks_and_people_follow_the_tiling(slice_tiling) -> None:
    images = read_slice_set(slice_tiling.tiles, SliceSetOptions((64, 64)), slice_tiling.samples)
    coords = {p.stem: read_coords(p) for p in sorted((slice_tiling.tiles / "coords").glob("*.h5"))}
    assert len(images) == sum(len(c.coords) for c in coords.values())
    assert images.images.shape[1:] == (3, 64, 64) and images.images.dtype == np.uint8
    # the plane is 64 x 64 voxels: the mask on the image pixels holds a lesion exactly where the tiling counted one
    assert np.array_equal(images.masks.any(axis=(1, 2)), images.fractions > 0)
    assert np.array_equal(images.labels, (images.fractions > 0).astype(int))
    assert 0 < images.labels.mean() < 0.5
    # PET only, as the tiling's channels say: the three channels are one plane repeated
    assert np.array_equal(images.images[:, 0], images.images[:, 1])
    assert images.ids[0] == f"{images.sources[0]}_a{int(coords[images.sources[0]].coords[0][2]):04d}"
    assert set(images.patients) == {s.split("_")[0] for s in images.sources}
    assert set(images.centres) == {"A", "B"}


def test_a_threshold_and_channels_change_the_images(slice_tiling) -> None:
    options = SliceSetOptions((32, 48), ("PET", "CT"), min_fraction=0.01, with_masks=False)
    images = read_slice_set(slice_tiling.tiles, options, slice_tiling.samples)
    assert images.images.shape[2:] == (32, 48) and images.masks is None
    assert np.array_equal(images.labels, (images.fractions > 0.01).astype(int))
    assert np.array_equal(images.images[:, 0], images.images[:, 2])  # (PET, CT, PET)
    assert not np.array_equal(images.images[:, 0], images.images[:, 1])


def test_bad_tilings_are_refused_and_bad_volumes_left_out(slice_tiling, tmp_path: Path) -> None:
    with pytest.raises(PathattnError, match="--channels MR: .* was tiled from CT,PET; choose among those"):
        read_slice_set(slice_tiling.tiles, SliceSetOptions((16, 16), ("MR",)))
    copy = tmp_path / "tiles" / "coords"
    copy.mkdir(parents=True)
    files = sorted((slice_tiling.tiles / "coords").glob("*.h5"))
    for path in files[:3]:
        (copy / path.name).write_bytes(path.read_bytes())
    broken = read_coords(copy / files[0].name)
    broken.attrs["volume_paths"] = '{"CT": "/nowhere/ct.nii.gz", "PET": "/nowhere/pet.nii.gz"}'
    write_coords(copy / files[0].name, broken)
    images = read_slice_set(tmp_path / "tiles", SliceSetOptions((16, 16)))
    assert [v for v, _ in images.skipped] == [files[0].stem] and files[0].stem not in images.sources
    patches = read_coords(copy / files[1].name)
    patches.attrs["mode"] = "patches"
    write_coords(copy / files[1].name, patches)
    with pytest.raises(PathattnError, match="no volume gave slices") as error:
        read_slice_set(tmp_path / "tiles", SliceSetOptions((16, 16)), volume_ids=[files[1].stem])
    assert "holds 3-D patches; tile the volumes again with --volume-mode slices" in str(error.value)


def test_slice_mask_is_the_label_plane_on_the_image_pixels() -> None:
    label = np.zeros((8, 6, 4), np.int16)
    label[2:4, 1:3, 1] = 1
    mask = slice_mask(label, 2, 1, (6, 8))  # the axial plane is shown (J, I) flipped: rows anterior first
    assert mask.shape == (6, 8) and mask.sum() == 4
    assert not slice_mask(label, 2, 0, (6, 8)).any()
    assert slice_mask(label, 2, 1, (12, 16)).sum() == 16  # nearest neighbours: each pixel becomes 2 x 2
