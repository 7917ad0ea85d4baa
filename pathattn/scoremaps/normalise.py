"""Per-slide normalisation of patch scores (attention, effects, probabilities) to [0, 1]."""

from __future__ import annotations

from typing import Literal

import numpy as np

Normalisation = Literal["percentile", "minmax", "softmax", "raw"]
NORMALISATIONS: tuple[Normalisation, ...] = ("percentile", "minmax", "softmax", "raw")


def rank_percentile(x: np.ndarray) -> np.ndarray:
    """Average rank (ties averaged, 1-based) divided by the count: (n,) in (0, 1]."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    return average_rank[inverse.reshape(-1)] / len(x)


def _normalise_column(scores: np.ndarray, method: Normalisation) -> np.ndarray:
    out = np.full(scores.shape, np.nan)
    finite = np.isfinite(scores)
    x = scores[finite].astype(np.float64)
    if len(x) == 0:
        return out
    if method == "percentile":
        out[finite] = rank_percentile(x)
    elif method == "minmax":
        span = x.max() - x.min()
        out[finite] = (x - x.min()) / span if span > 0 else 0.5
    elif method == "softmax":
        out[finite] = np.exp(x - x.max())  # softmax weights divided by the largest weight
    else:
        out[finite] = np.clip(x, 0.0, 1.0)
    return out


def normalise(scores: np.ndarray, method: Normalisation = "percentile") -> np.ndarray:
    """Scores mapped to [0, 1], per column, among one slide's patches.

    Methods:
        ``percentile``: the rank-based percentile of each patch (average rank of ties divided by the number of
        patches, so the top patch is 1), as CLAM and TRIDENT draw heatmaps; ``minmax``: linear from the
        lowest (0) to the highest (1) score (0.5 when all are equal); ``softmax``: the pooling weights
        divided by the largest weight (the top patch is 1); ``raw``: the scores clipped to [0, 1] (for scores
        already in that range).

    Args:
        scores: (N,) or (N, K) scores of K heads; non-finite values are masked patches.
        method: how to normalise.

    Returns:
        values: float64 of the shape of ``scores``, in [0, 1]; NaN where the score is not finite.

    Raises:
        ValueError: an unknown method.
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {method!r}; use one of {', '.join(NORMALISATIONS)}")
    scores = np.asarray(scores)
    if scores.ndim == 1:
        return _normalise_column(scores, method)
    return np.stack([_normalise_column(scores[:, k], method) for k in range(scores.shape[1])], axis=1)
