"""Pure-torch specification of pathattn's attention ops (the fallback and the test oracle).

Bags of different sizes share a batch through a padding mask: ``mask[b, n]`` is True for a real
instance and False for padding. Padding never receives attention, and a bag with no real instance
pools to zeros rather than NaN.
"""

from __future__ import annotations

import torch


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Softmax over instances that ignores padding.

    Args:
        logits: (..., N, ...) raw attention scores.
        mask: boolean, broadcastable to ``logits``; True marks real instances. None: no padding.
        dim: the instance dimension.

    Returns:
        weights: same shape as ``logits``, summing to 1 over real instances (0 where masked; all 0 for a
        bag without real instances).
    """
    if mask is None:
        return torch.softmax(logits, dim=dim)
    mask = mask.to(torch.bool)
    filled = logits.masked_fill(~mask, float("-inf"))
    peak = filled.amax(dim=dim, keepdim=True).nan_to_num(neginf=0.0).detach()
    exp = torch.exp(filled - peak) * mask
    total = exp.sum(dim=dim, keepdim=True)
    return exp / total.clamp_min(torch.finfo(exp.dtype).tiny)


def attention_pool(
    logits: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention-weighted mean of instance features (ABMIL pooling).

    Args:
        logits: (B, N, H) raw attention of H heads (branches or classes).
        values: (B, N, D) instance features.
        mask: (B, N) bool, True for real instances; None when no bag is padded.

    Returns:
        pooled: (B, H, D) per-head bag embeddings, and weights: (B, N, H) attention weights.
    """
    weights = masked_softmax(logits, None if mask is None else mask[..., None], dim=1)
    return torch.einsum("bnh,bnd->bhd", weights, values), weights
