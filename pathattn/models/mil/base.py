"""What every MIL model shares: the input convention, the output tuple and the instance encoder.

Input: a batch of bags ``features: (B, N, D)`` and ``mask: (B, N)`` bool, True for a real instance and False
for padding (None: no bag is padded). Bags of different sizes share a batch by padding to the largest N;
padded rows are zeroed before the model sees them, so their content (even NaN) never matters, and they get
no attention. A single bag of N instances is ``features[None]``; an empty bag is one slot with mask False
(N = 0 is refused) and gives finite logits.

Output: :class:`MILOutput`, whose ``attention`` holds the raw (pre-softmax) attention logits with
**-inf at padding** (and at instances an ACMIL mask dropped), so ``softmax(attention, dim=1)`` gives the
pooling weights and ``torch.isfinite(attention)`` recovers which instances were used.

Instance-separable models (:class:`InstanceSeparable`) also expose the per-instance terms their logits are
made of, so that counterfactual bags can be scored without running the network again
(:mod:`pathattn.explain.cached`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn


class MILOutput(NamedTuple):
    """The result of a MIL model on a batch of bags.

    Attributes:
        logits: (B, C) bag logits (C = 1 for a risk score or a single logit).
        attention: (B, N, K) raw attention logits of K heads (1, ACMIL branches, or classes), ``-inf`` at
            padding and at masked instances.
        extras: model-specific tensors, e.g. ``branch_logits`` (ACMIL) or ``instance_logits`` (CLAM).
    """

    logits: torch.Tensor
    attention: torch.Tensor
    extras: dict[str, torch.Tensor]


@dataclass(frozen=True)
class InstanceTerms:
    """What the logits of an instance-separable model are made of, per instance (:class:`InstanceSeparable`).

    Args:
        attention: (N, M) raw attention logits of M heads (ACMIL's branches; 1 otherwise).
        contributions: (N, C) head contributions ``z_i = W h_i`` of the instance embeddings (no bias).
        bias: (C,) the head's bias.
    """

    attention: torch.Tensor
    contributions: torch.Tensor
    bias: torch.Tensor


@runtime_checkable
class InstanceSeparable(Protocol):
    """A MIL model whose bag logits are softmax-attention pooled, instance-wise terms plus a bias.

    Every instance's attention logits ``a_i`` (M,) and head contribution ``z_i`` (C,) depend on that
    instance alone, and for every subset S of a bag, in eval mode,

        ``logits(S) = (1/M) sum_m [sum_{i in S} e_im z_i] / [sum_{i in S} e_im] + b``,  ``e_im = exp(a_im)``,

    equal to ``forward(features[S][None]).logits[0]``; an empty S gives ``b``. ABMIL (and CLAM-SB), ACMIL's
    slide head and mean pooling (``a = 0``) are instance-separable; max pooling is not.
    """

    def instance_terms(self, features: torch.Tensor) -> InstanceTerms:
        """The terms of every instance of a bag.

        Args:
            features: (N, D) instance features, as the network takes them.

        Returns:
            attention (N, M), contributions (N, C) and bias (C,), in the network's dtype.
        """
        ...


def linear_head_terms(attention: torch.Tensor, embeddings: torch.Tensor, head: nn.Linear) -> InstanceTerms:
    """The :class:`InstanceTerms` of instances pooled with ``attention`` (N, M) before the linear ``head``.

    Args:
        attention: (N, M) raw attention logits.
        embeddings: (N, L) instance embeddings.
        head: the linear layer applied to the pooled embedding.

    Returns:
        The terms, with ``z_i = W h_i``.
    """
    return InstanceTerms(attention, embeddings @ head.weight.T, head.bias)


class MILModel(nn.Module):
    """Base of the MIL models: stores the sizes and checks and cleans the inputs.

    Args:
        in_dim: D, the size of an instance feature vector.
        n_classes: C, the number of bag logits.
    """

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        if in_dim < 1 or n_classes < 1:
            raise ValueError(f"in_dim and n_classes must be positive, got {in_dim} and {n_classes}")
        self.in_dim = in_dim
        self.n_classes = n_classes

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        """Bag logits and raw attention of a batch of bags (see the module docstring)."""
        raise NotImplementedError

    def prepare(self, features: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check the shapes and zero the padded rows.

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances, or None.

        Returns:
            features: (B, N, D) with padded rows set to 0, and mask: (B, N) bool or None.

        Raises:
            ValueError: the shapes do not fit each other or ``in_dim``, or N = 0 (pass an empty bag as one
                instance slot with mask False instead).
        """
        if features.ndim != 3 or features.shape[-1] != self.in_dim:
            raise ValueError(
                f"features must have shape (B, N, {self.in_dim}), got {tuple(features.shape)}; "
                "pass a single bag as features[None]"
            )
        if features.shape[1] == 0:
            raise ValueError("features have no instance slot (N = 0); pass an empty bag as N = 1 with mask False")
        if mask is None:
            return features, None
        if mask.shape != features.shape[:2]:
            raise ValueError(f"mask must have shape {tuple(features.shape[:2])}, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        return features.masked_fill(~mask[..., None], 0.0), mask


def fill_padding(attention: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Set the attention of padded instances to -inf.

    Args:
        attention: (B, N, K) raw attention logits.
        mask: (B, N) True for real instances, or None.

    Returns:
        (B, N, K) logits, -inf where ``mask`` is False.
    """
    return attention if mask is None else attention.masked_fill(~mask[..., None], float("-inf"))


def instance_encoder(in_dim: int, embed_dim: int, *, bias: bool = True, dropout: float = 0.0) -> nn.Sequential:
    """The per-instance embedding ``Linear -> ReLU -> Dropout`` (indices 0, 1, 2, as in HIPPO and CLAM).

    Args:
        in_dim: D, the size of an instance feature vector.
        embed_dim: L, the size of the embedding.
        bias: give the linear layer a bias (ACMIL/AEM use none).
        dropout: dropout probability after the ReLU.

    Returns:
        The module mapping (B, N, D) to (B, N, L).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return nn.Sequential(nn.Linear(in_dim, embed_dim, bias=bias), nn.ReLU(), nn.Dropout(dropout))
