"""AEM: attention entropy maximization (Zhang et al., arXiv 2406.15303), a regulariser for any attention model.

The term added to the task loss is the **negative** Shannon entropy (natural log) of the softmax attention,
computed stably from the raw logits ``a``: ``sum_i softmax(a)_i * log_softmax(a)_i = -H(alpha)``.
``loss = task_loss + lambda * attention_entropy_loss(output.attention)``: minimizing it spreads the
attention. The AEM code's default lambda is 0 (no regulariser); its README example uses 0.1.

The paper's later version anneals lambda with a cosine ("cosine weight annealing"), but its code has no
such schedule and the exact formula is **unverified**. :class:`AEMSchedule` uses the usual half-cosine
decay from ``lambda_`` to ``final_lambda`` over ``total_steps``:
``lambda(t) = final + (lambda_ - final) * (1 + cos(pi * min(t, T) / T)) / 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


def attention_entropy_loss(attention_logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Negative entropy of the attention distribution over instances, averaged over heads and bags.

    Args:
        attention_logits: (B, N, K) or (B, N) raw (pre-softmax) attention, e.g. ``MILOutput.attention``;
            non-finite entries (-inf at padding and ACMIL-masked instances) are left out.
        mask: (B, N) True for real instances; None: every finite logit is a real instance.

    Returns:
        Scalar: ``sum_i p_i log p_i`` with ``p = softmax`` over the kept instances, averaged over the K
        heads (branches or classes) and then over the B bags. In [-log N, 0]; a bag without a kept
        instance counts 0.
    """
    logits = attention_logits if attention_logits.ndim == 3 else attention_logits[..., None]
    kept = torch.isfinite(logits)
    if mask is not None:
        kept = kept & mask.to(torch.bool)[..., None]
    log_norm = torch.logsumexp(logits.masked_fill(~kept, float("-inf")), dim=1, keepdim=True)
    log_norm = log_norm.masked_fill(~kept.any(dim=1, keepdim=True), 0.0)  # empty bag: avoid -inf - -inf
    log_p = (logits.masked_fill(~kept, 0.0) - log_norm).masked_fill(~kept, 0.0)
    return (log_p.exp() * log_p).sum(dim=1).mean()


@dataclass(frozen=True)
class AEMSchedule:
    """The weight lambda of the AEM term at a training step.

    Args:
        lambda_: lambda at step 0 (and throughout with ``anneal="none"``).
        anneal: ``"none"``: constant; ``"cosine"``: half-cosine decay to ``final_lambda`` at ``total_steps``
            (formula in the module docstring; an assumption, see there).
        total_steps: T, the number of optimizer steps of the decay (needed for ``"cosine"``).
        final_lambda: lambda from step T on.
    """

    lambda_: float = 0.1
    anneal: Literal["none", "cosine"] = "none"
    total_steps: int | None = None
    final_lambda: float = 0.0

    def __post_init__(self) -> None:
        if self.anneal not in ("none", "cosine"):
            raise ValueError(f"anneal must be 'none' or 'cosine', got {self.anneal!r}")
        if self.anneal == "cosine" and (self.total_steps is None or self.total_steps < 1):
            raise ValueError(f"cosine annealing needs total_steps >= 1, got {self.total_steps}")

    def __call__(self, step: int) -> float:
        """Lambda at optimizer step ``step`` (0-based)."""
        if self.anneal == "none":
            return self.lambda_
        assert self.total_steps is not None  # checked in __post_init__
        progress = min(max(step, 0), self.total_steps) / self.total_steps
        return self.final_lambda + (self.lambda_ - self.final_lambda) * (1.0 + math.cos(math.pi * progress)) / 2.0
