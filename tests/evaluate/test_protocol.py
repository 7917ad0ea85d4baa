"""The protocol: the calibration split chooses the variant and the thresholds, the test split is scored with them."""

from __future__ import annotations

import numpy as np
import pytest

from pathattn.evaluate import protocol
from pathattn.scoremaps import wsol

GRID = wsol.threshold_grid(0.1)


def square_truth(shape: tuple[int, int] = (10, 10)) -> np.ndarray:
    truth = np.zeros(shape, bool)
    truth[2:6, 3:7] = True  # 16 pixels, box [3, 2, 6, 5]
    return truth


def graded_map(truth: np.ndarray, inside: float, distractor: float, width: int = 3) -> np.ndarray:
    """Truth pixels at ``inside``, a 3-row distractor ``width`` wide at ``distractor``, the rest 0.2 (then 0)."""
    score = np.full(truth.shape, 0.2)
    score[truth] = inside
    score[7:10, 0:width] = distractor
    return wsol.normalize_map(score)


def samples(ids: list[str], with_boxes: bool = True) -> dict[str, protocol.Sample]:
    truth = square_truth()
    boxes = np.array([[3, 2, 6, 5]]) if with_boxes else None
    return {i: protocol.Sample(i, truth=truth, ignore=None, boxes=boxes, correct=i != "b") for i in ids}


def test_calibration_chooses_the_variant_by_pxap_and_the_dice_threshold() -> None:
    truth = square_truth()
    calibration = samples(["a", "b"])
    good = {i: graded_map(truth, 1.0, 0.64) for i in calibration}  # distractor below the tumor: PxAP 1
    bad = {i: graded_map(truth, 0.64, 1.0) for i in calibration}  # distractor above it
    candidates = {
        name: protocol.score_split(m, calibration, GRID, "default") for name, m in (("bad", bad), ("good", good))
    }
    chosen, operating = protocol.choose(candidates)
    assert chosen == "good"
    assert candidates["good"].pixels.pxap() == 1.0 and candidates["bad"].pixels.pxap() < 1.0
    # normalised: tumor 1.0, distractor 0.55, rest 0; Dice is 1 for τ in 0.6..0.9: the middle of that run, 0.7
    assert GRID[operating.pixel_index] == pytest.approx(0.7)
    # from τ = 0.1 to 0.9 the largest component is the tumor (its box is the truth): the middle is 0.5
    assert GRID[operating.box_index] == pytest.approx(0.5)


def test_test_split_is_scored_at_the_calibrated_threshold() -> None:
    truth = square_truth()
    calibration, test = samples(["a"]), samples(["t1", "t2"])
    calibrated = protocol.score_split({"a": graded_map(truth, 1.0, 0.64)}, calibration, GRID, "default")
    operating = protocol.operating_point(calibrated)
    # on the test maps a wide distractor (0.82 raw, 0.775 normalised) passes τ = 0.7
    test_maps = {i: graded_map(truth, 1.0, 0.82, width=10) for i in test}
    summary = protocol.summarize(protocol.score_split(test_maps, test, GRID, "default"), operating)
    assert summary["threshold"] == pytest.approx(0.7)
    assert summary["dice"] == pytest.approx(2 * 32 / (2 * 32 + 2 * 30))  # 16 tumor + 30 distractor pixels each
    assert summary["max_dice"] == 1.0  # the test split's own best threshold would hide that: it is not used
    assert summary["box_threshold"] == pytest.approx(0.5)
    assert summary["gt_known_loc"] == 0.0  # at τ 0.5 the 3 x 10 distractor is the largest component
    assert summary["max_box_acc"] == 1.0  # ... but MaxBoxAcc maximises τ on the split itself
    assert summary["max_box_acc_threshold"] == pytest.approx(0.8)


def test_plateau_centre_takes_the_middle_of_the_longest_best_run() -> None:
    assert protocol.plateau_centre(np.array([0.2, 1.0, 0.5, 1.0, 1.0, 1.0, 0.3])) == 4
    assert protocol.plateau_centre(np.array([1.0, 1.0, 0.0, 0.0])) == 0
    assert protocol.plateau_centre(np.array([np.nan, 0.4, np.nan])) == 1
    assert protocol.plateau_centre(np.array([np.nan, np.nan])) == 0


def test_top1_localization_uses_the_classification_flags() -> None:
    truth = square_truth()
    split = samples(["a", "b"])
    scored = protocol.score_split({i: graded_map(truth, 1.0, 0.0) for i in split}, split, GRID, "default")
    summary = protocol.summarize(scored, protocol.operating_point(scored))
    assert summary["gt_known_loc"] == 1.0
    assert summary["top1_loc"] == 0.5  # "b" is misclassified


def test_sample_rows_and_box_only_selection() -> None:
    truth = square_truth()
    boxes_only = {i: protocol.Sample(i, boxes=np.array([[3, 2, 6, 5]])) for i in ("a", "b")}
    scored = protocol.score_split({i: truth.astype(float) for i in boxes_only}, boxes_only, GRID, "default")
    assert scored.pixels is None and scored.correct is None
    assert protocol.selection_metric(scored) == ("max_box_acc_v2", 1.0)
    rows = protocol.sample_rows(scored, protocol.operating_point(scored))
    assert rows == {"a": {"box_iou_largest": 1.0}, "b": {"box_iou_largest": 1.0}}


def test_errors_no_map_and_nothing_to_calibrate_on() -> None:
    split = samples(["a"])
    with pytest.raises(ValueError, match="no score map for a"):
        protocol.score_split({}, split, GRID, "default")
    empty = {"a": protocol.Sample("a", truth=np.zeros((4, 4), bool))}
    scored = protocol.score_split({"a": np.zeros((4, 4))}, empty, GRID, "default")
    with pytest.raises(ValueError, match="no tumor pixel"):
        protocol.choose({"only": scored})
    with pytest.raises(ValueError, match="no candidate"):
        protocol.choose({})


def test_random_calibration_leaves_a_tumor_slide_to_the_test_split():
    from pathattn.evaluate.slides import assign_splits

    tiny = {"t1": True, "t2": True, "n1": False, "n2": False}
    calibration, test = assign_splits(tiny, n_calibration=6)
    assert len(calibration) == 2 and {True, False} == {tiny[s] for s in calibration} == {tiny[s] for s in test}
    cohort = {f"t{k}": True for k in range(20)} | {f"n{k}": False for k in range(20)}
    calibration, test = assign_splits(cohort, n_calibration=6, seed=0)
    assert sum(cohort[s] for s in calibration) == 3 and len(calibration) == 6 and len(test) == 34
