"""Patch grid to slide raster, annotations to masks and boxes, on hand-made grids."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from pathattn.evaluate import rasters

GRID = rasters.SlideGrid((8, 10), 10.0)  # 8 x 10 raster pixels of 10 x 10 level-0 pixels


def test_grid_at_mpp() -> None:
    grid = rasters.SlideGrid.at_mpp((6144, 4608), 0.5, 16.0)
    assert grid.level0_per_px == 32.0 and grid.shape == (144, 192) and grid.scale == 1 / 32
    with pytest.raises(ValueError, match="positive"):
        rasters.SlideGrid.at_mpp((100, 100), 0.5, 0.0)


def test_patch_raster_averages_overlaps_and_leaves_uncovered_nan() -> None:
    coords = np.array([[0, 0], [20, 0]])  # 40 x 40 patches, overlapping over x 20..40
    raster = rasters.patch_raster(coords, 40, np.array([1.0, 3.0]), GRID)
    assert raster[0, 0] == 1.0 and raster[0, 3] == 2.0 and raster[0, 5] == 3.0
    assert np.isnan(raster[5, 0]) and np.isnan(raster[0, 7])


def test_stitched_patch_maps_keep_their_inner_pattern() -> None:
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, :2, :] = 1.0  # top half hot
    maps[1, 0, 0] = np.nan  # a masked patch
    raster = rasters.stitch_patch_maps(np.array([[20, 20], [0, 0]]), 40, maps, GRID)
    assert raster[2, 3] > 0.5 > raster[5, 3]  # rows 2-3 are the patch's top half, 4-5 its bottom half
    assert np.isnan(raster[0, 0])


def test_region_mask_leaves_holes_out() -> None:
    ring = shapely.Polygon([(0, 0), (80, 0), (80, 80), (0, 80)], [[(20, 20), (60, 20), (60, 60), (20, 60)]])
    mask = rasters.region_mask(ring, GRID)
    # vertices at the nearest pixel (x 80 -> column 8), boundaries drawn in: columns 0-8, hole rows/cols 3-5
    assert mask[:, :9].sum() == mask.sum() == 8 * 9 - 9
    assert not mask[3:6, 3:6].any()


def test_lesion_boxes_one_per_polygon() -> None:
    lesions = shapely.MultiPolygon([shapely.box(0, 0, 30, 20), shapely.box(60, 40, 100, 80), shapely.box(5, 75, 6, 76)])
    boxes = rasters.lesion_boxes(lesions, GRID)
    # vertices to the nearest pixel (x 30 -> column 2, y 20 -> row 2), boundaries in; a tiny lesion keeps one pixel
    np.testing.assert_array_equal(boxes, [[0, 0, 2, 2], [6, 4, 9, 7], [0, 7, 0, 7]])
    assert rasters.lesion_boxes(shapely.Polygon(), GRID).shape == (0, 4)


def test_patch_fractions() -> None:
    tumor = shapely.box(0, 0, 20, 40)
    fractions = rasters.patch_fractions(np.array([[0, 0], [20, 0], [10, 0]]), 40, tumor)
    np.testing.assert_allclose(fractions, [0.5, 0.0, 0.25])
    np.testing.assert_array_equal(rasters.patch_fractions(np.array([[0, 0]]), 40, shapely.Polygon()), [0.0])


def test_smoothing_stays_inside_the_region() -> None:
    region = np.zeros((8, 10), bool)
    region[:, :5] = True
    raster = np.where(region, 0.7, 5.0)  # a large value outside must not leak in
    smoothed = rasters.smooth(raster, region, 2.0)
    np.testing.assert_allclose(smoothed[region], 0.7)
    assert (smoothed[~region] == 0).all()
    assert rasters.smooth(raster, region, 0.0) is raster


def test_score_map_uncovered_tissue_is_lowest_then_minmax() -> None:
    region = np.ones((8, 10), bool)
    region[:, 9] = False
    score = rasters.patch_score_map(np.array([5.0, 1.0]), np.array([[0, 0], [40, 0]]), 40, GRID, region, "minmax")
    assert score[0, 0] == 1.0  # the higher patch
    assert score[0, 5] == 0.0 and score[7, 0] == 0.0  # the lower patch ties with uncovered tissue
    assert (score[:, 9] == 0).all()
