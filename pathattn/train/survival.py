"""Survival losses for attention-MIL: discrete-time hazard NLL and Cox partial likelihood.

Two heads are supported:

* **Discrete time** (Zadeh & Schmid 2021): follow-up is cut into K bins at quantiles of the observed
  event times (:func:`discretize_times`); the model outputs one hazard logit per bin and is trained with
  :func:`nll_discrete_survival`. :func:`pathattn.models.survival.risk_from_hazards` turns the hazards into
  one risk per bag for the C-index.
* **Cox** (Cox 1972; DeepSurv, Katzman et al. 2018): the model outputs one risk score per bag and is
  trained with :func:`cox_ph_loss`, the negative partial log-likelihood over the bags of a batch. The
  loss compares bags with each other, so a step needs several bags (with at least one event); gradient
  accumulation over single-bag steps does not reproduce it.

Conventions: ``event`` is 1 when the event (death, progression) was observed and 0 when censored;
higher risk means shorter expected survival.

References:
    S. G. Zadeh and M. Schmid (2021), "Bias in cross-entropy-based training of deep survival networks",
    IEEE TPAMI 43(9):3126-3137. D. R. Cox (1972), "Regression models and life-tables", JRSS-B 34:187-220.
    N. Breslow (1974), "Covariance analysis of censored survival data", Biometrics 30:89-99.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pathattn.errors import PathattnError
from pathattn.models.survival import log_survival

Reduction = Literal["mean", "sum", "none"]


def _numpy_1d(values: object, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return array


def assign_bins(times: object, bin_edges: np.ndarray) -> np.ndarray:
    """The bin of each time: ``k`` such that ``bin_edges[k] <= t < bin_edges[k + 1]``.

    Use it to bin validation and test patients with the edges of the training patients.

    Args:
        times: event or censoring times, shape (N,), >= 0.
        bin_edges: K + 1 increasing edges from :func:`discretize_times`.

    Returns:
        Bin indices, shape (N,), int64 in [0, K).
    """
    t = _numpy_1d(times, "times")
    if np.any(t < 0):
        raise ValueError("times must be >= 0")
    edges = np.asarray(bin_edges, dtype=np.float64)
    return np.clip(np.searchsorted(edges, t, side="right") - 1, 0, edges.size - 2).astype(np.int64)


def discretize_times(times: object, events: object, n_bins: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Quantile time bins of the discrete-time survival model, and the bin of every patient.

    Convention: the interior edges are the ``k / n_bins`` quantiles (k = 1 .. n_bins - 1, numpy's linear
    interpolation) of the times of the patients **with an event**; the first edge is 0 and the last
    ``+inf``, so every censored time also falls into a bin. Bins are half-open, ``[edge_k,
    edge_{k+1})``. Compute the edges on the training patients only and bin the others with
    :func:`assign_bins`.

    Args:
        times: event or censoring times, shape (N,), >= 0 (any unit).
        events: 1 = event observed, 0 = censored, shape (N,).
        n_bins: number of bins K (the number of hazard logits of the model).

    Returns:
        ``(bin_edges, bin_index)``: edges, shape (K + 1,), float64; bin of each patient, shape (N,),
        int64 in [0, K).

    Raises:
        PathattnError: no event, or event times with fewer than K distinct quantiles (use fewer bins).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    t, e = _numpy_1d(times, "times"), _numpy_1d(events, "events")
    if t.shape != e.shape:
        raise ValueError(f"times and events need one value per patient; got {t.shape} and {e.shape}")
    if not np.all(np.isin(e, (0.0, 1.0))):
        raise ValueError("events must be 0 (censored) or 1 (event)")
    event_times = t[e == 1]
    if event_times.size == 0:
        raise PathattnError("survival data has no event (column 'event' all 0); discrete-time bins need events")
    interior = np.quantile(event_times, np.arange(1, n_bins) / n_bins)
    edges = np.concatenate([[0.0], interior, [np.inf]])
    if not np.all(np.diff(edges) > 0):
        raise PathattnError(
            f"n_bins={n_bins}: the event times have only {np.unique(edges).size - 1} distinct quantile bins "
            f"(edges {np.round(edges, 4).tolist()}); use fewer bins"
        )
    return edges, assign_bins(t, edges)


def _check_batch(hazard_logits: Tensor, bin_index: Tensor, event: Tensor) -> tuple[Tensor, Tensor]:
    if hazard_logits.ndim != 2:
        raise ValueError(f"hazard_logits must have shape (B, K); got {tuple(hazard_logits.shape)}")
    batch, n_bins = hazard_logits.shape
    index = torch.as_tensor(bin_index, device=hazard_logits.device).reshape(-1).long()
    observed = torch.as_tensor(event, device=hazard_logits.device).reshape(-1).to(hazard_logits.dtype)
    if index.shape[0] != batch or observed.shape[0] != batch:
        raise ValueError(f"bin_index and event need {batch} values; got {index.shape[0]} and {observed.shape[0]}")
    if index.numel() and (index.min() < 0 or index.max() >= n_bins):
        raise ValueError(f"bin_index must lie in [0, {n_bins})")
    return index, observed


def nll_discrete_survival(
    hazard_logits: Tensor,
    bin_index: Tensor,
    event: Tensor,
    alpha: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Negative log-likelihood of the discrete-time hazard model (Zadeh & Schmid 2021).

    With hazards ``h_k = sigmoid(logit_k)`` (the probability of the event in bin k given survival up to
    it) and survival ``S_k = prod_{j<=k} (1 - h_j)`` (``S_{-1} = 1``), a bag in bin ``y`` contributes

    * ``uncensored = -log S_{y-1} - log h_y`` if its event was observed (survived bins before y, event in
      bin y), and
    * ``censored = -log S_y`` if censored (survived through bin y, the bin of the censoring time),

    and the loss is ``(1 - alpha) * (uncensored + censored) + alpha * uncensored``: ``alpha`` up-weights
    the uncensored term, the weighting Zadeh & Schmid study (alpha = 0 is the plain likelihood). All
    logs are computed with log-sigmoid (``log h = logsigmoid(l)``, ``log(1 - h) = logsigmoid(-l)``), so
    the loss is finite for any finite logits.

    Args:
        hazard_logits: hazard logits, shape (B, K).
        bin_index: time bin of each bag, shape (B,), in [0, K) (from :func:`discretize_times`).
        event: 1 = event observed, 0 = censored, shape (B,).
        alpha: weight of the extra uncensored term, in [0, 1].
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` (shape (B,)).

    Returns:
        The loss, a scalar (shape (B,) with ``reduction="none"``).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
    index, observed = _check_batch(hazard_logits, bin_index, event)
    y = index.unsqueeze(1)
    log_s = log_survival(hazard_logits)
    log_s_before = F.pad(log_s, (1, 0)).gather(1, y).squeeze(1)  # log S_{y-1}, with S_{-1} = 1
    log_h = F.logsigmoid(hazard_logits).gather(1, y).squeeze(1)
    uncensored = -observed * (log_s_before + log_h)
    censored = -(1.0 - observed) * log_s.gather(1, y).squeeze(1)
    loss = (1.0 - alpha) * (uncensored + censored) + alpha * uncensored
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def cox_ph_loss(risk: Tensor, time: Tensor, event: Tensor) -> Tensor:
    """Negative Cox partial log-likelihood of a batch of bags, Breslow ties, per event.

    ``L = -(1 / n_events) * sum_{i: event_i = 1} [risk_i - log sum_{j: time_j >= time_i} exp(risk_j)]``.
    With Breslow's handling of ties every bag tied at an event time is in the risk set of each event
    at that time. The log-sum-exp is computed with a masked ``torch.logsumexp`` (O(B²) memory, fine
    for the batch sizes of MIL training).

    A batch without an event has no partial likelihood: the loss is then ``0 * risk.sum()``, zero with
    a zero gradient that keeps the graph connected (the step changes nothing). The trainer must put
    several bags in each step so that most batches hold events.

    Args:
        risk: log-risk scores, shape (B,) or (B, 1).
        time: event or censoring times, shape (B,).
        event: 1 = event observed, 0 = censored, shape (B,).

    Returns:
        The loss, a scalar.
    """
    eta = risk.reshape(-1)
    t = torch.as_tensor(time, device=eta.device).reshape(-1)
    observed = torch.as_tensor(event, device=eta.device).reshape(-1).to(eta.dtype)
    if t.shape != eta.shape or observed.shape != eta.shape:
        raise ValueError(f"risk, time and event need one value per bag; got {eta.shape}, {t.shape}, {observed.shape}")
    n_events = observed.sum()
    if n_events.item() == 0:
        return eta.sum() * 0.0
    at_risk = t.unsqueeze(0) >= t.unsqueeze(1)  # [i, j]: bag j is at risk at the time of bag i
    log_denominator = torch.logsumexp(eta.unsqueeze(0).masked_fill(~at_risk, float("-inf")), dim=1)
    return -((eta - log_denominator) * observed).sum() / n_events
