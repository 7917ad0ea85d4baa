"""CLAM-SB (Lu et al., Nature Biomedical Engineering 2021), reimplemented from the paper.

The network is gated ABMIL (``fc -> gated attention -> bag classifier``; 'small' size L=512, D=256,
dropout after the ReLU, the tanh and the sigmoid) plus one instance classifier ``Linear(L, 2)`` per class,
trained with the instance-level clustering loss of :func:`clam_instance_loss`: the B most attended instances
of a bag are pseudo-labelled positive and the B least attended negative for the classifier of the bag's
class; with ``subtyping`` the B most attended are also negatives for every other class's classifier.
CLAM adds the terms as ``0.7 * bag CE + 0.3 * instance loss`` (``bag_weight`` 0.7); that weighting belongs
to the training system. CLAM's default instance loss is a smooth top-1 SVM; this module uses cross-entropy.
The instance classifiers do not enter the bag logits, so :class:`CLAMSB` keeps ABMIL's ``instance_terms``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pathattn.models.mil.abmil import ABMIL
from pathattn.models.mil.base import MILOutput
from pathattn.registry import register_model


class CLAMSB(ABMIL):
    """CLAM single-branch: gated ABMIL with per-class instance classifiers.

    Args:
        in_dim: D, the size of an instance feature vector.
        n_classes: C >= 2, the number of classes.
        embed_dim: L, the size of an instance embedding.
        attn_dim: the attention's hidden size (256 'small', 384 'big').
        dropout: dropout probability after the embedding and in the attention gates (CLAM's ``--drop_out``).
        k_sample: B, the number of top and bottom instances pseudo-labelled per bag.
        subtyping: mutually exclusive classes: the top-B instances are also negatives for the other classes.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int = 2,
        *,
        embed_dim: int = 512,
        attn_dim: int = 256,
        dropout: float = 0.25,
        k_sample: int = 8,
        subtyping: bool = False,
    ) -> None:
        if n_classes < 2 or k_sample < 1:
            raise ValueError(f"CLAM needs n_classes >= 2 and k_sample >= 1, got {n_classes} and {k_sample}")
        super().__init__(
            in_dim,
            n_classes,
            embed_dim=embed_dim,
            attn_dim=attn_dim,
            gated=True,
            dropout=dropout,
            attention_dropout=dropout,
        )
        self.k_sample = k_sample
        self.subtyping = subtyping
        self.instance_classifiers = nn.ModuleList(nn.Linear(embed_dim, 2) for _ in range(n_classes))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        """Bag logits, raw attention and every instance classifier's logits.

        The instance classifiers need the embeddings, so the encoder runs on its own; the attention and pooling are
        fused where no dropout is active (:meth:`~pathattn.models.layers.AttentionScorer.pool`).

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances; None when no bag is padded.

        Returns:
            logits (B, C), attention (B, N, 1) raw logits with -inf at padding, extras ``instance_logits``
            (B, N, C, 2): the logits of class c's instance classifier (negative, positive) for every instance.
        """
        features, mask = self.prepare(features, mask)
        embeddings = self.encoder(features)
        pooled, attention = self.attention.pool(embeddings, mask)
        logits = self.head(pooled[:, 0])
        instance_logits = torch.stack([classifier(embeddings) for classifier in self.instance_classifiers], dim=2)
        return MILOutput(logits, attention, {"instance_logits": instance_logits})

    def instance_loss(self, output: MILOutput, target: torch.Tensor) -> torch.Tensor:
        """The instance clustering loss of this model's output (see :func:`clam_instance_loss`)."""
        return clam_instance_loss(
            output.attention[..., 0],
            output.extras["instance_logits"],
            target,
            k_sample=self.k_sample,
            subtyping=self.subtyping,
        )


def clam_instance_loss(
    attention: torch.Tensor,
    instance_logits: torch.Tensor,
    target: torch.Tensor,
    *,
    k_sample: int = 8,
    subtyping: bool = False,
) -> torch.Tensor:
    """CLAM's instance-level clustering loss with cross-entropy.

    For a bag of class y with n real instances, k = min(B, n // 2) (CLAM itself needs n >= B; halving keeps
    the top and bottom sets disjoint). Classifier y: the top-k attended instances have target 1 and the
    bottom-k target 0, loss = mean CE over those 2k. With ``subtyping``, classifier c != y: the top-k have
    target 0, loss = mean CE over k. The bag's loss is the sum over the classes evaluated, divided by C with
    ``subtyping``; the result is the mean over the batch (a bag with k = 0 contributes 0).

    Args:
        attention: (B, N) raw attention, -inf at padding (any monotone score gives the same result).
        instance_logits: (B, N, C, 2) logits of every class's instance classifier.
        target: (B,) class indices.
        k_sample: B.
        subtyping: add the out-of-class terms.

    Returns:
        Scalar loss.
    """
    _, n_instances, n_classes, _ = instance_logits.shape
    real = torch.isfinite(attention)
    n_real = real.sum(dim=1)
    k = (n_real // 2).clamp(max=k_sample)  # (B,)
    width = min(k_sample, n_instances)
    order = attention.argsort(dim=1, descending=True, stable=True)  # real instances first
    rank = torch.arange(width, device=attention.device)
    top = order[:, :width]
    bottom = order.gather(1, (n_real[:, None] - 1 - rank[None]).clamp(min=0))  # lowest first
    valid = rank[None] < k[:, None]  # (B, width)

    is_target = F.one_hot(target, n_classes).bool()  # (B, C)
    top_ce = _pick_cross_entropy(instance_logits, top, is_target[:, None, :].expand(-1, width, -1))
    bottom_ce = _pick_cross_entropy(instance_logits, bottom, torch.zeros_like(top_ce, dtype=torch.bool))
    top_used = valid[:, :, None] & (is_target | subtyping)[:, None, :]  # (B, width, C)
    bottom_used = valid[:, :, None] & is_target[:, None, :]
    total = (top_ce * top_used).sum(dim=1) + (bottom_ce * bottom_used).sum(dim=1)  # (B, C)
    count = top_used.sum(dim=1) + bottom_used.sum(dim=1)
    per_bag = (total / count.clamp_min(1)).sum(dim=1)
    return (per_bag / n_classes if subtyping else per_bag).mean()


def _pick_cross_entropy(instance_logits: torch.Tensor, index: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the selected instances under every class's classifier.

    Args:
        instance_logits: (B, N, C, 2).
        index: (B, W) instance indices.
        positive: (B, W, C) bool, the pseudo-label (True: class 1).

    Returns:
        (B, W, C) per-instance, per-classifier cross-entropy.
    """
    batch, width = index.shape
    n_classes = instance_logits.shape[2]
    picked = instance_logits.gather(1, index[:, :, None, None].expand(-1, -1, n_classes, 2))
    ce = F.cross_entropy(picked.reshape(-1, 2), positive.reshape(-1).long(), reduction="none")
    return ce.view(batch, width, n_classes)


@register_model(family="mil")
def clam_sb(**kwargs: Any) -> CLAMSB:
    """CLAM-SB 'small': L=512, D=256, dropout 0.25, B=8 instances, no subtyping."""
    return CLAMSB(**{"embed_dim": 512, "attn_dim": 256, "dropout": 0.25, "k_sample": 8, **kwargs})
