"""Shared by the model tests: CLAM-SB's forward restated from the paper, on tensors named as CLAM names them."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
import torch

ClamForward = Callable[[Mapping[str, torch.Tensor], torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def clam_sb_forward(weights: Mapping[str, torch.Tensor], features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CLAM-SB's eval forward from the paper's formulas: fc + ReLU, gated attention, softmax pooling, classifier.

    Args:
        weights: a CLAM-SB state dict (``attention_net.0``, ``attention_net.{2 or 3}.attention_{a,b,c}``,
            ``classifiers``).
        features: (N, D) one bag.

    Returns:
        logits (1, C) and raw attention (N, 1).
    """
    net = next(f"attention_net.{i}" for i in (3, 2) if f"attention_net.{i}.attention_a.0.weight" in weights)
    h = torch.relu(features @ weights["attention_net.0.weight"].T + weights["attention_net.0.bias"])
    a = torch.tanh(h @ weights[f"{net}.attention_a.0.weight"].T + weights[f"{net}.attention_a.0.bias"])
    b = torch.sigmoid(h @ weights[f"{net}.attention_b.0.weight"].T + weights[f"{net}.attention_b.0.bias"])
    raw = (a * b) @ weights[f"{net}.attention_c.weight"].T + weights[f"{net}.attention_c.bias"]
    pooled = torch.softmax(raw, dim=0).T @ h
    return pooled @ weights["classifiers.weight"].T + weights["classifiers.bias"], raw


@pytest.fixture
def clam_forward() -> ClamForward:
    """:func:`clam_sb_forward`, for the tests to call."""
    return clam_sb_forward
