"""Coordinates files read by CLAM's and TRIDENT's reading rules give the pixels pathattn reads.

The rules are re-stated from the tools' documented behaviour (docs/formats.md), not copied:

* CLAM (``Whole_Slide_Bag_FP``): ``read_region(xy, patch_level, (patch_size, patch_size))``, no resize;
* TRIDENT (native coords, ``WSIPatcher``): pixel sizes ``10 / level0_magnification`` and
  ``10 / target_magnification``, ``ds`` their ratio, ``round(patch_size * ds)`` level-0 pixels, the level whose
  downsample is within 0.1 of ``ds`` (else the coarsest below it), ``round(size0 / int(level_downsample))``
  pixels read there, then resized to ``patch_size``.
"""

import h5py
import numpy as np
import openslide
import pytest

from pathattn.extract.run import _check_slide
from pathattn.io.coords import read_coords
from pathattn.io.samples import SlideEntry
from pathattn.io.slide import Slide
from pathattn.synth.wsi import write_slide
from pathattn.tile.params import GridParams, TileParams
from pathattn.tile.run import TileJob, tile_slide


def textured(width=4096, height=2560, seed=3):
    """Pink tissue with per-pixel texture (every read differs), glass along the left edge."""
    rng = np.random.default_rng(seed)
    image = (np.array([200, 120, 170]) + rng.integers(-40, 40, (height, width, 3))).astype(np.uint8)
    image[:, :256] = 242
    return image


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory):
    """A slide at 0.25 µm/px (40x) with levels at downsample 1, 4 and 16."""
    return write_slide(tmp_path_factory.mktemp("compat") / "s.tif", textured(), 0.25, level_factor=4)


def clam_read(slide_path, xy, attrs):
    """CLAM's reading rule: the region at ``patch_level`` of ``patch_size`` pixels, as RGB."""
    osr = openslide.OpenSlide(str(slide_path))
    size = int(attrs["patch_size"])
    return np.asarray(osr.read_region(tuple(map(int, xy)), int(attrs["patch_level"]), (size, size)).convert("RGB"))


def trident_level(downsamples, ds, tolerance=0.1):
    """TRIDENT's level choice for a downsample ``ds``."""
    close = [i for i, d in enumerate(downsamples) if abs(d - ds) <= tolerance]
    if close:
        return close[0]
    below = [i for i, d in enumerate(downsamples) if d <= ds]
    return below[-1] if below else next(i for i, d in enumerate(downsamples) if d >= ds)


def trident_read(slide_path, xy, attrs):
    """TRIDENT's reading rule for its native attributes: (region as RGB, the size it is resized to)."""
    osr = openslide.OpenSlide(str(slide_path))
    ds = (10 / attrs["target_magnification"]) / (10 / attrs["level0_magnification"])
    size0 = round(attrs["patch_size"] * ds)
    level = trident_level(osr.level_downsamples, ds)
    size = round(size0 / int(osr.level_downsamples[level]))
    region = osr.read_region(tuple(map(int, xy)), level, (size, size)).convert("RGB")
    return np.asarray(region), int(attrs["patch_size"])


def pathattn_read(slide_path, xy, coords, coords_file):
    """pathattn's own read plan (what ``pathattn extract`` reads, before resizing to the encoder)."""
    plan = _check_slide(coords, slide_path, coords_file)
    with Slide(slide_path) as slide:
        return slide.read_region(tuple(map(int, xy)), plan.level, (plan.read_size, plan.read_size))


@pytest.mark.parametrize(
    ("target_mpp", "level", "read_size"),
    [(0.5, 0, 512), (2.0, 1, 512), (0.25, 0, 256), (1.0, 1, 256)],
)
def test_clam_and_trident_read_the_pixels_pathattn_reads(slide_path, tmp_path, target_mpp, level, read_size):
    """Targets on a pyramid level and between levels."""
    job = TileJob(tmp_path / "tiles", TileParams(GridParams(mpp=target_mpp, patch_size=256, min_tissue=0.0)))
    assert tile_slide(SlideEntry("s", slide_path), job).status == "done"
    coords = read_coords(job.coords_path("s"))
    attrs = coords.attrs
    assert (attrs["patch_level"], attrs["patch_size"], attrs["target_patch_size"]) == (level, read_size, 256)
    assert attrs["target_mpp"] == target_mpp and attrs["level0_magnification"] == 40.0
    for xy in coords.coords[[0, len(coords) // 2, -1]]:
        ours = pathattn_read(slide_path, xy, coords, job.coords_path("s"))
        assert ours.shape == (read_size, read_size, 3)
        np.testing.assert_array_equal(clam_read(slide_path, xy, attrs), ours)
        trident, resized_to = trident_read(slide_path, xy, attrs)
        np.testing.assert_array_equal(trident, ours)
        assert resized_to == read_size  # TRIDENT hands on the region as read (no resize)


def test_older_coords_files_keep_their_read_size(slide_path, tmp_path):
    """Files written before schema 2 (patch_size = the target size) are still read by their read_size."""
    job = TileJob(tmp_path / "tiles", TileParams(GridParams(mpp=0.5, patch_size=256, min_tissue=0.0)))
    tile_slide(SlideEntry("s", slide_path), job)
    with h5py.File(job.coords_path("s"), "a") as f:
        f["coords"].attrs["patch_size"] = 256  # the old meaning
        f["coords"].attrs["schema_version"] = 1
    coords = read_coords(job.coords_path("s"))
    assert _check_slide(coords, slide_path, job.coords_path("s")).read_size == 512
