"""The grid attention gate against the paper's equations with hand-set weights, in 2-D and 3-D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathattn.models.layers.attention_gate import GridAttentionGate


def upsample_2x(coarse: np.ndarray) -> np.ndarray:
    """Bilinear 2x upsampling with align_corners=False, written out: rows of weights over the two neighbours."""
    n = coarse.shape[0]
    source = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, n - 1)
    weights = np.zeros((2 * n, n))
    weights[np.arange(2 * n), low] += 1 - (source - low)
    weights[np.arange(2 * n), high] += source - low
    return weights @ coarse @ weights.T


def test_hand_set_weights_give_the_papers_alpha() -> None:
    gate = GridAttentionGate(2, in_channels=1, gating_channels=1, inter_channels=1).eval()
    with torch.no_grad():
        gate.theta.weight.fill_(0.5)  # W_x: sums each 2 x 2 block of x, halved
        gate.phi.weight.fill_(2.0)
        gate.phi.bias.fill_(-1.0)  # W_g g + b_g
        gate.psi.weight.fill_(1.5)
        gate.psi.bias.fill_(-2.0)  # psi, b_psi
        gate.output[0].weight.fill_(1.0)
        gate.output[0].bias.zero_()  # W: identity (the batch norm at its initial statistics)
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) / 8 - 1
    g = torch.tensor([[[[0.2, -0.4], [0.9, 0.1]]]])
    y, alpha = gate(x, g)

    blocks = x[0, 0].numpy().reshape(2, 2, 2, 2).sum(axis=(1, 3)) * 0.5  # theta_x on g's grid
    q = 1.5 * np.maximum(blocks + 2.0 * g[0, 0].numpy() - 1.0, 0) - 2.0  # psi^T ReLU(theta_x + phi_g) + b_psi
    expected = upsample_2x(1 / (1 + np.exp(-q)))
    np.testing.assert_allclose(alpha[0, 0].detach().numpy(), expected, rtol=1e-6, atol=1e-7)
    scale = 1 / np.sqrt(1 + gate.output[1].eps)
    np.testing.assert_allclose(y[0, 0].detach().numpy(), expected * x[0, 0].numpy() * scale, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("dims", "x_size", "g_size"), [(2, (9, 12), (4, 6)), (3, (8, 10, 6), (4, 5, 3)),
                                                       (3, (8, 8, 8), (2, 2, 2))])  # fmt: skip
def test_shapes_range_and_gradients(dims: int, x_size: tuple[int, ...], g_size: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    gate = GridAttentionGate(dims, in_channels=6, gating_channels=10)
    x = torch.randn(2, 6, *x_size, requires_grad=True)
    g = torch.randn(2, 10, *g_size, requires_grad=True)
    y, alpha = gate(x, g)
    assert y.shape == x.shape and alpha.shape == (2, 1, *x_size)
    assert 0 < alpha.min() and alpha.max() < 1
    (y.square().sum() + alpha.sum()).backward()
    assert x.grad.abs().sum() > 0 and g.grad.abs().sum() > 0  # gradients reach both inputs
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gate.parameters())


def test_bad_spatial_dims() -> None:
    with pytest.raises(ValueError, match="spatial_dims 1: use 2 or 3"):
        GridAttentionGate(1, 4, 4)  # type: ignore[arg-type]
