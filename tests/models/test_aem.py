"""AEM's regulariser is minus the entropy of the attention distribution; the lambda schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical

from pathattn.models.mil import AEMSchedule, attention_entropy_loss
from pathattn.registry import create_model


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of every bag and head of (B, N, K) logits: (B, K)."""
    return Categorical(logits=logits.transpose(1, 2)).entropy()


def test_equals_minus_the_entropy_averaged_over_heads_and_bags():
    torch.manual_seed(0)
    logits = torch.randn(4, 30, 3, dtype=torch.float64) * 3
    torch.testing.assert_close(attention_entropy_loss(logits), -_entropy(logits).mean())
    torch.testing.assert_close(attention_entropy_loss(logits[..., 0]), -_entropy(logits[..., :1]).mean())


@pytest.mark.parametrize("n_instances", [1, 2, 17])
def test_constant_logits_give_minus_log_n(n_instances):
    value = attention_entropy_loss(torch.full((2, n_instances, 1), 4.2, dtype=torch.float64))
    torch.testing.assert_close(value, torch.tensor(-math.log(n_instances), dtype=torch.float64))


def test_shift_invariance():
    logits = torch.randn(3, 10, 2, dtype=torch.float64)
    shift = torch.tensor([-100.0, 0.5, 300.0], dtype=torch.float64)[:, None, None]
    torch.testing.assert_close(attention_entropy_loss(logits + shift), attention_entropy_loss(logits))


def test_masked_and_infinite_instances_are_excluded():
    logits = torch.randn(2, 8, 2, dtype=torch.float64)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    garbage = logits.clone()
    garbage[1, 5:] = 1e30
    expected = -(_entropy(logits[:1]).mean() + _entropy(logits[1:, :5]).mean()) / 2
    torch.testing.assert_close(attention_entropy_loss(garbage, mask), expected)
    torch.testing.assert_close(attention_entropy_loss(logits.masked_fill(~mask[..., None], float("-inf"))), expected)


def test_gradcheck_with_padding():
    logits = torch.randn(2, 6, 2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda a: attention_entropy_loss(a, mask), (logits,))


def test_empty_bag_counts_zero_with_finite_gradient():
    logits = torch.randn(2, 4, 1, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    value = attention_entropy_loss(logits, mask)
    torch.testing.assert_close(value, -_entropy(logits[:1].detach()).mean() / 2)
    value.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].abs().max() == 0


@pytest.mark.parametrize("name", ["abmil", "acmil", "clam_sb", "max_pool"])
def test_works_on_model_outputs(name):
    model = create_model(name, in_dim=8, n_classes=2).eval()
    features, mask = torch.randn(2, 12, 8), torch.ones(2, 12, dtype=torch.bool)
    mask[0, 7:] = False
    output = model(features, mask)
    value = attention_entropy_loss(output.attention)
    torch.testing.assert_close(value, attention_entropy_loss(output.attention, mask))
    assert -math.log(12) <= value.item() <= 0


def test_constant_schedule():
    schedule = AEMSchedule(0.1)
    assert schedule(0) == schedule(10_000) == 0.1


def test_cosine_schedule():
    schedule = AEMSchedule(0.2, anneal="cosine", total_steps=100, final_lambda=0.02)
    assert schedule(0) == pytest.approx(0.2)
    assert schedule(50) == pytest.approx(0.11)
    assert schedule(25) == pytest.approx(0.02 + 0.18 * (1 + math.cos(math.pi / 4)) / 2)
    assert schedule(100) == schedule(500) == pytest.approx(0.02)
    values = [schedule(step) for step in range(101)]
    assert values == sorted(values, reverse=True)


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError, match="total_steps"):
        AEMSchedule(0.1, anneal="cosine")
    with pytest.raises(ValueError, match="anneal"):
        AEMSchedule(0.1, anneal="linear")  # type: ignore[arg-type]
