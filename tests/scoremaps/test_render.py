"""Drawing on thumbnails: scores blended over the tissue, polygon masks with holes."""

import matplotlib
import numpy as np
from shapely.geometry import box

from pathattn.scoremaps.rasters import patch_mean, polygon_mask
from pathattn.scoremaps.render import blend_scores


def test_overlaps_average_and_tissue_masks():
    thumbnail = np.full((60, 100, 3), 200, np.uint8)
    # 2 level-0 px per thumbnail px: patches over thumbnail x 0-39, 20-59 and (masked) 60-99, y 0-39
    coords = np.array([[0, 0], [40, 0], [120, 0]])
    values = np.array([0.0, 1.0, np.nan])
    image = blend_scores(thumbnail, 2.0, coords, 80, values, cmap="jet", alpha=0.5)
    blend = lambda v: np.round(0.5 * 200 + 0.5 * np.array(matplotlib.colormaps["jet"](v)[:3]) * 255)  # noqa: E731
    assert (image[5, 5] == blend(0.0)).all() and (image[5, 50] == blend(1.0)).all()
    assert (image[5, 30] == blend(0.5)).all()  # x 20-39 is covered by both patches
    assert (image[:, 60:] == 200).all() and (image[40:] == 200).all()  # a masked patch, or none
    tissue = box(0, 0, 60, 80)  # level 0: thumbnail x < 30, y < 40
    masked = blend_scores(thumbnail, 2.0, coords, 80, values, tissue)
    assert (masked[:, 31:] == 200).all() and (masked[:, :29] == image[:, :29]).all()


def test_polygon_mask_leaves_holes_out():
    outer = box(0, 0, 100, 100).difference(box(20, 20, 80, 80))
    mask = polygon_mask(outer.union(box(40, 40, 60, 60)), (100, 100), 1.0)
    assert mask[10, 10] and not mask[30, 30] and mask[50, 50]


def test_patch_mean_counts_each_covering_patch_once():
    coords = np.array([[0, 0], [0, 0], [10, 0]])  # two patches on the same footprint
    mean = patch_mean(coords, 20, np.array([1.0, 3.0, np.inf]), (2, 4), 0.1)
    assert mean[0, 0] == 2.0 and mean[0, 1] == 2.0 and np.isnan(mean[0, 2])  # the non-finite patch is left out
