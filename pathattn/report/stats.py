"""Survival statistics of the report: the Kaplan-Meier estimator and the two-group log-rank test.

References:
    Kaplan & Meier (1958), "Nonparametric estimation from incomplete observations", JASA 53:457-481.
    Mantel (1966), "Evaluation of survival data and two new rank order statistics arising in its
    consideration", Cancer Chemotherapy Reports 50:163-170 (the log-rank test).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2


def _arrays(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1)
    if t.shape != e.shape:
        raise ValueError(f"time and event need one value per sample; got {t.shape} and {e.shape}")
    if not np.all(np.isin(e, (0, 1))):
        raise ValueError(f"event must hold 0 (censored) or 1 (event); got {np.unique(e).tolist()}")
    return t, e.astype(bool)


def _risk_table(t: np.ndarray, e: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples at risk (time >= τ) and events (time == τ) at each τ of ``times``: two (M,) float arrays."""
    order = np.sort(t)
    at_risk = len(t) - np.searchsorted(order, times, side="left")
    event_order = np.sort(t[e])
    deaths = np.searchsorted(event_order, times, side="right") - np.searchsorted(event_order, times, side="left")
    return at_risk.astype(np.float64), deaths.astype(np.float64)


def kaplan_meier(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan-Meier estimate of the survival function.

    S(t) = Π over event times t_i <= t of (1 - d_i / n_i), with d_i events at t_i and n_i samples still at
    risk just before t_i (censored at t_i counts as at risk at t_i).

    Args:
        time: event or censoring time, shape (N,).
        event: 1 = event observed, 0 = censored, shape (N,).

    Returns:
        times: (M + 1,) 0 followed by the M distinct event times, ascending; survival: (M + 1,) S at those
        times (1 at time 0), constant until the next time (a right-continuous step function).
    """
    t, e = _arrays(time, event)
    event_times = np.unique(t[e])
    at_risk, deaths = _risk_table(t, e, event_times)
    survival = np.cumprod(1.0 - deaths / at_risk)
    return np.concatenate([[0.0], event_times]), np.concatenate([[1.0], survival])


def logrank_test(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """The log-rank test of equal survival in two groups.

    At each distinct event time, with n samples at risk (n_1 of group 1) and d events (d_1 in group 1),
    the expected events of group 1 are E = d n_1 / n and the hypergeometric variance is
    V = d (n_1 / n) (1 - n_1 / n) (n - d) / (n - 1). The statistic (Σ d_1 - Σ E)² / Σ V follows a
    chi-squared distribution with one degree of freedom under equal survival.

    Args:
        time: event or censoring time, shape (N,).
        event: 1 = event observed, 0 = censored, shape (N,).
        group: True for group 1, False for group 0, shape (N,).

    Returns:
        ``(statistic, p_value)``; both ``nan`` when the variance is 0 (one group empty, or no event).
    """
    t, e = _arrays(time, event)
    g = np.asarray(group, bool).reshape(-1)
    if g.shape != t.shape:
        raise ValueError(f"group needs one value per sample; got {g.shape} for {t.shape[0]} samples")
    event_times = np.unique(t[e])
    n, d = _risk_table(t, e, event_times)
    n1, d1 = _risk_table(t[g], e[g], event_times)
    expected = d * n1 / n
    variance = np.divide(d * (n1 / n) * (1 - n1 / n) * (n - d), n - 1, out=np.zeros_like(n), where=n > 1)
    if variance.sum() <= 0:
        return math.nan, math.nan
    statistic = float((d1.sum() - expected.sum()) ** 2 / variance.sum())
    return statistic, float(chi2.sf(statistic, df=1))
