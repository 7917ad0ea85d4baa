"""Cohort-level evidence: attention against counterfactual effect, slide by slide and across the cohort.

Per slide (:func:`compare_slide`), with k = ``ceil(q * N)`` patches (at most N - 1):

* the **effect** of removing a set = objective of the slide minus objective without the set (positive: the
  set supported the class);
* the k highest-attention patches, the k patches HIPPO's greedy search removes first (``minimize``: the
  set it finds is the one that lowers the objective most, greedily), and ``n_random`` random sets of k;
* the single-patch effect of every patch (leave-one-out) and its Spearman correlation with attention.

Across slides (:func:`cohort_tests`): paired Wilcoxon signed-rank tests of the effects (HIPPO against
attention, attention against random, HIPPO against random), each with the median paired difference and the
matched-pairs rank-biserial correlation ``r = (R+ - R-) / (R+ + R-)`` as effect size (1: the first set has
the larger effect on every slide).

With annotations (:func:`annotation_flags`): positive slides whose small tumor the model misses, and
slides whose positive decision does not rest on the tumor.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pathattn.errors import PathattnError
from pathattn.explain.engine import Explainer
from pathattn.explain.model import Scoring
from pathattn.explain.regions import ranking_scores, top_ranked
from pathattn.explain.search import SearchResult

COMPARISONS = (("top_effect", "top_attention"), ("top_attention", "random"), ("top_effect", "random"))


@dataclass(frozen=True)
class SlideComparison:
    """Attention against counterfactual effect on one slide.

    Args:
        k: the size of the compared sets.
        baseline: the slide's objective.
        top_attention: (k,) the highest-attention patches.
        top_effect: (k,) the patches HIPPO's greedy search removed, in order.
        effects: effect of removing ``top_attention``, ``top_effect``, and the mean over the random sets
            (``random``).
        random_effects: (n_random,) effect of each random set.
        single_effects: (N,) effect of removing each patch alone.
        spearman: Spearman's rho between attention and single-patch effect (nan: undefined) and its p-value.
        search: the greedy search behind ``top_effect``.
    """

    k: int
    baseline: float
    top_attention: np.ndarray
    top_effect: np.ndarray
    effects: dict[str, float]
    random_effects: np.ndarray
    single_effects: np.ndarray
    spearman: tuple[float, float]
    search: SearchResult


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value; (nan, nan) when either side is constant or too short."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan, math.nan
    result = stats.spearmanr(x[keep], y[keep])
    return float(result.statistic), float(result.pvalue)


def compare_slide(
    explainer: Explainer, scoring: Scoring, attention: np.ndarray, fraction: float, n_random: int = 20, seed: int = 0
) -> SlideComparison:
    """Top-attention, top-effect and random removals of the same size on one slide (module docstring).

    Args:
        explainer: the slide.
        scoring: objective and class (the predicted class, usually).
        attention: (N, K) raw attention of the network on the slide.
        fraction: q, the share of patches in each set (k = ceil(q N), 1 <= k <= N - 1).
        n_random: random sets drawn.
        seed: seed of the random sets.

    Raises:
        PathattnError: a slide of one patch (nothing can be removed and compared).
    """
    n = explainer.n_patches
    if n < 2:
        raise PathattnError("comparing removals needs at least 2 patches; the slide has 1")
    k = min(max(1, math.ceil(fraction * n)), n - 1)
    baseline = float(scoring.values(explainer.logits()[None])[0])
    top_attention = top_ranked(attention, k=k)
    search = explainer.greedy_remove(scoring, optimizer="minimize", rounds=k)
    _, random_logits = explainer.random_removals(k, n_random, seed)
    random_effects = baseline - scoring.values(random_logits).numpy()
    single = baseline - scoring.values(explainer.leave_one_out()).numpy()
    effects = {
        "top_attention": explainer.remove(top_attention).effect(scoring),
        "top_effect": baseline - float(search.values[-1]),
        "random": float(random_effects.mean()),
    }
    rho = spearman(ranking_scores(attention), single)
    return SlideComparison(k, baseline, top_attention, search.order, effects, random_effects, single, rho, search)


def rank_biserial(differences: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of paired differences (zeros dropped; nan when all are zero)."""
    d = np.asarray(differences, np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return math.nan
    ranks = stats.rankdata(np.abs(d))
    return float((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else math.nan


def paired_test(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """Wilcoxon signed-rank test of paired samples, two-sided, with effect sizes.

    Returns:
        ``n``, ``median_first``, ``median_second``, ``median_difference``, ``statistic``, ``p_value`` (nan
        with fewer than 2 non-zero differences) and ``rank_biserial``.
    """
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    keep = np.isfinite(first) & np.isfinite(second)
    first, second = first[keep], second[keep]
    difference = first - second
    statistic = p_value = math.nan
    if np.count_nonzero(difference) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy's note on small samples
            result = stats.wilcoxon(first, second, zero_method="wilcox", alternative="two-sided")
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return {
        "n": int(len(first)),
        "median_first": _median(first),
        "median_second": _median(second),
        "median_difference": _median(difference),
        "statistic": statistic,
        "p_value": p_value,
        "rank_biserial": rank_biserial(difference),
    }


def cohort_tests(rows: Sequence[Mapping[str, float]]) -> list[dict[str, float | str]]:
    """The paired tests of :data:`COMPARISONS` across slides.

    Args:
        rows: one per slide with ``effect_top_attention``, ``effect_top_effect`` and ``effect_random``.

    Returns:
        One dict per comparison: ``first``, ``second`` and the fields of :func:`paired_test`.
    """
    tests = []
    for first, second in COMPARISONS:
        x = np.array([float(row[f"effect_{first}"]) for row in rows])
        y = np.array([float(row[f"effect_{second}"]) for row in rows])
        tests.append({"first": first, "second": second, **paired_test(x, y)})
    return tests


def correlation_summary(rhos: Sequence[float]) -> dict[str, float]:
    """Spread of the per-slide attention-effect correlations: n, mean, median, share positive."""
    values = np.array([r for r in rhos if r is not None and math.isfinite(r)], np.float64)
    if len(values) == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "share_positive": math.nan}
    return {"n": int(len(values)), "mean": float(values.mean()), "median": float(np.median(values)),
            "share_positive": float((values > 0).mean())}  # fmt: skip


def annotation_flags(
    *,
    decision_positive: bool,
    region_share: float,
    positive_without_region: bool,
    small_tumor: float = 0.1,
) -> dict[str, bool]:
    """Flags of a slide with tumor annotations.

    Args:
        decision_positive: the model decides for the positive class on the whole slide.
        region_share: the share of the slide's patches in the annotated tumor (0: no tumor).
        positive_without_region: the decision stays positive once every tumor patch is removed (for a
            slide without tumor: the decision itself).
        small_tumor: the largest share of patches a tumor may cover to count as small.

    Returns:
        ``overlooked_small_tumor``: a tumor of at most ``small_tumor`` of the patches and a negative
        decision; ``driven_by_non_tumor``: a positive decision that survives removing all tumor patches
        (or a positive decision on a slide without tumor).
    """
    has_tumor = region_share > 0
    return {
        "overlooked_small_tumor": bool(has_tumor and region_share <= small_tumor and not decision_positive),
        "driven_by_non_tumor": bool(decision_positive and positive_without_region),
    }
