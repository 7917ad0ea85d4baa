"""Regions as patch sets: indices, attention rank and annotation polygons."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from pathattn.errors import PathattnError
from pathattn.explain.regions import (
    check_indices,
    patches_in_annotations,
    patches_in_region,
    ranking_scores,
    top_ranked,
)
from pathattn.io.geojson import Annotation, write_annotations

# a 4 x 3 grid of 100 px patches
COORDS = np.array([(x, y) for y in range(0, 300, 100) for x in range(0, 400, 100)], np.int64)


def test_check_indices_sorts_and_rejects_bad_ones():
    np.testing.assert_array_equal(check_indices([5, 1, 3], 6), [1, 3, 5])
    assert check_indices([], 6).dtype == np.int64
    with pytest.raises(PathattnError, match=r"out of range: \[6, -1\]; valid indices are 0 to 5 \(6 patches\)"):
        check_indices([6, -1, 2], 6)
    with pytest.raises(PathattnError, match="repeat"):
        check_indices([2, 2], 6)
    with pytest.raises(PathattnError, match="integers"):
        check_indices([0.5], 6)


def test_top_ranked_by_count_or_fraction():
    scores = np.array([0.1, 3.0, 2.0, 3.0, -1.0])
    np.testing.assert_array_equal(top_ranked(scores, k=3), [1, 3, 2])  # ties: lower index first
    np.testing.assert_array_equal(top_ranked(scores, fraction=0.3), [1, 3])  # ceil(1.5) = 2
    np.testing.assert_array_equal(top_ranked(scores, fraction=0.01), [1])  # at least one
    with pytest.raises(PathattnError, match="exactly one"):
        top_ranked(scores)
    with pytest.raises(PathattnError, match="top 6 of 5"):
        top_ranked(scores, k=6)


def test_ranking_scores_of_several_heads_is_the_mean_softmax_weight():
    attention = np.array([[0.0, 5.0], [1.0, 0.0], [-np.inf, 0.0]])
    weights_0 = np.array([np.exp(-1.0), 1.0, 0.0]) / (np.exp(-1.0) + 1.0)
    weights_1 = np.exp([5.0, 0.0, 0.0]) / np.exp([5.0, 0.0, 0.0]).sum()
    np.testing.assert_allclose(ranking_scores(attention), (weights_0 + weights_1) / 2)
    np.testing.assert_array_equal(ranking_scores(np.array([[1.0], [-np.inf]])), [1.0, -np.inf])


def test_patches_in_region_by_overlap():
    region = box(50, 0, 200, 100)  # half of patch 0, all of patch 1, nothing of the rest
    touched, overlap = patches_in_region(COORDS, 100, region)
    np.testing.assert_array_equal(touched, [0, 1])
    np.testing.assert_allclose(overlap[:3], [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(patches_in_region(COORDS, 100, region, min_overlap=0.6)[0], [1])
    with pytest.raises(PathattnError, match="min_overlap"):
        patches_in_region(COORDS, 100, region, min_overlap=1.5)


def test_patches_in_annotations_by_class(tmp_path):
    path = tmp_path / "slide.geojson"
    write_annotations(path, [Annotation(box(0, 200, 100, 300), "Tumor"), Annotation(box(300, 0, 400, 100), "Stroma")])
    indices, region = patches_in_annotations(COORDS, 100, path, ["Tumor"])
    np.testing.assert_array_equal(indices, [8])
    assert region.area == 10_000
    np.testing.assert_array_equal(patches_in_annotations(COORDS, 100, path)[0], [3, 8])
    with pytest.raises(PathattnError, match="no region of class Necrosis .*it has Stroma, Tumor"):
        patches_in_annotations(COORDS, 100, path, ["Necrosis"])
    empty, none = patches_in_annotations(COORDS, 100, path, ["Necrosis"], allow_none=True)
    assert len(empty) == 0 and none is None


def test_annotations_that_select_no_patch_are_an_error(tmp_path):
    path = tmp_path / "elsewhere.geojson"
    write_annotations(path, [Annotation(box(5000, 5000, 6000, 6000), "Tumor")])
    with pytest.raises(PathattnError, match="select no patch of the slide .*belongs to this slide"):
        patches_in_annotations(COORDS, 100, path)
    write_annotations(path, [Annotation(box(0, 0, 10, 10), "Tumor")])  # 1% of a patch
    with pytest.raises(PathattnError, match="largest overlap 0.01, min_overlap 0.5"):
        patches_in_annotations(COORDS, 100, path, min_overlap=0.5)
