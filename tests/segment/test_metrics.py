"""Segmentation metrics on hand-made masks: values worked out by hand, the empty-mask rules, lesions by size."""

import math

import numpy as np
import pytest

from pathattn.segment.metrics import case_metrics, size_bin_names, summarize, surface_metrics


def cube(shape: tuple[int, int, int], start: tuple[int, int, int], side: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(s, s + side) for s in start)] = True
    return mask


def test_a_shifted_cube_gives_the_worked_out_dice_and_distances() -> None:
    truth = cube((20, 20, 20), (5, 5, 5), 4)
    pred = cube((20, 20, 20), (6, 5, 5), 4)  # one voxel along i: 48 of 64 voxels shared
    scores = surface_metrics(pred, truth, (2.0, 1.0, 1.0), tolerance_mm=1.0)
    assert scores["dice"] == pytest.approx(2 * 48 / 128)
    assert scores["hd95"] == pytest.approx(2.0)  # the shift is one voxel of 2 mm
    assert 0 < scores["nsd"] < 1  # faces 2 mm apart are outside a 1 mm tolerance, the others inside
    assert surface_metrics(pred, truth, (2.0, 1.0, 1.0), tolerance_mm=2.5)["nsd"] == pytest.approx(1.0)
    assert surface_metrics(truth, truth, (1.0, 1.0, 1.0), 1.0) == pytest.approx({"dice": 1.0, "hd95": 0.0, "nsd": 1.0})


def test_empty_masks_follow_the_documented_rules() -> None:
    empty, some = np.zeros((8, 8, 8), bool), cube((8, 8, 8), (2, 2, 2), 2)
    assert surface_metrics(empty, empty, (1, 1, 1), 1.0) == {"dice": 1.0, "hd95": 0.0, "nsd": 1.0}
    for pred, truth in ((some, empty), (empty, some)):
        scores = surface_metrics(pred, truth, (1, 1, 1), 1.0)
        assert scores["dice"] == 0.0 and scores["nsd"] == 0.0 and math.isnan(scores["hd95"])


def test_lesions_are_detected_by_overlap_and_binned_by_volume() -> None:
    shape = (30, 30, 30)
    truth = np.zeros(shape, np.int16)
    truth[cube(shape, (2, 2, 2), 10)] = 1  # 1000 voxels of 8 mm^3: 8 mL, found
    truth[cube(shape, (20, 20, 20), 2)] = 1  # 8 voxels: 0.064 mL, missed
    pred = np.zeros(shape, np.int16)
    pred[cube(shape, (4, 4, 4), 10)] = 1
    pred[cube(shape, (25, 2, 2), 2)] = 1  # a false positive component
    rows, lesions = case_metrics(pred, truth, (2.0, 2.0, 2.0), n_classes=2, tolerance_mm=2.0)
    assert [(r["volume_ml"], r["detected"], r["dice"]) for r in lesions] == [
        (pytest.approx(8.0), True, pytest.approx(2 * 8**3 / 2000)),  # the shifted cube shares 8^3 voxels
        (pytest.approx(0.064), False, 0.0),
    ]
    assert rows[0]["lesions"] == 2 and rows[0]["predicted_components"] == 2 and rows[0]["true_positive_components"] == 1
    summary = summarize([{"volume_id": "a", **r} for r in rows], lesions, 2, (1.0, 5.0, 20.0))["1"]
    assert summary["lesion_recall"] == 0.5 and summary["lesion_precision"] == 0.5
    assert summary["lesion_dice"] == pytest.approx((2 * 8**3 / 2000 + 0 + 0) / 3)  # found, missed, false positive
    assert summary["recall_by_size"]["<1 mL"] == {"lesions": 1, "detected": 0, "recall": 0.0}
    assert summary["recall_by_size"]["5-20 mL"] == {"lesions": 1, "detected": 1, "recall": 1.0}
    assert summary["recall_by_size"][">20 mL"]["recall"] is None
    assert size_bin_names((1.0, 5.0)) == ["<1 mL", "1-5 mL", ">5 mL"]


def test_the_summary_separates_cases_with_and_without_the_class() -> None:
    shape = (10, 10, 10)
    lesion = cube(shape, (2, 2, 2), 4).astype(np.int16)
    empty = np.zeros(shape, np.int16)
    rows = []
    for name, pred, truth in (("hit", lesion, lesion), ("fp", lesion, empty), ("tn", empty, empty)):
        rows += [{"volume_id": name, **r} for r in case_metrics(pred, truth, (1, 1, 1), 2, 1.0)[0]]
    summary = summarize(rows, [], 2)["1"]
    assert summary["cases"] == 3 and summary["cases_with_class"] == 1
    assert summary["dice_mean_positive"] == 1.0 and summary["dice_mean"] == pytest.approx(2 / 3)
    assert summary["false_positive_cases"] == 1 and summary["hd95_undefined"] == 1 and summary["hd95_mean"] == 0.0
