"""The cached back end: counterfactual logits of instance-separable models without re-running the network.

A model is served when it provides ``instance_terms`` (the protocol
:class:`~pathattn.models.mil.base.InstanceSeparable`, whose docstring states the contract): every instance's
attention logits and embedding depend on that instance alone, and the head is linear after pooling. With
``a_i`` (M,) the attention logits of M heads (ACMIL branches; 1 otherwise), ``z_i = W h_i`` (C,) the head's
contribution of the instance embedding and ``b`` the head's bias, the logits of any subset S of the bag are

    ``logits(S) = (1/M) sum_m [sum_{i in S} e_im z_i] / [sum_{i in S} e_im] + b``,  ``e_im = exp(a_im - c_m)``

for any shift ``c_m``; an empty S gives ``b`` (the models pool an empty bag to zeros). So (a, z, b) are
computed once (one network pass over the bag), and every counterfactual bag is a masked softmax pooling of
them: :func:`pathattn.kernels.masked_pool` (the Triton kernels on a GPU, the torch reference on a CPU). A
greedy round (every candidate removed, or added) is its ``all_but_one`` (``add_one``) rule: the bag is pooled
once, and removing or adding candidate j updates that pooling in O(M C), so a round costs O(N M C) in all.

Exactness: the terms are float64 and the bag is pooled from scratch at every call (no drift across rounds),
with the largest logit of the bag as the shift (no overflow). When a removal takes away almost all of a head's
attention (less than ``cancellation(float64)`` = 1e-3 of it left), the subtraction would lose digits, so that
candidate's logits are recomputed as an exact masked softmax over what is left (also the path of an empty bag).
pathattn's ABMIL, CLAM-SB, ACMIL (its slide head) and mean pooling (a = 0) provide the terms; other models
(max pooling, models with instance interactions) are served by the generic back end.
"""

from __future__ import annotations

import torch
from torch import nn

from pathattn.kernels import masked_pool
from pathattn.kernels.masked_pool import Rule
from pathattn.models.mil.base import InstanceSeparable, InstanceTerms

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
        terms: the float64 terms of the pool's P instances (:func:`instance_terms`), on the model's device.
    """

    name = "cached"

    def __init__(self, terms: InstanceTerms) -> None:
        self.terms = terms
        # instances last in memory ((M, P) and (C, P) storage): masked_pool's passes run along contiguous rows
        self.attention = terms.attention.T.contiguous().T
        self.contributions = terms.contributions.T.contiguous().T
        # a round is a few passes over ~1 MB arrays: on a CPU, more threads only wait for each other
        self.threads = 1 if terms.attention.device.type == "cpu" else None

    @property
    def n_pool(self) -> int:
        """P, the number of instances (bag and donors)."""
        return len(self.terms.attention)

    def logits(self, masks: torch.Tensor) -> torch.Tensor:
        """Exact logits of arbitrary subsets (a masked softmax per bag, float64).

        Args:
            masks: (B, P) bool, True for the instances in each bag.

        Returns:
            (B, C) float64 logits on the CPU; an empty bag gives the head's bias.
        """
        masks = masks.to(self.attention.device)
        chunk = max(1, WEIGHTS_PER_STEP // self.attention.numel())
        parts = [masked_pool(self.attention, self.contributions, masks[start : start + chunk])
                 for start in range(0, len(masks), chunk)]  # fmt: skip
        return self._head(torch.cat(parts))

    def toggle(self, alive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(n, C) logits of ``alive`` (P,) with each of ``candidates`` (n,) flipped (:class:`Backend` contract).

        Candidates in the bag are removed (``all_but_one``), the others added (``add_one``): O(P M C) in all.
        """
        alive, candidates = alive.to(self.attention.device), candidates.to(self.attention.device)
        inside = alive[candidates]
        n_inside = int(inside.sum())
        if n_inside in (0, len(candidates)):  # a greedy round: every candidate removed, or every one added
            return self._head(self._pooled("all_but_one" if n_inside else "add_one", alive, candidates))
        pooled = self.contributions.new_empty(len(candidates), self.attention.shape[1], self.contributions.shape[1])
        pooled[inside] = self._pooled("all_but_one", alive, candidates[inside])
        pooled[~inside] = self._pooled("add_one", alive, candidates[~inside])
        return self._head(pooled)

    def _pooled(self, rule: Rule, alive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(n, M, C) per-head pooled contributions of ``alive`` with each candidate removed or added (``rule``)."""
        return masked_pool(self.attention, self.contributions, rule=rule, keep=alive, indices=candidates)

    def _head(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C) float64 CPU logits of the per-head pooled contributions (B, M, C): their mean plus the bias."""
        heads = pooled[:, 0] if pooled.shape[1] == 1 else pooled.mean(dim=1)  # one head: no reduction pass
        return (heads + self.terms.bias).cpu()
