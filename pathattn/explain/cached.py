"""The cached back end: counterfactual logits of instance-separable models without re-running the network.

A model is served when it provides ``instance_terms`` (the protocol
:class:`~pathattn.models.mil.base.InstanceSeparable`, whose docstring states the contract): every instance's
attention logits and embedding depend on that instance alone, and the head is linear after pooling. With
``a_i`` (M,) the attention logits of M heads (ACMIL branches; 1 otherwise), ``z_i = W h_i`` (C,) the head's
contribution of the instance embedding and ``b`` the head's bias, the logits of any subset S of the bag are

    ``logits(S) = (1/M) sum_m [sum_{i in S} e_im z_i] / [sum_{i in S} e_im] + b``,  ``e_im = exp(a_im - c_m)``

for any shift ``c_m``; an empty S gives ``b`` (the models pool an empty bag to zeros). So (a, z, b) are
computed once (one network pass over the bag), and removing or adding candidate j is
``(Sz_m -+ e_jm z_j) / (S_m -+ e_jm)``: every candidate of a round costs O(M C) instead of a forward pass.

Exactness: the sums are float64 and recomputed from scratch every round (no drift across rounds), with the
shift ``c_m`` = the largest logit of the bag and candidates (no overflow). When a removal takes away almost
all of a head's attention mass (``S_m - e_jm < 1e-3 S_m``), the subtraction would lose digits, so that
candidate's logits are recomputed as an exact masked softmax over what is left (also the path of an empty
bag). pathattn's ABMIL, CLAM-SB, ACMIL (its slide head) and mean pooling (a = 0) provide the terms; other
models (max pooling, models with instance interactions) are served by the generic back end.
"""

from __future__ import annotations

import torch
from torch import nn

from pathattn.models.mil.base import InstanceSeparable, InstanceTerms

CANCELLATION = 1e-3  # recompute exactly when a removal leaves less than this share of a head's attention mass
WEIGHTS_PER_STEP = 1 << 22  # bags x instances x heads per step of an exact evaluation (32 MiB of float64)


def unsupported_reason(network: nn.Module) -> str | None:
    """Why the cached back end cannot serve ``network`` (None when it can)."""
    if isinstance(network, InstanceSeparable):
        return None
    return (
        f"{type(network).__name__} is not instance-separable with a linear head: it has no instance_terms method "
        "(the cached back end serves models implementing pathattn.models.mil.base.InstanceSeparable)"
    )


@torch.inference_mode()
def instance_terms(network: InstanceSeparable, features: torch.Tensor, chunk: int = 65536) -> InstanceTerms:
    """Attention logits and head contributions of every instance, in chunks of ``chunk`` instances.

    Args:
        network: a served model in eval mode (see :func:`unsupported_reason`).
        features: (P, D) standardised instance features (P >= 1).
        chunk: instances per network pass (bounds memory).

    Returns:
        The terms of the P instances in float64: attention (P, M), contributions (P, C), bias (C,).
    """
    parts = [network.instance_terms(features[start : start + chunk]) for start in range(0, len(features), chunk)]
    return InstanceTerms(
        torch.cat([p.attention for p in parts]).double(),
        torch.cat([p.contributions for p in parts]).double(),
        parts[0].bias.detach().double(),
    )


class CachedBackend:
    """Counterfactual logits from cached instance terms (module docstring).

    Args:
        terms: the float64 terms of the pool's P instances (:func:`instance_terms`).
    """

    name = "cached"

    def __init__(self, terms: InstanceTerms) -> None:
        self.terms = terms

    @property
    def n_pool(self) -> int:
        """P, the number of instances (bag and donors)."""
        return len(self.terms.attention)

    def logits(self, masks: torch.Tensor) -> torch.Tensor:
        """Exact logits of arbitrary subsets (a masked softmax per bag, float64).

        Args:
            masks: (B, P) bool, True for the instances in each bag.

        Returns:
            (B, C) float64 logits; an empty bag gives the head's bias.
        """
        chunk = max(1, WEIGHTS_PER_STEP // self.terms.attention.numel())
        return torch.cat([self._masked_logits(masks[s : s + chunk]) for s in range(0, len(masks), chunk)])

    def _masked_logits(self, masks: torch.Tensor) -> torch.Tensor:
        a, z = self.terms.attention, self.terms.contributions
        filled = a[None].masked_fill(~masks[..., None], float("-inf"))  # (B, P, M)
        peak = filled.amax(dim=1, keepdim=True).nan_to_num(neginf=0.0)
        weights = torch.exp(filled - peak)  # 0 outside the bag
        total = weights.sum(dim=1)  # (B, M)
        pooled = torch.einsum("bpm,pc->bmc", weights, z) / total.clamp_min(torch.finfo(total.dtype).tiny)[..., None]
        return pooled.mean(dim=1) + self.terms.bias

    def toggle(self, alive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(n, C) logits of ``alive`` (P,) with each of ``candidates`` (n,) flipped (:class:`Backend` contract).

        One pass of sums over the bag, then O(M C) per candidate; exact recompute where a removal cancels.
        """
        a, z = self.terms.attention, self.terms.contributions
        shift = torch.cat([a[alive], a[candidates]]).amax(dim=0)  # (M,); the bag may be empty (insertion)
        exp = torch.exp(a[candidates] - shift)  # (n, M), <= 1
        kept = torch.exp(a[alive] - shift)  # (|alive|, M)
        total = kept.sum(dim=0)  # (M,)
        weighted = kept.T @ z[alive]  # (M, C)
        e = torch.where(alive[candidates, None], -exp, exp)  # (n, M): removal subtracts, insertion adds
        denominator = total + e  # (n, M)
        z_candidates = z[candidates]  # (n, C)
        logits = self.terms.bias.expand(len(candidates), -1).clone()
        for m in range(a.shape[1]):  # heads: 1, or ACMIL's few branches
            head = (weighted[m] + e[:, m, None] * z_candidates) / denominator[:, m, None]
            logits += head / a.shape[1]
        unsafe = (denominator <= CANCELLATION * total).any(dim=1)
        if unsafe.any():
            rows = unsafe.nonzero()[:, 0]
            masks = alive.expand(len(rows), -1).clone()
            masks[torch.arange(len(rows)), candidates[rows]] ^= True
            logits[rows] = self.logits(masks)
        return logits
