"""The attention scorer of attention-MIL (Ilse et al. 2018): raw attention logits per instance.

Plain attention: ``a_i = w^T tanh(V h_i + b_V) + b_w``. Gated attention:
``a_i = w^T [tanh(V h_i + b_V) * sigmoid(U h_i + b_U)] + b_w``. With ``n_out = K > 1`` the last layer has K
rows (ACMIL branches, CLAM-MB classes) that share V and U. Dropout, when set, follows the tanh and the
sigmoid, as in HIPPO's and CLAM's gated attention; a dropout of 0 gives the dropout-free variants (the
original ABMIL, HIPPO's plain attention, ACMIL/AEM). The layer indices (``tanh.0``, ``gate.0``) are
those that the checkpoint adapters map onto.

The scorer returns logits, never weights. :meth:`AttentionScorer.pool` scores and pools in one call: with no
dropout active (eval mode, or p = 0) it runs the fused :func:`pathattn.kernels.abmil_pool` (Triton on a GPU, the
torch reference on the CPU; the fused op has no dropout), otherwise these modules and a masked softmax, which
gives padding zero weight.
"""

from __future__ import annotations

import torch
from torch import nn

from pathattn.kernels import ABMILWeights, abmil_pool, masked_softmax


class AttentionScorer(nn.Module):
    """Raw (pre-softmax) attention logits of every instance.

    Args:
        in_dim: L, the size of an instance embedding.
        hidden: D, the size of the attention's hidden layer.
        n_out: K, the number of attention rows (branches or classes).
        gated: multiply the tanh branch by a sigmoid gate (gated attention).
        dropout: dropout probability after the tanh and after the sigmoid.
    """

    def __init__(self, in_dim: int, hidden: int, n_out: int = 1, gated: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if min(in_dim, hidden, n_out) < 1:
            raise ValueError(f"in_dim, hidden and n_out must be positive, got {in_dim}, {hidden}, {n_out}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.tanh = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.gate = nn.Sequential(nn.Linear(in_dim, hidden), nn.Sigmoid(), nn.Dropout(dropout)) if gated else None
        self.score = nn.Linear(hidden, n_out)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Score every instance.

        Args:
            embeddings: (B, N, L) instance embeddings.

        Returns:
            logits: (B, N, K) raw attention logits.
        """
        hidden = self.tanh(embeddings)
        if self.gate is not None:
            hidden = hidden * self.gate(embeddings)
        return self.score(hidden)

    def weights(self, encoder: nn.Sequential | None = None) -> ABMILWeights:
        """This scorer's parameters (and ``encoder``'s, a ``Linear -> ReLU [-> Dropout]``) for the fused op."""
        tanh, gate = self.tanh[0], None if self.gate is None else self.gate[0]
        embed = None if encoder is None else encoder[0]
        return ABMILWeights(
            tanh.weight,
            tanh.bias,
            self.score.weight,
            self.score.bias,
            None if gate is None else gate.weight,
            None if gate is None else gate.bias,
            None if embed is None else embed.weight,
            None if embed is None else embed.bias,
        )

    def pool(
        self, features: torch.Tensor, mask: torch.Tensor | None = None, encoder: nn.Sequential | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Score and attention-pool padded bags, fused where no dropout is active (module docstring).

        Args:
            features: (B, N, L) instance embeddings, or (B, N, D) features when ``encoder`` is given.
            mask: (B, N) True for the instances that are pooled, or (B, N, K) per head; None: all.
            encoder: the instance encoder ``Linear -> ReLU -> Dropout`` run first, or None.

        Returns:
            pooled: (B, K, L) per-head bag embeddings, and logits: (B, N, K) raw attention, -inf where ``mask`` is
            False.
        """
        if not dropout_active(self, *([] if encoder is None else [encoder])):
            return abmil_pool(features, self.weights(encoder), mask=mask)
        embeddings = features if encoder is None else encoder(features)
        return pool_logits(self(embeddings), embeddings, mask)


def pool_logits(
    logits: torch.Tensor, embeddings: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax-attention pooling of given logits (the unfused path of :meth:`AttentionScorer.pool`).

    Args:
        logits: (B, N, K) raw attention logits.
        embeddings: (B, N, L) instance embeddings.
        mask: (B, N) or (B, N, K) True for the instances that are pooled; None: all.

    Returns:
        pooled: (B, K, L), and the logits (B, N, K) with -inf where ``mask`` is False.
    """
    keep = None if mask is None else (mask if mask.ndim == 3 else mask[..., None]).expand_as(logits)
    pooled = torch.einsum("bnk,bnl->bkl", masked_softmax(logits, keep, dim=1), embeddings)
    return pooled, logits if keep is None else logits.masked_fill(~keep, float("-inf"))


def dropout_active(*modules: nn.Module) -> bool:
    """Whether a dropout layer of ``modules`` drops anything now (training mode and p > 0)."""
    return any(isinstance(m, nn.Dropout) and m.training and m.p > 0 for module in modules for m in module.modules())
