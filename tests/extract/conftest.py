"""Tiled slides for the extraction tests."""

import cv2
import numpy as np
import pytest

from pathattn.io.samples import SlideEntry
from pathattn.tile.run import TileJob, tile_batch


def textured(width=2048, height=1536, seed=0):
    """A slide image whose patches all differ: tissue with random texture on glass."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 242, np.uint8)
    noise = rng.integers(0, 60, (height // 8, width // 8, 3), dtype=np.uint8)
    tissue = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR) + np.array([150, 60, 110], np.uint8)
    image[256:1280, 256:1792] = tissue[256:1280, 256:1792]
    return image


@pytest.fixture
def texture():
    """:func:`textured`, for the tests to call."""
    return textured


@pytest.fixture
def tiled(make_slide, tmp_path):
    """Two tiled slides at 0.25 µm/px read at 0.5 µm/px (read_size 512 at level 0 → resized)."""
    entries = [SlideEntry(n, make_slide(n, textured(seed=k), mpp=0.25)) for k, n in enumerate(("a", "b"))]
    job = TileJob(tmp_path / "tiles")
    assert [r.status for r in tile_batch(entries, job)] == ["done", "done"]
    return job
