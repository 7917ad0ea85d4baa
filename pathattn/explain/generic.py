"""The generic back end: counterfactual logits of any MIL network by running it on the perturbed bags.

Every counterfactual bag is a subset of a pool of standardised instances (the slide's patches, then any
donor patches). A batch of subsets is gathered into a padded ``(B, n_max, D)`` tensor with a padding mask,
so the network runs once per batch instead of once per bag (HIPPO's reference loops over bags in Python),
and batches are sized to hold at most ``max_batch_instances`` instance rows. An empty subset is one padded
slot, which the models pool to zeros (logits = the head's bias).
"""

from __future__ import annotations

import torch
from torch import nn


class GenericBackend:
    """Logits of subsets of a pool by running the network.

    Args:
        network: a MIL network in eval mode.
        pool: (P, D) standardised instance features (on the network's device).
        max_batch_instances: instance rows per network call (bounds memory).
    """

    name = "generic"
    threads = None  # network passes: torch's threads

    def __init__(self, network: nn.Module, pool: torch.Tensor, max_batch_instances: int = 65536) -> None:
        if max_batch_instances < 1:
            raise ValueError(f"max_batch_instances must be positive, got {max_batch_instances}")
        self.network = network
        self.pool = pool
        self.max_batch_instances = max_batch_instances

    @property
    def n_pool(self) -> int:
        """P, the number of instances (bag and donors)."""
        return len(self.pool)

    @torch.inference_mode()
    def logits(self, masks: torch.Tensor) -> torch.Tensor:
        """Logits of arbitrary subsets.

        Args:
            masks: (B, P) bool, True for the instances in each bag.

        Returns:
            (B, C) float64 logits (the network's float32 logits, widened).
        """
        masks = masks.to(self.pool.device)
        counts = masks.sum(dim=1)
        width = max(1, int(counts.max())) if len(masks) else 1
        step = max(1, self.max_batch_instances // width)
        parts = [self._run(masks[s : s + step], counts[s : s + step], width) for s in range(0, len(masks), step)]
        return torch.cat(parts).double().cpu() if parts else torch.zeros(0, self.network.n_classes).double()

    def _run(self, masks: torch.Tensor, counts: torch.Tensor, width: int) -> torch.Tensor:
        """One network call on the gathered rows of ``masks`` (b, P), padded to ``width`` slots."""
        index = torch.argsort((~masks).to(torch.int8), dim=1, stable=True)[:, :width]  # members first, in order
        padding = torch.arange(width, device=masks.device)[None] < counts[:, None]
        return self.network(self.pool[index], padding).logits

    def toggle(self, alive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(n, C) logits of ``alive`` (P,) with each of ``candidates`` (n,) flipped (:class:`Backend` contract).

        The flipped bags are built a batch at a time, so that at most ``max_batch_instances`` rows are gathered.
        """
        step = max(1, self.max_batch_instances // (int(alive.sum()) + 1))
        parts = []
        for start in range(0, len(candidates), step):
            chosen = candidates[start : start + step]
            masks = alive.expand(len(chosen), -1).clone()
            masks[torch.arange(len(chosen)), chosen] ^= True
            parts.append(self.logits(masks))
        return torch.cat(parts) if parts else torch.zeros(0, self.network.n_classes).double()
