"""How a survival network's discrete hazard logits read: survival per time bin and one risk per bag.

A discrete-time survival network outputs one hazard logit per time bin, ``h_k = sigmoid(logit_k)`` being
the probability of the event in bin k given survival up to it. Training (``pathattn.train.survival``),
prediction and explanation all turn those logits into a risk the same way, so the conversion lives here,
beside the networks, rather than in one of the stages. Higher risk means shorter expected survival.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def log_survival(hazard_logits: Tensor) -> Tensor:
    """Log survival after each bin, ``log S_k = sum_{j<=k} log(1 - h_j)`` with ``h = sigmoid(logits)``.

    Args:
        hazard_logits: shape (B, K).

    Returns:
        Shape (B, K).
    """
    return torch.cumsum(F.logsigmoid(-hazard_logits), dim=1)


def risk_from_hazards(hazard_logits: Tensor) -> Tensor:
    """One risk per bag from discrete hazards: ``-sum_k S_k`` (higher = riskier).

    The sum of the survival probabilities is a discrete restricted mean survival time (in bins), so its
    negative orders bags by expected survival and can be fed to the C-index.

    Args:
        hazard_logits: shape (B, K).

    Returns:
        Risk, shape (B,).
    """
    return -log_survival(hazard_logits).exp().sum(dim=1)
