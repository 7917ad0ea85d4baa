"""Kaplan-Meier estimator and log-rank test against hand-computed cases."""

import math

import numpy as np
import pytest
from scipy.stats import chi2

from pathattn.report.stats import kaplan_meier, logrank_test


def test_kaplan_meier_by_hand():
    # at t=1: 6 at risk, 1 event; t=2: 5 at risk (one censored at 2 is still at risk), 1 event;
    # t=3: 3 at risk, 1 event; t=4 censored; t=5: 1 at risk, 1 event
    times, survival = kaplan_meier(np.array([1, 2, 2, 3, 4, 5]), np.array([1, 1, 0, 1, 0, 1]))
    assert times.tolist() == [0, 1, 2, 3, 5]
    assert np.allclose(survival, [1, 5 / 6, 5 / 6 * 4 / 5, 5 / 6 * 4 / 5 * 2 / 3, 0])


def test_kaplan_meier_ties_and_no_event():
    times, survival = kaplan_meier(np.array([2.0, 2.0, 2.0, 7.0]), np.array([1, 1, 0, 0]))
    assert times.tolist() == [0, 2] and np.allclose(survival, [1, 0.5])
    times, survival = kaplan_meier(np.array([3.0, 4.0]), np.array([0, 0]))
    assert times.tolist() == [0] and survival.tolist() == [1]


def test_logrank_by_hand():
    # group 1 dies at 1 and 3, group 0 at 2 and 4. Per event time (n, n1, d, d1):
    # t=1 (4, 2, 1, 1): E=1/2, V=1/4; t=2 (3, 1, 1, 0): E=1/3, V=2/9; t=3 (2, 1, 1, 1): E=1/2, V=1/4;
    # t=4 (1, 0, 1, 0): E=0, V=0. O - E = 2 - 4/3 = 2/3, V = 13/18, statistic = (4/9) / (13/18) = 8/13.
    statistic, p = logrank_test(np.array([1, 3, 2, 4]), np.array([1, 1, 1, 1]), np.array([1, 1, 0, 0], bool))
    assert statistic == pytest.approx(8 / 13)
    assert p == pytest.approx(chi2.sf(8 / 13, 1)) and 0 < p < 1


def test_logrank_separated_equal_and_undefined():
    rng = np.random.default_rng(0)
    time = np.concatenate([rng.uniform(1, 5, 40), rng.uniform(20, 30, 40)])
    group = np.arange(80) < 40
    _, p = logrank_test(time, np.ones(80, int), group)
    assert p < 1e-6
    same = np.array([1.0, 1.0, 2.0, 2.0])
    assert logrank_test(same, np.ones(4, int), np.array([1, 0, 1, 0], bool)) == (0.0, 1.0)
    statistic, p = logrank_test(same, np.ones(4, int), np.ones(4, bool))  # one group only
    assert math.isnan(statistic) and math.isnan(p)
    with pytest.raises(ValueError, match="event must hold"):
        logrank_test(same, np.array([0, 1, 2, 1]), group[:4])
