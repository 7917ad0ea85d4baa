"""Bootstrap intervals and fold summaries of the ``train`` stage's metrics (:mod:`pathattn.train.metrics`).

Percentile intervals of any metric function over resamples of rows, of rows within strata, or of whole clusters
(a patient's slices together); ``with_ci`` flattens them into ``metrics.json`` rows and ``summarize_folds``
gives the mean and standard deviation of each metric over the folds.

References:
    Efron & Tibshirani (1993), "An Introduction to the Bootstrap", ch. 13 (percentile intervals).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np


class BootstrapCI(tuple):
    """``(estimate, low, high)`` of a percentile bootstrap, with the resample counts as attributes.

    Unpacks as a 3-tuple; ``n_boot`` is the number of resamples drawn and ``n_skipped`` the number
    where the metric was undefined (``nan``) and left out of the interval.
    """

    n_boot: int
    n_skipped: int

    def __new__(cls, estimate: float, low: float, high: float, n_boot: int, n_skipped: int) -> BootstrapCI:
        self = super().__new__(cls, (float(estimate), float(low), float(high)))
        self.n_boot, self.n_skipped = int(n_boot), int(n_skipped)
        return self

    @property
    def estimate(self) -> float:
        """The metric on the full data."""
        return self[0]

    @property
    def low(self) -> float:
        """Lower bound of the interval."""
        return self[1]

    @property
    def high(self) -> float:
        """Upper bound of the interval."""
        return self[2]

    def __repr__(self) -> str:
        interval = f"{self[0]:.4g}, [{self[1]:.4g}, {self[2]:.4g}]"
        return f"BootstrapCI({interval}, n_boot={self.n_boot}, skipped={self.n_skipped})"


def resample_indices(n: int, n_boot: int, seed: int, stratify: np.ndarray | None = None) -> np.ndarray:
    """Row indices of ``n_boot`` bootstrap resamples, drawn with replacement.

    Args:
        n: number of rows.
        n_boot: number of resamples.
        seed: seed of ``numpy.random.default_rng``.
        stratify: optional group of each row, shape (N,); each group is resampled within itself, so
            every resample keeps the group sizes (e.g. the class counts).

    Returns:
        Indices, shape (n_boot, N).
    """
    rng = np.random.default_rng(seed)
    if stratify is None:
        return rng.integers(0, n, size=(n_boot, n))
    groups = np.asarray(stratify).reshape(-1)
    if groups.size != n:
        raise ValueError(f"stratify needs one value per row ({n}); got {groups.size}")
    parts = []
    for value in np.unique(groups):
        members = np.flatnonzero(groups == value)
        parts.append(members[rng.integers(0, members.size, size=(n_boot, members.size))])
    return np.concatenate(parts, axis=1)


def cluster_resamples(clusters: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Row indices of ``n_boot`` cluster-bootstrap resamples: clusters drawn with replacement, all their rows kept.

    Args:
        clusters: (N,) the cluster of each row (e.g. the patient of each slice).
        n_boot: number of resamples.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``n_boot`` index arrays (their lengths vary with the clusters drawn).
    """
    labels, members = np.unique(np.asarray(clusters).reshape(-1), return_inverse=True)
    rows = [np.flatnonzero(members == c) for c in range(labels.size)]
    rng = np.random.default_rng(seed)
    return [np.concatenate([rows[c] for c in rng.integers(0, labels.size, labels.size)]) for _ in range(n_boot)]


def bootstrap_metrics(
    metrics_fn: Callable[..., Mapping[str, float]],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    stratify: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
) -> dict[str, BootstrapCI]:
    """Percentile bootstrap intervals of several metrics computed on the same resamples.

    Rows (the first axis of every array) are resampled with replacement; the estimate is the metric
    on the full data and the interval the ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled
    values. A resample where a metric is ``nan`` (or where ``metrics_fn`` raises ``ValueError``) is
    skipped for that metric and counted in ``n_skipped``; with every resample skipped the bounds are
    ``nan``.

    Args:
        metrics_fn: ``metrics_fn(*arrays) -> {name: value}``, e.g. :func:`classification_metrics`.
        *arrays: the inputs of ``metrics_fn``, each with N rows.
        n_boot: number of resamples.
        seed: random seed; the same seed gives the same intervals.
        alpha: 1 - confidence level (0.05 for 95 % intervals).
        stratify: optional group of each row, shape (N,), resampled within groups (pass ``y_true``
            to keep the class counts of every resample).
        clusters: optional cluster of each row, shape (N,): whole clusters are resampled
            (:func:`cluster_resamples`; e.g. patients, whose slices are not independent). Not with ``stratify``.

    Returns:
        ``{name: BootstrapCI}`` for every metric of ``metrics_fn``.
    """
    if not arrays:
        raise ValueError("bootstrap needs at least one array")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
    data = [np.asarray(a) for a in arrays]
    n = data[0].shape[0]
    if any(a.shape[0] != n for a in data):
        raise ValueError(f"all arrays need the same number of rows; got {[a.shape[0] for a in data]}")
    estimate = {name: float(value) for name, value in metrics_fn(*data).items()}
    values: dict[str, list[float]] = {name: [] for name in estimate}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined resamples are counted, not warned about one by one
        draws = (
            resample_indices(n, n_boot, seed, stratify)
            if clusters is None
            else cluster_resamples(clusters, n_boot, seed)
        )
        for index in draws:
            try:
                result = metrics_fn(*(a[index] for a in data))
            except ValueError:
                continue
            for name in values:
                value = float(result.get(name, math.nan))
                if math.isfinite(value):
                    values[name].append(value)
    out = {}
    for name, sample in values.items():
        low, high = np.quantile(sample, [alpha / 2, 1 - alpha / 2]) if sample else (math.nan, math.nan)
        out[name] = BootstrapCI(estimate[name], low, high, n_boot, n_boot - len(sample))
    return out


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    stratify: np.ndarray | None = None,
) -> BootstrapCI:
    """Percentile bootstrap interval of one metric: ``(estimate, low, high)``.

    Same resampling and skipping rules as :func:`bootstrap_metrics`.

    Args:
        metric_fn: ``metric_fn(*arrays) -> float``, e.g. :func:`harrell_c_index`.
        *arrays: the inputs of ``metric_fn``, each with N rows.
        n_boot: number of resamples.
        seed: random seed.
        alpha: 1 - confidence level.
        stratify: optional group of each row, shape (N,), resampled within groups.

    Returns:
        A :class:`BootstrapCI`; ``.n_skipped`` counts the resamples where the metric was undefined.

    Example:
        >>> est, low, high = bootstrap_ci(harrell_c_index, time, event, risk, n_boot=1000)
    """
    result = bootstrap_metrics(
        lambda *a: {"metric": metric_fn(*a)}, *arrays, n_boot=n_boot, seed=seed, alpha=alpha, stratify=stratify
    )
    return result["metric"]


def with_ci(cis: Mapping[str, BootstrapCI]) -> dict[str, float]:
    """Flatten intervals into ``{name, name_ci_low, name_ci_high}`` floats (one metrics.json row).

    Args:
        cis: the output of :func:`bootstrap_metrics`.
    """
    flat: dict[str, float] = {}
    for name, ci in cis.items():
        flat.update({name: ci.estimate, f"{name}_ci_low": ci.low, f"{name}_ci_high": ci.high})
    return flat


def summarize_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every metric across folds.

    The standard deviation is the sample one (``ddof=1``), as usual for K-fold results; it is ``nan``
    with fewer than two values. Folds where a metric is ``nan`` or missing are left out of that
    metric, and ``n`` says how many folds were used.

    Args:
        per_fold: one ``{name: value}`` per fold.

    Returns:
        ``{name: {"mean", "std", "n"}}`` in the order the names first appear.
    """
    names = list(dict.fromkeys(name for fold in per_fold for name in fold))
    summary = {}
    for name in names:
        values = [float(fold[name]) for fold in per_fold if name in fold and fold[name] is not None]
        values = [v for v in values if math.isfinite(v)]
        mean = float(np.mean(values)) if values else math.nan
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        summary[name] = {"mean": mean, "std": std, "n": len(values)}
    return summary
