"""WSOL metrics against hand-computed cases, in both modes (docs/evaluate.md has the conventions).

With ``PATHATTN_WSOL_ORACLE`` pointing to a checkout of clovaai/wsolevaluation, the box sweep and PxAP are
also compared with the published code itself on random maps (skipped otherwise).
"""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from pathattn.scoremaps import wsol

GRID_HALF = wsol.threshold_grid(0.5)  # [0, 0.5]
GRID_QUARTER = wsol.threshold_grid(0.25)  # [0, 0.25, 0.5, 0.75]


def block_map(shape: tuple[int, int], blocks: list[tuple[int, int, int, int, float]]) -> np.ndarray:
    """A map of zeros with rectangles ``(x0, y0, x1, y1, value)`` (inclusive corners) painted in."""
    out = np.zeros(shape)
    for x0, y0, x1, y1, value in blocks:
        out[y0 : y1 + 1, x0 : x1 + 1] = value
    return out


def test_threshold_grid_is_the_published_one() -> None:
    np.testing.assert_array_equal(wsol.threshold_grid(0.001), np.arange(0, 1, 0.001))
    assert len(wsol.threshold_grid(0.001)) == 1000 and wsol.threshold_grid(0.25).tolist() == [0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="step"):
        wsol.threshold_grid(0.0)


def test_box_iou_by_hand() -> None:
    iou = wsol.box_iou(np.array([[0, 0, 1, 1], [0, 0, 0, 0], [5, 5, 6, 6]]), np.array([[1, 1, 2, 2], [0, 0, 0, 0]]))
    # [0,0,1,1] vs [1,1,2,2]: one shared pixel of 4 + 4 - 1; two one-pixel boxes at the origin coincide
    np.testing.assert_allclose(iou, [[1 / 7, 1 / 4], [0.0, 1.0], [0.0, 0.0]])
    assert wsol.box_iou(np.array([[3, 3, 1, 1]]), np.array([[3, 3, 1, 1]]))[0, 0] == 0.0  # degenerate union


def test_one_box_default_mode() -> None:
    score = block_map((10, 10), [(3, 2, 6, 4, 1.0)])
    largest, every = wsol.map_ious(score, np.array([[3, 2, 6, 4]]), GRID_HALF)
    # τ = 0: every pixel is foreground, the box is the whole map: IoU 12 / 100; τ = 0.5: the block itself
    np.testing.assert_allclose(largest, [0.12, 1.0])
    np.testing.assert_allclose(every, [0.12, 1.0])


def test_one_box_reference_mode_corner_convention() -> None:
    score = block_map((224, 224), [(3, 2, 6, 4, 1.0)])
    largest, _ = wsol.map_ious(score, np.array([[3, 2, 6, 4]]), GRID_HALF, "reference")
    # τ = 0: uint8 > 0 is the block; boundingRect gives x + w = 7, y + h = 5: [3, 2, 7, 5] has 20 pixels
    np.testing.assert_allclose(largest, [12 / 20, 12 / 20])


def test_several_ground_truth_boxes_best_match_counts() -> None:
    score = block_map((20, 20), [(10, 10, 14, 13, 1.0)])
    gt = np.array([[0, 0, 3, 3], [10, 10, 14, 13]])
    largest, _ = wsol.map_ious(score, gt, GRID_HALF)
    assert largest[1] == 1.0
    assert largest[0] == pytest.approx(20 / 400)  # the whole map against the better of the two boxes


def test_several_components_largest_versus_all() -> None:
    # a large dim blob (0.6, 5 x 5) and a small bright one (1.0, 2 x 2); the truth is the small one
    score = block_map((10, 10), [(0, 0, 4, 4, 0.6), (7, 7, 8, 8, 1.0)])
    largest, every = wsol.map_ious(score, np.array([[7, 7, 8, 8]]), GRID_QUARTER)
    np.testing.assert_allclose(every, [0.04, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(largest, [0.04, 0.0, 0.0, 1.0])  # τ ≤ 0.6: the 5 x 5 blob is the largest
    accuracy, best = wsol.max_box_acc(largest[None])
    assert (accuracy, best) == (1.0, 3)


def test_holes_are_boxes_in_reference_mode_only() -> None:
    ring = block_map((224, 224), [(1, 1, 9, 9, 1.0), (4, 4, 6, 6, 0.0)])
    hole_box = np.array([[3, 3, 8, 8]])  # the hole contour runs along the ring's inner pixels 3..7
    _, every_reference = wsol.map_ious(ring, hole_box, GRID_HALF, "reference")
    _, every_default = wsol.map_ious(ring, hole_box, GRID_HALF, "default")
    assert every_reference[1] == 1.0
    outer = np.array([[1, 1, 9, 9]])  # default: only the outer boundary; [1..9] vs [3..8]: 36 / 81
    assert every_default[1] == pytest.approx(36 / 81)
    assert wsol.map_ious(ring, outer, GRID_HALF, "default")[0][1] == 1.0


def test_diagonal_pixels_are_one_component() -> None:
    score = block_map((6, 6), [(1, 1, 1, 1, 1.0), (2, 2, 2, 2, 1.0)])
    largest, every = wsol.map_ious(score, np.array([[1, 1, 2, 2]]), GRID_HALF)
    assert largest[1] == every[1] == 1.0


def test_empty_and_constant_maps() -> None:
    constant = wsol.normalize_map(np.full((224, 224), 3.0))
    np.testing.assert_array_equal(constant, 0.0)
    gt = np.array([[10, 10, 20, 20]])
    largest, every = wsol.map_ious(constant, gt, GRID_HALF)
    np.testing.assert_allclose(largest, [121 / 224**2, 0.0])  # τ = 0 is the whole map, then nothing
    # reference: uint8 max is 0, nothing is > 0, and an empty foreground is the box [0, 0, 0, 0]
    np.testing.assert_allclose(wsol.map_ious(constant, gt, GRID_HALF, "reference")[0], [0.0, 0.0])
    np.testing.assert_allclose(wsol.map_ious(constant, np.array([[0, 0, 0, 0]]), GRID_HALF, "reference")[1], 1.0)


def test_reference_threshold_is_strict_on_the_quantised_map() -> None:
    score = block_map((224, 224), [(0, 0, 9, 9, 0.5), (100, 100, 109, 109, 1.0)])
    gt = np.array([[0, 0, 9, 9]])
    # τ = 0.5: default keeps s >= 0.5 (both squares); reference keeps uint8 127 > int(0.5 * 255) = 127: no
    assert wsol.map_ious(score, gt, GRID_HALF, "default")[1][1] == 1.0
    assert wsol.map_ious(score, gt, GRID_HALF, "reference")[1][1] == 0.0


def test_max_box_acc_v2_maximises_the_threshold_per_iou() -> None:
    ious = np.array([[0.35, 0.55, 0.1], [0.31, 0.6, 0.75]])
    mean, per_delta = wsol.max_box_acc_v2(ious)
    assert per_delta == {0.3: (1.0, 0), 0.5: (1.0, 1), 0.7: (0.5, 2)}
    assert mean == pytest.approx(2.5 / 3)  # one threshold for all three would give at most 2 / 3


def test_gt_known_and_top1_localization() -> None:
    ious = np.array([[0.6, 0.4], [0.5, 0.7], [0.2, 0.9]])
    assert wsol.localization_accuracy(ious, 0) == pytest.approx(2 / 3)
    assert wsol.localization_accuracy(ious, 1, np.array([True, False, True])) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="classification flags"):
        wsol.localization_accuracy(ious, 0, np.array([True]))


def test_scale_boxes_both_conventions() -> None:
    boxes = np.array([[10, 20, 29, 39]])
    # default: 100 x 200 image onto a 50 x 50 map: x * 0.5, y * 0.25, rounded outwards
    np.testing.assert_array_equal(wsol.scale_boxes(boxes, (100, 200), (50, 50)), [[5, 5, 14, 9]])
    # reference: onto 224 x 224, truncated: 10 * 2.24 = 22.4, 20 * 1.12 = 22.4, 29 * 2.24 = 64.96, 39 * 1.12 = 43.68
    np.testing.assert_array_equal(wsol.scale_boxes(boxes, (100, 200), (50, 50), "reference"), [[22, 22, 64, 43]])


def test_normalize_map_nan_policy_and_region() -> None:
    score = np.array([[1.0, 3.0], [np.nan, 2.0]])
    with pytest.raises(ValueError, match="NaN"):
        wsol.normalize_map(score)
    np.testing.assert_array_equal(wsol.normalize_map(score, mode="reference"), 0.0)  # normalize_scoremap
    region = np.array([[True, True], [False, True]])
    np.testing.assert_allclose(wsol.normalize_map(score, region), [[0.0, 1.0], [0.0, 0.5]])
    with pytest.raises(ValueError, match="2-D"):
        wsol.normalize_map(np.zeros(4))


def test_box_input_errors() -> None:
    with pytest.raises(ValueError, match="without ground-truth boxes"):
        wsol.map_ious(np.zeros((8, 8)), np.zeros((0, 4)), GRID_HALF)
    with pytest.raises(ValueError, match="224 x 224"):
        wsol.map_ious(np.zeros((8, 8)), np.array([[0, 0, 1, 1]]), GRID_HALF, "reference")
    with pytest.raises(ValueError, match="unknown mode"):
        wsol.map_ious(np.zeros((8, 8)), np.array([[0, 0, 1, 1]]), GRID_HALF, "strict")  # type: ignore[arg-type]


def test_pxap_by_hand_matches_average_precision() -> None:
    score = np.array([[1.0, 0.5, 0.5, 0.0]])
    truth = np.array([[True, False, True, False]])
    counts = wsol.pixel_counts(score, truth, GRID_HALF)
    # thresholds 1, 0.5, 0: precision 1, 2/3, 1/2 at recall 0.5, 1, 1 -> 0.5 * 1 + 0.5 * 2/3
    assert counts.pxap() == pytest.approx(0.5 + 1 / 3)
    assert counts.pxap() == pytest.approx(average_precision_score(truth.ravel(), score.ravel()))
    precision, recall = counts.curve()
    np.testing.assert_allclose(precision, [0.5, 2 / 3])
    np.testing.assert_allclose(recall, [1.0, 1.0])
    np.testing.assert_allclose(counts.dice(), [2 * 2 / (4 + 2), 2 * 2 / (4 + 1)])
    np.testing.assert_allclose(counts.iou(), [2 / 4, 2 / 3])


def test_pxap_ignore_region_and_pooling() -> None:
    score = np.array([[1.0, 0.5, 0.5, 0.0, 1.0]])
    truth = np.array([[True, False, True, False, False]])
    ignore = np.array([[False, False, False, False, True]])  # a confident false positive, but ignored
    with_ignore = wsol.pixel_counts(score, truth, GRID_HALF, ignore)
    assert with_ignore.pxap() == pytest.approx(0.5 + 1 / 3)
    assert wsol.pixel_counts(score, truth, GRID_HALF).pxap() < with_ignore.pxap()
    ignored_positive = wsol.pixel_counts(score, truth, GRID_HALF, truth | ignore)  # foreground wins over ignore
    assert ignored_positive.pxap() == pytest.approx(with_ignore.pxap())
    pooled = with_ignore + wsol.pixel_counts(np.array([[0.0, 1.0]]), np.array([[False, True]]), GRID_HALF)
    assert pooled.n_positive == 3
    assert pooled.pxap() == pytest.approx(average_precision_score([1, 0, 1, 0, 0, 1], [1, 0.5, 0.5, 0, 0, 1]))


def test_pxap_perfect_constant_and_empty_truth() -> None:
    truth = np.zeros((10, 10), bool)
    truth[2:5, 3:7] = True
    grid = wsol.threshold_grid(0.001)
    assert wsol.pixel_counts(truth.astype(float), truth, grid).pxap() == 1.0
    assert wsol.pixel_counts(np.zeros((10, 10)), truth, grid).pxap() == pytest.approx(0.12)  # the prevalence
    empty = wsol.pixel_counts(np.zeros((10, 10)), np.zeros((10, 10), bool), grid)
    assert np.isnan(empty.pxap())
    assert np.isnan(empty.dice()[1])  # nothing true, nothing predicted
    assert empty.dice()[0] == 0.0  # at τ = 0 everything is predicted


def test_pixel_input_errors() -> None:
    with pytest.raises(ValueError, match="one shape"):
        wsol.pixel_counts(np.zeros((4, 4)), np.zeros((4, 5), bool), GRID_HALF)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wsol.pixel_counts(np.full((2, 2), 2.0), np.zeros((2, 2), bool), GRID_HALF)
    with pytest.raises(ValueError, match="grids"):
        _ = wsol.pixel_counts(np.zeros((1, 1)), np.ones((1, 1), bool), GRID_HALF) + wsol.pixel_counts(
            np.zeros((1, 1)), np.ones((1, 1), bool), GRID_QUARTER
        )


@pytest.fixture
def oracle(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """clovaai/wsolevaluation's ``evaluation`` module, run with the shims its old numpy idioms need."""
    root = os.environ.get("PATHATTN_WSOL_ORACLE")
    if not root:
        pytest.skip("set PATHATTN_WSOL_ORACLE to a wsolevaluation checkout to compare with the published code")
    monkeypatch.setattr(np, "float", float, raising=False)
    monkeypatch.setattr(np, "int", int, raising=False)
    munch = types.ModuleType("munch")
    munch.Munch = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "munch", munch)
    monkeypatch.syspath_prepend(root)
    import evaluation  # type: ignore[import-not-found]

    return evaluation


def random_maps(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    import cv2

    maps = []
    for i in range(n):
        noise = rng.random((224, 224))
        maps.append(wsol.normalize_map(cv2.GaussianBlur(noise, (0, 0), 2 + 6 * (i % 3)) if i % 4 else noise))
    return maps


def test_reference_mode_equals_the_published_code(oracle: types.ModuleType) -> None:
    rng = np.random.default_rng(0)
    grid = wsol.threshold_grid(0.01)
    for score in random_maps(rng, 12):
        corner = rng.integers(0, 170, (3, 2))
        gt = np.concatenate([corner, corner + rng.integers(4, 50, (3, 2))], axis=1)
        for multi in (False, True):
            boxes, numbers = oracle.compute_bboxes_from_scoremaps(score, grid, multi)
            best = oracle.calculate_multiple_iou(np.concatenate(boxes), gt).max(1)
            expected = [best[s : s + k].max() for s, k in zip(np.cumsum([0, *numbers[:-1]]), numbers, strict=True)]
            np.testing.assert_allclose(wsol.map_ious(score, gt, grid, "reference")[int(multi)], expected)


def test_pxap_equals_the_published_mask_evaluator(oracle: types.ModuleType, monkeypatch) -> None:
    rng = np.random.default_rng(1)
    grid = wsol.threshold_grid(0.001)
    evaluator = oracle.MaskEvaluator.__new__(oracle.MaskEvaluator)
    evaluator.cam_threshold_list, evaluator.split = list(grid), "test"
    evaluator.threshold_list_right_edge = np.append(grid, [1.0, 2.0, 3.0])
    evaluator.gt_true_score_hist, evaluator.gt_false_score_hist = np.zeros(len(grid) + 2), np.zeros(len(grid) + 2)
    evaluator.mask_root, evaluator.mask_paths, evaluator.ignore_paths = "", {}, {}
    pooled = None
    for i, score in enumerate(random_maps(rng, 8)):
        x, y = rng.integers(10, 150, 2)
        truth, ignore = np.zeros((224, 224), bool), np.zeros((224, 224), bool)
        truth[y : y + 50, x : x + 40], ignore[y - 8 : y + 60, x - 8 : x + 50] = True, True
        coded = truth.astype(np.uint8) + 255 * (ignore & ~truth).astype(np.uint8)
        evaluator.mask_paths[str(i)], evaluator.ignore_paths[str(i)] = [], ""
        monkeypatch.setattr(oracle, "get_mask", lambda *_, coded=coded: coded)
        evaluator.accumulate(score, str(i))
        counts = wsol.pixel_counts(score, truth, grid, ignore)
        pooled = counts if pooled is None else pooled + counts
    assert pooled.pxap() == pytest.approx(evaluator.compute() / 100, abs=1e-12)
