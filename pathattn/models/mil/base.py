"""What every MIL model shares: the input convention, the output tuple and the instance encoder.

Input: a batch of bags ``features: (B, N, D)`` and ``mask: (B, N)`` bool, True for a real instance and False
for padding (None: no bag is padded). Bags of different sizes share a batch by padding to the largest N;
padded rows are zeroed before the model sees them, so their content (even NaN) never matters, and they get
no attention. A single bag of N instances is ``features[None]``; an empty bag is one slot with mask False
(N = 0 is refused) and gives finite logits.

Output: :class:`MILOutput`, whose ``attention`` holds the raw (pre-softmax) attention logits with
**-inf at padding** (and at instances an ACMIL mask dropped), so ``softmax(attention, dim=1)`` gives the
pooling weights and ``torch.isfinite(attention)`` recovers which instances were used.
"""

from __future__ import annotations

from typing import NamedTuple

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
