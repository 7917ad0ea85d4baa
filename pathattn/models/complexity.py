"""Model size: parameters and multiply-accumulates (MACs) of one forward pass, as papers report them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (only those that require gradients with ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass on a zero input of ``input_shape`` (e.g. (1, 3, 224, 224)).

    Counted by torch's :class:`~torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions;
    a MAC is two FLOPs); element-wise operations, pooling and activations are not counted, as in the MACs
    that papers quote.
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(tuple(input_shape), device=device))
    return counter.get_total_flops() // 2
