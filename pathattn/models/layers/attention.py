"""The attention scorer of attention-MIL (Ilse et al. 2018): raw attention logits per instance.

Plain attention: ``a_i = w^T tanh(V h_i + b_V) + b_w``. Gated attention:
``a_i = w^T [tanh(V h_i + b_V) * sigmoid(U h_i + b_U)] + b_w``. With ``n_out = K > 1`` the last layer has K
rows (ACMIL branches, CLAM-MB classes) that share V and U. Dropout, when set, follows the tanh and the
sigmoid, as in HIPPO's and CLAM's gated attention; a dropout of 0 gives the dropout-free variants (the
original ABMIL, HIPPO's plain attention, ACMIL/AEM). The layer indices (``tanh.0``, ``gate.0``) are
those that the checkpoint adapters map onto.

The scorer returns logits, never weights: pool with :func:`pathattn.kernels.attention_pool`, which gives
padding zero weight.
"""

from __future__ import annotations

import torch
from torch import nn


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
