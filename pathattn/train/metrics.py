"""Evaluation metrics of the ``train`` stage: classification, the binary operating point, survival.

Pure functions on numpy arrays that return plain Python floats, ready for ``RUN/metrics.json``.
Metric names are stable strings: ``auroc``, ``auprc``, ``balanced_accuracy``, ``macro_f1``,
``accuracy`` and ``c_index``. A metric that is undefined on the data it is given (AUROC when
``y_true`` holds one class, a C-index without a comparable pair) is ``nan``, never an exception, so
that :func:`pathattn.fitting.bootstrap.bootstrap_metrics` can skip such resamples and count them
(``pathattn.io.jsonfile`` writes ``nan`` as ``null``).

References:
    Harrell, Lee & Mark (1996), "Multivariable prognostic models", Statistics in Medicine 15:361-387
    (the concordance index).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

CLASSIFICATION_METRICS = ("auroc", "auprc", "balanced_accuracy", "macro_f1", "accuracy")
SURVIVAL_METRICS = ("c_index",)
_PAIR_BUDGET = 4_000_000  # comparable-pair matrix entries per chunk of the C-index


def _as_probs(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:  # binary: probability of the positive class
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[1] < 2:
        raise ValueError(f"probs must have shape (N, C>=2) with N={y.shape[0]}; got {p.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("y_true must hold integer class indices")
        y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"y_true must lie in [0, {p.shape[1]}); got values {np.unique(y).tolist()}")
    return y, p


def _one_vs_rest(score: Callable[..., float], y: np.ndarray, p: np.ndarray) -> float:
    """Macro average of ``score(y == c, p[:, c])`` over the classes c present in ``y`` (nan if < 2)."""
    present = np.unique(y)
    if present.size < 2:
        return math.nan
    if p.shape[1] == 2:
        return float(score(y == 1, p[:, 1]))
    return float(np.mean([score(y == c, p[:, c]) for c in present]))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Slide- or patient-level classification metrics with explicit averaging.

    * ``auroc``: binary (C = 2): area under the ROC curve of the positive class (column 1).
      Multi-class: macro average of the one-vs-rest AUROCs (class c against the rest, scored by
      ``probs[:, c]``) over the classes present in ``y_true``; with every class present this equals
      ``roc_auc_score(y, probs, multi_class="ovr", average="macro")``. ``nan`` if ``y_true`` holds a
      single class.
    * ``auprc``: average precision (step-wise area under the precision-recall curve), of the positive
      class for C = 2, else the macro average of the one-vs-rest APs over the classes present in
      ``y_true``. ``nan`` if ``y_true`` holds a single class.
    * ``balanced_accuracy``: mean recall over the classes present in ``y_true``.
    * ``macro_f1``: unweighted mean of the per-class F1 over the classes present in ``y_true`` or in
      the predictions (a class predicted but absent, or present but never predicted, scores 0).
    * ``accuracy``: fraction of correct predictions.

    Predictions are ``argmax(probs, axis=1)`` (ties go to the lowest class index).

    Args:
        y_true: class indices, shape (N,), in [0, C).
        probs: class probabilities, shape (N, C); shape (N,) is read as P(class 1) of a binary task.

    Returns:
        ``{"auroc", "auprc", "balanced_accuracy", "macro_f1", "accuracy"}`` as Python floats.

    Raises:
        ValueError: shapes disagree or labels are outside [0, C).
    """
    y, p = _as_probs(y_true, probs)
    if y.size == 0:
        return dict.fromkeys(CLASSIFICATION_METRICS, math.nan)
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        # balanced accuracy warns when a predicted class is absent from y_true; that is the documented case
        warnings.simplefilter("ignore", UserWarning)
        return {
            "auroc": _one_vs_rest(roc_auc_score, y, p),
            "auprc": _one_vs_rest(average_precision_score, y, p),
            "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y, pred)),
        }


def binary_metrics(
    y_true: np.ndarray, positive: np.ndarray, threshold: float = 0.5, calls: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics of a binary classifier at an operating point (the image classifiers' slice-level report).

    Args:
        y_true: (N,) 0 or 1.
        positive: (N,) probability of class 1.
        threshold: an image is called positive when ``positive >= threshold``.
        calls: (N,) 0 or 1 calls made elsewhere (e.g. each fold at its own threshold), used instead.

    Returns:
        ``auroc``, ``auprc`` (threshold-free; ``nan`` on one class), and at the threshold ``accuracy``,
        ``sensitivity`` (recall of the positive images: the PET/CT paper's sensitivity on positive slices),
        ``specificity`` and ``balanced_accuracy`` (``nan`` where a class is absent).
    """
    y = np.asarray(y_true).reshape(-1).astype(np.int64)
    p = np.asarray(positive, np.float64).reshape(-1)
    called = p >= threshold if calls is None else np.asarray(calls).reshape(-1).astype(bool)
    sensitivity = float(called[y == 1].mean()) if (y == 1).any() else math.nan
    specificity = float((~called[y == 0]).mean()) if (y == 0).any() else math.nan
    ranked = np.unique(y).size == 2
    return {
        "auroc": float(roc_auc_score(y, p)) if ranked else math.nan,
        "auprc": float(average_precision_score(y, p)) if ranked else math.nan,
        "accuracy": float((called == (y == 1)).mean()) if y.size else math.nan,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": (sensitivity + specificity) / 2,
    }


def youden_threshold(y_true: np.ndarray, positive: np.ndarray) -> float:
    """The probability threshold that maximises Youden's J (sensitivity + specificity - 1); 0.5 on one class.

    Among equally good thresholds the ROC curve's first (the highest) is taken.
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true).reshape(-1)
    if np.unique(y).size < 2:
        return 0.5
    fpr, tpr, thresholds = roc_curve(y, np.asarray(positive, np.float64).reshape(-1))
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def _survival_arrays(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, ...]:
    t = np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1)
    r = np.asarray(risk, dtype=np.float64).reshape(-1)
    if not t.shape == e.shape == r.shape:
        raise ValueError(f"time, event and risk need one value per sample; got {t.shape}, {e.shape}, {r.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
        raise ValueError("time and risk must be finite")
    if not np.all(np.isin(e, (0, 1))):
        raise ValueError(f"event must hold 0 (censored) or 1 (event); got {np.unique(e).tolist()}")
    return t, e.astype(bool), r


def concordance_counts(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, int]:
    """Concordant pairs (tied risks count 0.5) and comparable pairs of Harrell's C-index.

    A pair (i, j) is comparable when i has an event and ``time[i] < time[j]``, or when the times are
    equal, i has an event and j is censored (j is taken to outlive i, as in lifelines and
    scikit-survival). Two events at the same time are not comparable. A comparable pair is concordant
    when ``risk[i] > risk[j]`` and counts 0.5 when the risks are equal.

    Vectorised in numpy: the comparability matrix is built for chunks of events, O(N²) time and
    O(N) extra memory per chunk row.

    Args:
        time: event or censoring time, shape (N,).
        event: 1 = event observed, 0 = censored, shape (N,).
        risk: predicted risk, shape (N,); higher risk = shorter expected survival.

    Returns:
        ``(concordant, comparable)``.
    """
    t, e, r = _survival_arrays(time, event, risk)
    events = np.flatnonzero(e)
    chunk = max(1, _PAIR_BUDGET // max(1, t.size))
    concordant, comparable = 0.0, 0
    for start in range(0, events.size, chunk):
        i = events[start : start + chunk]
        ti, ri = t[i, None], r[i, None]
        usable = (t[None, :] > ti) | ((t[None, :] == ti) & ~e[None, :])
        concordant += np.count_nonzero(usable & (ri > r[None, :])) + 0.5 * np.count_nonzero(usable & (ri == r[None, :]))
        comparable += int(np.count_nonzero(usable))
    return float(concordant), comparable


def harrell_c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's concordance index of a risk score (Harrell et al. 1996).

    The fraction of comparable pairs whose order of risk agrees with their order of survival; tied
    risks count 0.5 (see :func:`concordance_counts` for which pairs are comparable). 0.5 is random,
    1.0 perfect.

    Args:
        time: event or censoring time, shape (N,).
        event: 1 = event observed, 0 = censored, shape (N,).
        risk: predicted risk, shape (N,); higher risk = shorter expected survival.

    Returns:
        The C-index, ``nan`` when no pair is comparable (e.g. no event).
    """
    concordant, comparable = concordance_counts(time, event, risk)
    return concordant / comparable if comparable else math.nan


def survival_metrics(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """Survival metrics of a risk score: ``{"c_index"}`` (Harrell's, see :func:`harrell_c_index`).

    Args:
        time: event or censoring time, shape (N,).
        event: 1 = event observed, 0 = censored, shape (N,).
        risk: predicted risk, shape (N,); higher risk = shorter expected survival.
    """
    return {"c_index": harrell_c_index(time, event, risk)}
