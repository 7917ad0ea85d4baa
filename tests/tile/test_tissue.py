"""Tissue detection on known images."""

import numpy as np
import pytest

from pathattn.tile.params import TissueParams
from pathattn.tile.tissue import detect_tissue, mask_to_geometry


def _image():
    image = np.full((200, 300, 3), 240, np.uint8)
    image[40:140, 50:250] = (210, 130, 180)  # tissue: 100 x 200 px
    image[70:100, 120:170] = 240  # a hole: 30 x 50 px
    image[170:173, 10:13] = (90, 40, 60)  # a speck of debris: 9 px
    return image


def test_detects_tissue_with_physical_area_filters():
    # 8 µm/px image of a slide scanned at 0.5 µm/px: 16 level-0 px per image px
    params = TissueParams(min_area_mm2=0.05, min_hole_mm2=0.01)
    tissue, threshold = detect_tissue(_image(), (16.0, 16.0), 0.5, params)
    assert threshold >= params.threshold
    assert len(tissue.geoms) == 1  # the speck (0.0006 mm²) is dropped
    polygon = tissue.geoms[0]
    assert len(polygon.interiors) == 1  # the hole (0.096 mm²) is kept
    area_mm2 = polygon.area * (0.5e-3) ** 2
    assert area_mm2 == pytest.approx((100 * 200 - 30 * 50) * (8e-3) ** 2, rel=0.06)
    minx, miny, maxx, maxy = polygon.bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((50 * 16, 40 * 16, 250 * 16, 140 * 16), abs=24)


def test_small_holes_are_filled():
    tissue, _ = detect_tissue(_image(), (16.0, 16.0), 0.5, TissueParams(min_hole_mm2=0.2))
    assert len(tissue.geoms[0].interiors) == 0


def test_blank_slide_has_no_tissue():
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(240, 2, (200, 300, 3)), 0, 255).astype(np.uint8)
    tissue, _ = detect_tissue(blank, (16.0, 16.0), 0.5, TissueParams())
    assert tissue.is_empty


def test_empty_mask():
    assert mask_to_geometry(np.zeros((10, 10), np.uint8), (1, 1), 0.5, 0, 0).is_empty
