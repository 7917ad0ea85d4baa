"""Cohort analysis: per-slide comparisons against direct evaluations, paired tests, effect sizes and flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from pathattn.errors import PathattnError
from pathattn.explain.cohort import (
    annotation_flags,
    cohort_tests,
    compare_slide,
    paired_test,
    rank_biserial,
    spearman,
)
from pathattn.explain.engine import Explainer
from pathattn.explain.model import Scoring
from pathattn.models.trained import TrainedModel
from pathattn.registry import create_model


def test_rank_biserial_known_values():
    assert rank_biserial(np.array([1.0, 2.0, 3.0])) == 1.0
    assert rank_biserial(np.array([-1.0, -2.0])) == -1.0
    # ranks of |d| = 1, 2, 3: (3 - (1 + 2)) / 6 = 0
    assert rank_biserial(np.array([1.0, 2.0, -3.0, 0.0])) == pytest.approx((1 + 2 - 3) / 6)
    assert math.isnan(rank_biserial(np.zeros(3)))


def test_paired_test_matches_scipy_and_handles_degenerate_samples():
    rng = np.random.default_rng(0)
    first, second = rng.normal(1.0, 1.0, 12), rng.normal(0.0, 1.0, 12)
    result = paired_test(first, second)
    expected = stats.wilcoxon(first, second)
    assert result["statistic"] == expected.statistic and result["p_value"] == pytest.approx(expected.pvalue)
    assert result["n"] == 12 and result["median_difference"] == pytest.approx(np.median(first - second))
    same = paired_test(np.ones(5), np.ones(5))
    assert math.isnan(same["p_value"]) and math.isnan(same["rank_biserial"])
    rows = [{"effect_top_attention": a, "effect_top_effect": b, "effect_random": c}
            for a, b, c in zip(first, first + 1, second, strict=True)]  # fmt: skip
    tests = cohort_tests(rows)
    assert [(t["first"], t["second"]) for t in tests] == [
        ("top_effect", "top_attention"), ("top_attention", "random"), ("top_effect", "random")
    ]  # fmt: skip
    assert tests[0]["rank_biserial"] == 1.0 and tests[0]["p_value"] < 0.01


def test_spearman_is_nan_for_constant_input():
    assert math.isnan(spearman(np.ones(5), np.arange(5))[0])
    assert spearman(np.arange(5), np.arange(5) ** 2)[0] == pytest.approx(1.0)


def test_flags():
    flags = annotation_flags(decision_positive=False, region_share=0.05, positive_without_region=False)
    assert flags == {"overlooked_small_tumor": True, "driven_by_non_tumor": False}
    large = annotation_flags(decision_positive=False, region_share=0.5, positive_without_region=False)
    assert not large["overlooked_small_tumor"]
    kept = annotation_flags(decision_positive=True, region_share=0.2, positive_without_region=True)
    assert kept == {"overlooked_small_tumor": False, "driven_by_non_tumor": True}
    false_positive = annotation_flags(decision_positive=True, region_share=0.0, positive_without_region=True)
    assert false_positive["driven_by_non_tumor"]


def test_compare_slide_agrees_with_direct_evaluations():
    torch.manual_seed(0)
    model = TrainedModel(create_model("abmil", in_dim=8, n_classes=2, embed_dim=16, attn_dim=8))
    features = torch.randn(30, 8)
    explainer = Explainer(model, features)
    scoring = Scoring(model, "log_odds", class_index=1)
    attention = explainer.attention()
    result = compare_slide(explainer, scoring, attention, fraction=0.1, n_random=5, seed=1)
    assert result.k == 3 and len(result.random_effects) == 5 and len(result.single_effects) == 30

    def value(kept: np.ndarray) -> float:
        with torch.no_grad():
            return float(scoring.values(model.network(features[kept][None]).logits)[0])

    everything = np.arange(30)
    assert result.baseline == pytest.approx(value(everything), abs=1e-5)
    top = np.argsort(-attention[:, 0])[:3]
    np.testing.assert_array_equal(np.sort(result.top_attention), np.sort(top))
    for name, removed in (("top_attention", top), ("top_effect", result.top_effect)):
        expected = result.baseline - value(np.setdiff1d(everything, removed))
        assert result.effects[name] == pytest.approx(expected, abs=1e-5)
    assert result.single_effects[7] == pytest.approx(result.baseline - value(np.setdiff1d(everything, [7])), abs=1e-5)
    assert result.effects["top_effect"] >= result.effects["top_attention"] - 1e-9  # greedy beats or ties attention
    rho = stats.spearmanr(attention[:, 0], result.single_effects).statistic
    assert result.spearman[0] == pytest.approx(rho)
    with pytest.raises(PathattnError, match="at least 2 patches"):
        compare_slide(Explainer(model, features[:1]), scoring, attention[:1], 0.1)
