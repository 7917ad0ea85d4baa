"""Metrics: agreement with scikit-learn and hand-computed cases, C-index ties, bootstrap, fold summaries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.preprocessing import label_binarize

from pathattn.fitting.bootstrap import (
    BootstrapCI,
    bootstrap_ci,
    bootstrap_metrics,
    resample_indices,
    summarize_folds,
    with_ci,
)
from pathattn.io.jsonfile import to_json_safe
from pathattn.train.metrics import classification_metrics, concordance_counts, harrell_c_index, survival_metrics

NAMES = ["auroc", "auprc", "balanced_accuracy", "macro_f1", "accuracy"]


def brute_force_c_index(time, event, risk) -> float:
    concordant = comparable = 0.0
    for i in range(len(time)):
        for j in range(len(time)):
            if not event[i]:
                continue
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                comparable += 1
                concordant += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return concordant / comparable if comparable else math.nan


def test_binary_hand_computed():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8])  # one positive (0.4) below one negative (0.6)
    m = classification_metrics(y, np.stack([1 - p1, p1], axis=1))
    assert list(m) == NAMES
    assert m["auroc"] == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    assert m["auprc"] == pytest.approx((1 / 1 + 2 / 3) / 2)  # precision at each positive's rank
    assert m["accuracy"] == pytest.approx(0.5)  # preds 0 1 0 1
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(0.5)
    assert all(type(v) is float for v in m.values())
    assert classification_metrics(y, p1) == m  # 1-D probabilities of the positive class


def test_binary_perfect_and_constant():
    y = np.array([0, 1, 0, 1, 1])
    perfect = classification_metrics(y, np.eye(2)[y] * 0.8 + 0.1)
    assert perfect == dict.fromkeys(NAMES, 1.0)
    constant = classification_metrics(y, np.full((5, 2), 0.5))
    assert constant["auroc"] == pytest.approx(0.5)
    assert constant["auprc"] == pytest.approx(0.6)  # prevalence
    assert constant["balanced_accuracy"] == pytest.approx(0.5)  # everything predicted class 0


def test_matches_sklearn_binary_and_three_class():
    rng = np.random.default_rng(0)
    y2 = rng.integers(0, 2, 200)
    p2 = rng.random(200)
    m2 = classification_metrics(y2, p2)
    assert m2["auroc"] == pytest.approx(roc_auc_score(y2, p2))
    assert m2["auprc"] == pytest.approx(average_precision_score(y2, p2))

    y3 = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[y3]
    p3 = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m3 = classification_metrics(y3, p3)
    assert m3["auroc"] == pytest.approx(roc_auc_score(y3, p3, multi_class="ovr", average="macro"))
    assert m3["auprc"] == pytest.approx(average_precision_score(label_binarize(y3, classes=[0, 1, 2]), p3))
    assert m3["macro_f1"] == pytest.approx(f1_score(y3, p3.argmax(1), average="macro"))
    assert 0.7 < m3["auroc"] < 1.0


def test_random_predictions_near_chance():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 3000)
    p = rng.dirichlet(np.ones(3), size=3000)
    m = classification_metrics(y, p)
    assert m["auroc"] == pytest.approx(0.5, abs=0.03)
    assert m["balanced_accuracy"] == pytest.approx(1 / 3, abs=0.03)


def test_single_class_is_nan_not_error():
    m = classification_metrics(np.array([1, 1, 1]), np.array([0.2, 0.7, 0.9]))
    assert math.isnan(m["auroc"]) and math.isnan(m["auprc"])
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_multiclass_absent_class_averages_present_classes():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    m = classification_metrics(y, p)
    expected = np.mean([roc_auc_score(y == c, p[:, c]) for c in (0, 1)])
    assert m["auroc"] == pytest.approx(expected)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        classification_metrics(np.array([0, 2]), np.ones((2, 2)))


def test_c_index_hand_computed():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([1, 1, 0, 1])
    # comparable pairs: (0,1) (0,2) (0,3) (1,2) (1,3); risk ties on (1,3) count 0.5
    risk = np.array([4.0, 2.0, 3.0, 2.0])
    assert concordance_counts(time, event, risk) == (3.5, 5)
    assert harrell_c_index(time, event, risk) == pytest.approx(0.7)
    assert harrell_c_index(time, event, -time) == 1.0
    assert harrell_c_index(time, event, time) == 0.0
    assert survival_metrics(time, event, risk) == {"c_index": pytest.approx(0.7)}


def test_c_index_tied_times():
    time = np.array([2.0, 2.0, 2.0, 5.0])
    event = np.array([1, 1, 0, 0])
    risk = np.array([1.0, 0.0, 0.5, 0.0])
    # events tied with events are not comparable; event vs censored at the same time is
    expected = brute_force_c_index(time, event, risk)
    assert concordance_counts(time, event, risk)[1] == 4
    assert harrell_c_index(time, event, risk) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_c_index_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 60
    time = rng.integers(1, 12, n).astype(float)
    event = rng.integers(0, 2, n)
    risk = rng.integers(0, 6, n).astype(float)
    assert harrell_c_index(time, event, risk) == pytest.approx(brute_force_c_index(time, event, risk))


def test_c_index_chunked_equals_unchunked(monkeypatch):
    import pathattn.train.metrics as metrics

    rng = np.random.default_rng(3)
    time, event, risk = rng.integers(1, 30, 300), rng.integers(0, 2, 300), rng.normal(size=300)
    full = harrell_c_index(time, event, risk)
    monkeypatch.setattr(metrics, "_PAIR_BUDGET", 1000)
    assert harrell_c_index(time, event, risk) == pytest.approx(full)


def test_c_index_undefined_without_events():
    assert math.isnan(harrell_c_index([1.0, 2.0], [0, 0], [0.1, 0.2]))


def _toy_binary(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 0.5 + 0.15 * (2 * y - 1) + rng.normal(0, 0.3, n)


def _auroc(y, p):
    return classification_metrics(y, p)["auroc"]


def test_bootstrap_contains_estimate_and_is_deterministic():
    y, p = _toy_binary(80, 0)
    ci = bootstrap_ci(roc_auc_score, y, p, n_boot=200, seed=7)
    est, low, high = ci
    assert isinstance(ci, BootstrapCI) and ci.n_boot == 200 and ci.n_skipped == 0
    assert est == pytest.approx(_auroc(y, p))
    assert low <= est <= high and low < high
    assert tuple(bootstrap_ci(roc_auc_score, y, p, n_boot=200, seed=7)) == tuple(ci)
    assert tuple(bootstrap_ci(roc_auc_score, y, p, n_boot=200, seed=8)) != tuple(ci)


def test_bootstrap_narrows_with_more_data():
    small = bootstrap_ci(roc_auc_score, *_toy_binary(40, 1), n_boot=200)
    large = bootstrap_ci(roc_auc_score, *_toy_binary(800, 1), n_boot=200)
    assert large.high - large.low < 0.5 * (small.high - small.low)


def test_bootstrap_skips_undefined_resamples():
    y = np.array([0] * 9 + [1])
    p = np.linspace(0, 1, 10)
    ci = bootstrap_ci(_auroc, y, p, n_boot=100, seed=0)  # nan when a resample lacks the positive
    assert 0 < ci.n_skipped < 100
    raising = bootstrap_ci(roc_auc_score, y, p, n_boot=100, seed=0)  # sklearn raises ValueError instead
    assert raising.n_skipped == ci.n_skipped
    assert bootstrap_ci(roc_auc_score, y, p, n_boot=100, seed=0, stratify=y).n_skipped == 0


def test_stratified_resamples_keep_group_sizes():
    groups = np.array([0, 0, 0, 1, 1, 2])
    index = resample_indices(6, 50, seed=0, stratify=groups)
    assert index.shape == (50, 6)
    assert all(np.array_equal(np.bincount(groups[row], minlength=3), [3, 2, 1]) for row in index)


def test_bootstrap_metrics_flattens_to_json():
    y, p = _toy_binary(60, 2)
    cis = bootstrap_metrics(classification_metrics, y, p, n_boot=50, seed=0, stratify=y)
    assert list(cis) == NAMES
    flat = with_ci(cis)
    assert flat["auroc"] == cis["auroc"].estimate and flat["auroc_ci_low"] <= flat["auroc"] <= flat["auroc_ci_high"]
    json.dumps(flat, allow_nan=False)


def test_summarize_folds_mean_std_and_nan():
    folds = [{"auroc": 0.8, "accuracy": 0.7}, {"auroc": 0.9, "accuracy": float("nan")}, {"auroc": 1.0}]
    summary = summarize_folds(folds)
    assert summary["auroc"]["mean"] == pytest.approx(0.9)
    assert summary["auroc"]["std"] == pytest.approx(0.1)  # ddof=1
    assert summary["auroc"]["n"] == 3
    assert summary["accuracy"] == {"mean": 0.7, "std": summary["accuracy"]["std"], "n": 1}
    assert math.isnan(summary["accuracy"]["std"])
    assert json.loads(json.dumps(to_json_safe(summary), allow_nan=False))["accuracy"]["std"] is None


def test_to_json_safe_numpy():
    assert to_json_safe({"a": np.float32(0.5), "b": np.int64(3), "c": [np.nan, np.bool_(True)]}) == {
        "a": 0.5,
        "b": 3,
        "c": [None, True],
    }


def test_binary_metrics_at_an_operating_point() -> None:
    from pathattn.train.metrics import binary_metrics, youden_threshold

    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.6, 0.5, 0.9])
    at_half = binary_metrics(y, p, 0.5)
    assert at_half["sensitivity"] == 1.0 and at_half["specificity"] == pytest.approx(2 / 3)
    assert at_half["accuracy"] == pytest.approx(4 / 5) and at_half["auroc"] == pytest.approx(5 / 6)
    assert binary_metrics(y, p, calls=np.array([0, 0, 0, 0, 1]))["sensitivity"] == 0.5
    assert youden_threshold(y, p) == 0.5  # J = 1 + 2/3 - 1 at 0.5, the best on the ROC curve
    assert youden_threshold(np.zeros(3), p[:3]) == 0.5
    assert np.isnan(binary_metrics(np.ones(2), np.array([0.2, 0.8]))["auroc"])


def test_cluster_bootstrap_resamples_whole_patients() -> None:
    from pathattn.fitting.bootstrap import bootstrap_metrics, cluster_resamples

    clusters = np.array(["a", "a", "a", "b", "c", "c"])
    for draw in cluster_resamples(clusters, 50, seed=1):
        picked = clusters[draw]
        for name in set(picked):  # every drawn patient comes with all its rows, as often as it was drawn
            assert (picked == name).sum() % (clusters == name).sum() == 0
    values = np.arange(6.0)
    rows = bootstrap_metrics(lambda v: {"mean": float(v.mean())}, values, n_boot=200, clusters=clusters)["mean"]
    naive = bootstrap_metrics(lambda v: {"mean": float(v.mean())}, values, n_boot=200)["mean"]
    assert rows.estimate == naive.estimate == 2.5 and rows.n_boot == 200
