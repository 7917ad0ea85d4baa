"""ACMIL: attention-challenging MIL (Zhang et al., ECCV 2024), reimplemented from the paper's formulas.

Two parts on top of gated ABMIL:

* **Multiple-branch attention (MBA)**: one gated attention with M output rows (branches share V and U and
  differ in the last layer's row), one ``Linear(L, C)`` head per branch on that branch's pooled embedding,
  and a slide head on the embedding pooled with the **mean of the branches' softmax attention**.
* **Stochastic top-K instance masking (STKIM)**, training only: for every bag and branch, exactly
  ``floor(min(K, n) * p)`` of the branch's top-K raw logits (n real instances) are chosen uniformly and
  dropped (their logit becomes -inf, so the softmax renormalizes over the rest in proportion to
  ``exp(a_i)``). The slide head sees the masked attention too. The draws use ``generator`` if one is
  passed to :meth:`ACMIL.forward`, else torch's global RNG (seed it with ``torch.manual_seed``).
  With p = 1 and n <= K every instance is masked and the branch pools to zeros (the reference code's -1e9
  would give uniform weights instead).

Loss (all weights 1 in the paper's code): ``L = CE(slide) + mean_m CE(branch m) + diversity`` where
diversity is the mean over branch pairs of the cosine similarity of their (masked) softmax attention;
:meth:`ACMIL.losses` returns the three terms separately; the branch term is 0 for M = 1.
Defaults M=5, K=10, p=0.6 are the paper's README command; M=1, K=0 gives ACMIL-style ABMIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from pathattn.kernels import masked_softmax
from pathattn.models.layers import AttentionScorer
from pathattn.models.layers.attention import dropout_active, pool_logits
from pathattn.models.mil.base import MILModel, MILOutput, instance_encoder, linear_head_terms
from pathattn.registry import register_model

if TYPE_CHECKING:
    from pathattn.models.mil.base import InstanceTerms


class ACMIL(MILModel):
    """Multiple-branch gated attention MIL with stochastic top-K instance masking.

    Args:
        in_dim: D, the size of an instance feature vector.
        n_classes: C, the number of bag logits.
        embed_dim: L, the size of an instance embedding (bias-free ``Linear + ReLU``, as in ACMIL).
        attn_dim: the attention's hidden size.
        n_branches: M, the number of attention branches.
        top_k: K, how many of each branch's highest logits are candidates for masking (0: no masking).
        mask_prob: p in [0, 1], the fraction of the top-K that is masked.
        dropout: dropout probability after the embedding and in the attention gates (ACMIL uses 0).
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int = 2,
        *,
        embed_dim: int = 512,
        attn_dim: int = 128,
        n_branches: int = 5,
        top_k: int = 10,
        mask_prob: float = 0.6,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(in_dim, n_classes)
        if top_k < 0 or not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"top_k must be >= 0 and mask_prob in [0, 1], got {top_k} and {mask_prob}")
        self.top_k = top_k
        self.mask_prob = mask_prob
        self.encoder = instance_encoder(in_dim, embed_dim, bias=False, dropout=dropout)
        self.attention = AttentionScorer(embed_dim, attn_dim, n_branches, gated=True, dropout=dropout)
        self.branch_heads = nn.ModuleList(nn.Linear(embed_dim, n_classes) for _ in range(n_branches))
        self.slide_head = nn.Linear(embed_dim, n_classes)

    def forward(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> MILOutput:
        """Slide logits, branch logits and raw branch attention.

        Encoder, attention and pooling run as one fused op where no dropout is active
        (:meth:`~pathattn.models.layers.AttentionScorer.pool`), with STKIM's choice as a per-branch mask; choosing
        needs the logits, so masking runs the network once more, without gradients.

        Args:
            features: (B, N, D) instance features.
            mask: (B, N) True for real instances; None when no bag is padded.
            generator: RNG for the masking (training only); None: torch's global RNG.

        Returns:
            logits: (B, C) slide logits; attention: (B, N, M) raw logits, -inf at padding and at masked
            instances; extras ``branch_logits`` (B, M, C) and ``masked`` (B, N, M) bool (STKIM's choice).
        """
        features, mask = self.prepare(features, mask)
        if self.training and self.top_k > 0 and self.mask_prob > 0:
            pooled, attention, masked = self.masked_pool(features, mask, generator)
        else:
            pooled, attention = self.attention.pool(features, mask, self.encoder)
            masked = torch.zeros_like(attention, dtype=torch.bool)
        branch_logits = torch.stack([head(pooled[:, m]) for m, head in enumerate(self.branch_heads)], dim=1)
        slide_embedding = pooled.mean(dim=1)  # pooling with the branches' mean softmax = the mean of the poolings
        extras = {"branch_logits": branch_logits, "masked": masked}
        return MILOutput(self.slide_head(slide_embedding), attention, extras)

    def masked_pool(
        self, features: torch.Tensor, mask: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """STKIM: choose the instances to drop from the branches' logits, then pool without them.

        Args:
            features: (B, N, D) instance features (padding zeroed).
            mask: (B, N) True for real instances, or None.
            generator: RNG for the choice, or None.

        Returns:
            pooled: (B, M, L), attention: (B, N, M) raw logits with -inf at padding and masked instances, and
            masked: (B, N, M) bool.
        """
        keep = torch.ones_like(features[..., 0], dtype=torch.bool) if mask is None else mask
        if dropout_active(self.encoder, self.attention):  # the choice must see the dropout draw that is pooled
            embeddings = self.encoder(features)
            logits = self.attention(embeddings)
            filled = logits.masked_fill(~keep[..., None], float("-inf"))
            masked = stochastic_topk_mask(filled, self.top_k, self.mask_prob, generator=generator)
            return *pool_logits(logits, embeddings, keep[..., None] & ~masked), masked
        with torch.no_grad():  # fused: the choice needs the logits first, and takes no gradient
            _, attention = self.attention.pool(features, mask, self.encoder)
        masked = stochastic_topk_mask(attention, self.top_k, self.mask_prob, generator=generator)
        return *self.attention.pool(features, keep[..., None] & ~masked, self.encoder), masked

    def instance_terms(self, features: torch.Tensor) -> InstanceTerms:
        """The slide head's terms: its logits pool the branch terms with the mean of the branches' softmax.

        Eval mode (no masking); the branch heads are not part of the bag logits.

        Args:
            features: (N, D) instance features.

        Returns:
            attention (N, M) of the M branches, slide-head contributions (N, C) and its bias (C,).
        """
        embeddings = self.encoder(features[None])[0]
        return linear_head_terms(self.attention(embeddings[None])[0], embeddings, self.slide_head)

    def losses(self, output: MILOutput, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """ACMIL's three loss terms (the paper's code adds them with weight 1).

        Args:
            output: this model's output.
            target: (B,) class indices.

        Returns:
            ``slide``: cross-entropy of the slide logits; ``branch``: cross-entropy of every branch's logits,
            averaged over branches (0 for M = 1); ``diversity``: :func:`attention_diversity`. Scalars.
        """
        branch_logits = output.extras["branch_logits"]
        n_branches = branch_logits.shape[1]
        if n_branches > 1:
            branch = F.cross_entropy(branch_logits.flatten(0, 1), target.repeat_interleave(n_branches))
        else:
            branch = branch_logits.new_zeros(())
        return {
            "slide": F.cross_entropy(output.logits, target),
            "branch": branch,
            "diversity": attention_diversity(output.attention),
        }


def stochastic_topk_mask(
    attention: torch.Tensor, top_k: int, mask_prob: float, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Choose the instances that STKIM masks: ``floor(min(K, n) * p)`` of each branch's top-K raw logits.

    Args:
        attention: (B, N, M) raw logits, -inf at padding (n = the number of finite logits of a bag).
        top_k: K.
        mask_prob: p.
        generator: RNG for the uniform choice among the top-K; None: torch's global RNG.

    Returns:
        masked: (B, N, M) bool, True for the instances to drop (never padding).
    """
    batch, n_instances, n_branches = attention.shape
    n_candidates = torch.isfinite(attention).sum(dim=1).clamp(max=top_k)  # (B, M)
    n_masked = torch.floor(n_candidates.double() * mask_prob).long()  # as int(K * p) in Python
    width = min(top_k, n_instances)
    top = attention.topk(width, dim=1).indices  # (B, width, M), real instances first
    draws = torch.rand((batch, width, n_branches), generator=generator, device=attention.device)
    rank = torch.arange(width, device=attention.device)[None, :, None]
    draws = draws.masked_fill(rank >= n_candidates[:, None, :], 2.0)  # non-candidates sort last
    order = draws.argsort(dim=1).argsort(dim=1)  # rank of each candidate's draw
    chosen = order < n_masked[:, None, :]
    return torch.zeros_like(attention, dtype=torch.bool).scatter(1, top, chosen)


def attention_diversity(attention: torch.Tensor) -> torch.Tensor:
    """ACMIL's diversity loss: mean pairwise cosine similarity of the branches' softmax attention.

    Args:
        attention: (B, N, M) raw logits, -inf at padding and masked instances (those get weight 0, so the
            similarity is over the real, unmasked instances).

    Returns:
        Scalar: the mean over the M(M-1)/2 branch pairs, then over the batch; 0 for M = 1.
    """
    n_branches = attention.shape[-1]
    if n_branches == 1:
        return attention.new_zeros(())
    weights = masked_softmax(attention, torch.isfinite(attention), dim=1)
    unit = F.normalize(weights, dim=1, eps=1e-8)
    similarity = torch.einsum("bnm,bnk->bmk", unit, unit)
    rows, cols = torch.triu_indices(n_branches, n_branches, offset=1, device=attention.device)
    return similarity[:, rows, cols].mean()


@register_model(family="mil")
def acmil(**kwargs: Any) -> ACMIL:
    """ACMIL with the paper's settings: M=5 branches, top-K=10, mask p=0.6, L=512, D=128, no dropout."""
    return ACMIL(**{"n_branches": 5, "top_k": 10, "mask_prob": 0.6, "embed_dim": 512, "attn_dim": 128, **kwargs})
