"""ABMIL: attention-based deep MIL (Ilse, Tomczak and Welling, ICML 2018), plain and gated.

``h_i = Dropout(ReLU(W x_i + b))``, raw attention ``a_i`` from :class:`~pathattn.models.layers.AttentionScorer`,
``alpha = softmax_i(a)`` over the real instances, bag embedding ``z = sum_i alpha_i h_i``, logits
``W_head z + b_head``. One module covers the published variants:

============================  ===============================================================================
variant                        settings
============================  ===============================================================================
``abmil`` (HIPPO, CLAM-style)  L=512, D=384 (HIPPO's released models), gated, dropout 0.25 after the ReLU,
                               the tanh and the sigmoid; ``AttentionMILModel(L=512, D=384, dropout=0.25)``
``abmil_plain``                as ``abmil`` but plain attention without dropout (HIPPO's ``gated_attention=False``)
``abmil_acmil_style``          ACMIL/AEM's ABMIL: ``Linear(bias=False) + ReLU`` to L=512, gated D=128, no dropout
                               (their L depends on the encoder: 128 for ViT-S, 256 for ResNet-18, 512 for UNI)
============================  ===============================================================================

CLAM-SB's network is gated ABMIL with L=512, D=256 (see :mod:`pathattn.models.mil.clam`). HIPPO and CLAM
checkpoints load through :mod:`pathattn.models.mil.adapters`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathattn.models.layers import AttentionScorer
from pathattn.models.mil.base import MILModel, MILOutput, instance_encoder, linear_head_terms
from pathattn.registry import register_model

if TYPE_CHECKING:
    from pathattn.models.mil.base import InstanceTerms


class ABMIL(MILModel):
    """Attention-based MIL with one attention head.

    Args:
        in_dim: D, the size of an instance feature vector.
        n_classes: C, the number of bag logits.
        embed_dim: L, the size of an instance embedding.
        attn_dim: the attention's hidden size (D in the papers).
        gated: gated attention (tanh times sigmoid) instead of plain tanh attention.
        dropout: dropout probability after the embedding's ReLU.
        attention_dropout: dropout probability after the attention's tanh and sigmoid.
        encoder_bias: give the embedding layer a bias (ACMIL/AEM use none).
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int = 2,
        *,
        embed_dim: int = 512,
        attn_dim: int = 384,
        gated: bool = True,
        dropout: float = 0.25,
        attention_dropout: float = 0.25,
        encoder_bias: bool = True,
    ) -> None:
        super().__init__(in_dim, n_classes)
        self.encoder = instance_encoder(in_dim, embed_dim, bias=encoder_bias, dropout=dropout)
        self.attention = AttentionScorer(embed_dim, attn_dim, 1, gated=gated, dropout=attention_dropout)
        self.head = nn.Linear(embed_dim, n_classes)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        """Bag logits and raw attention.

        With no dropout active (eval mode, or p = 0) the encoder, attention and pooling run as one fused op
        (:meth:`~pathattn.models.layers.AttentionScorer.pool`).

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances; None when no bag is padded.

        Returns:
            logits (B, C), attention (B, N, 1) raw logits with -inf at padding, no extras.
        """
        features, mask = self.prepare(features, mask)
        pooled, attention = self.attention.pool(features, mask, self.encoder)
        return MILOutput(self.head(pooled[:, 0]), attention, {})

    def instance_terms(self, features: torch.Tensor) -> InstanceTerms:
        """Attention logits and head contributions of every instance (``InstanceSeparable``, in ``base``).

        Args:
            features: (N, D) instance features.

        Returns:
            attention (N, 1), contributions (N, C) and the head's bias (C,).
        """
        embeddings = self.encoder(features[None])[0]
        return linear_head_terms(self.attention(embeddings[None])[0], embeddings, self.head)


HIPPO_DEFAULTS: dict[str, Any] = {"embed_dim": 512, "attn_dim": 384, "dropout": 0.25}


@register_model(family="mil")
def abmil(**kwargs: Any) -> ABMIL:
    """Gated ABMIL, HIPPO's released configuration: L=512, D=384, dropout 0.25 (embedding and gates)."""
    return ABMIL(**{**HIPPO_DEFAULTS, "gated": True, "attention_dropout": 0.25, **kwargs})


@register_model(family="mil")
def abmil_plain(**kwargs: Any) -> ABMIL:
    """Plain (non-gated) ABMIL as HIPPO builds it: L=512, D=384, dropout 0.25 after the embedding only."""
    return ABMIL(**{**HIPPO_DEFAULTS, "gated": False, "attention_dropout": 0.0, **kwargs})


@register_model(family="mil")
def abmil_acmil_style(**kwargs: Any) -> ABMIL:
    """ACMIL/AEM's gated ABMIL: bias-free embedding to L=512, D=128, no dropout."""
    defaults = {"embed_dim": 512, "attn_dim": 128, "gated": True, "dropout": 0.0, "attention_dropout": 0.0}
    return ABMIL(**{**defaults, "encoder_bias": False, **kwargs})
