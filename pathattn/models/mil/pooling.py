"""Mean- and max-pooling baselines with the MIL interface.

Both embed every instance with ``Linear -> ReLU -> Dropout`` (as ABMIL does) and end in one linear layer.

* :class:`MeanPool` averages the embeddings of the real instances. Its ``attention`` is 0 for every real
  instance (-inf at padding): softmax of it is the uniform weight that mean pooling uses. It is
  instance-separable (:class:`~pathattn.models.mil.base.InstanceSeparable`).
* :class:`MaxPool` pools in instance space (mi-Net; CLAM's ``mil`` baseline): the linear layer scores every
  instance and the bag logit of class c is the largest instance logit of class c. Its ``attention`` is those
  instance logits (B, N, C), -inf at padding: the instance that attains the maximum is the one that counts.
  It has no ``instance_terms``: a maximum is not an attention-weighted mean.

A bag without a real instance gives the head's bias (mean) or 0 (max), never NaN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathattn.kernels import attention_pool
from pathattn.models.mil.base import MILModel, MILOutput, fill_padding, instance_encoder, linear_head_terms
from pathattn.registry import register_model

if TYPE_CHECKING:
    from pathattn.models.mil.base import InstanceTerms


class _PoolingMIL(MILModel):
    """Embedding + linear head shared by the pooling baselines.

    Args:
        in_dim: D, the size of an instance feature vector.
        n_classes: C, the number of bag logits.
        embed_dim: L, the size of an instance embedding.
        dropout: dropout probability after the embedding's ReLU.
    """

    def __init__(self, in_dim: int, n_classes: int = 2, *, embed_dim: int = 512, dropout: float = 0.25) -> None:
        super().__init__(in_dim, n_classes)
        self.encoder = instance_encoder(in_dim, embed_dim, dropout=dropout)
        self.head = nn.Linear(embed_dim, n_classes)


class MeanPool(_PoolingMIL):
    """Mean of the instance embeddings, then a linear head (arguments: :class:`_PoolingMIL`)."""

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        """Bag logits of the mean embedding.

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances; None when no bag is padded.

        Returns:
            logits (B, C), attention (B, N, 1): 0 at real instances, -inf at padding; no extras.
        """
        features, mask = self.prepare(features, mask)
        embeddings = self.encoder(features)
        uniform = embeddings.new_zeros(embeddings.shape[:2] + (1,))
        pooled, _ = attention_pool(uniform, embeddings, mask)
        return MILOutput(self.head(pooled[:, 0]), fill_padding(uniform, mask), {})

    def instance_terms(self, features: torch.Tensor) -> InstanceTerms:
        """Mean pooling as attention pooling with equal logits.

        Args:
            features: (N, D) instance features.

        Returns:
            attention (N, 1) zeros, head contributions (N, C) and the head's bias (C,).
        """
        embeddings = self.encoder(features[None])[0]
        return linear_head_terms(embeddings.new_zeros(len(embeddings), 1), embeddings, self.head)


class MaxPool(_PoolingMIL):
    """Instance logits, max over instances per class (arguments: :class:`_PoolingMIL`)."""

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        """Bag logits as the per-class maximum of the instance logits.

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances; None when no bag is padded.

        Returns:
            logits (B, C), attention (B, N, C): the instance logits, -inf at padding; no extras.
        """
        features, mask = self.prepare(features, mask)
        instance_logits = fill_padding(self.head(self.encoder(features)), mask)
        logits = instance_logits.amax(dim=1)
        return MILOutput(logits.masked_fill(torch.isneginf(logits), 0.0), instance_logits, {})


@register_model(family="mil")
def mean_pool(**kwargs: Any) -> MeanPool:
    """Mean-pooling baseline: L=512, dropout 0.25."""
    return MeanPool(**{"embed_dim": 512, "dropout": 0.25, **kwargs})


@register_model(family="mil")
def max_pool(**kwargs: Any) -> MaxPool:
    """Instance-level max-pooling baseline: L=512, dropout 0.25."""
    return MaxPool(**{"embed_dim": 512, "dropout": 0.25, **kwargs})
