"""The pure-torch reference ops, against float64 hand computations."""

import torch

from pathattn.kernels import attention_pool, masked_softmax


def test_masked_softmax_matches_softmax_on_real_instances():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, dtype=torch.float64)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [0] * 7], dtype=torch.bool)
    weights = masked_softmax(logits, mask)
    torch.testing.assert_close(weights[0], torch.softmax(logits[0], 0))
    torch.testing.assert_close(weights[1, :4], torch.softmax(logits[1, :4], 0))
    assert weights[1, 4:].abs().max() == 0 and weights[2].abs().max() == 0


def test_attention_pool_is_padding_invariant_with_gradients():
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 2, dtype=torch.float64, requires_grad=True)
    values = torch.randn(1, 5, 3, dtype=torch.float64)
    pooled, weights = attention_pool(logits[:, :3], values[:, :3])
    padded, _ = attention_pool(logits, values, torch.tensor([[1, 1, 1, 0, 0]], dtype=torch.bool))
    torch.testing.assert_close(pooled, padded)
    expected = torch.einsum("nh,nd->hd", torch.softmax(logits[0, :3], 0), values[0, :3])
    torch.testing.assert_close(pooled[0], expected)
    padded.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 3:].abs().max() == 0
