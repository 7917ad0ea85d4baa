"""ACMIL: stochastic top-K instance masking and the three loss terms, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from pathattn.models.mil import ACMIL, MILOutput, attention_diversity, stochastic_topk_mask
from pathattn.registry import create_model

IN_DIM = 8


def _model(**kwargs) -> ACMIL:
    torch.manual_seed(0)
    return ACMIL(IN_DIM, 2, embed_dim=16, attn_dim=8, **{"n_branches": 3, **kwargs})


def test_registered_defaults():
    model = create_model("acmil", in_dim=IN_DIM)
    assert (len(model.branch_heads), model.top_k, model.mask_prob) == (5, 10, 0.6)
    assert model.encoder[0].bias is None and model.attention.gate is not None


@pytest.mark.parametrize("n_instances", [1, 3, 7, 10, 25])
def test_masks_exactly_floor_k_p_of_the_top_k(n_instances):
    model = _model().train()
    features = torch.randn(1, n_instances, IN_DIM)
    raw = model.eval()(features).attention[0]  # no dropout: the same logits as in training
    output = model.train()(features, generator=torch.Generator().manual_seed(n_instances))
    masked = output.extras["masked"][0]
    assert masked.sum(dim=0).tolist() == [math.floor(min(10, n_instances) * 0.6)] * 3
    top = raw.topk(min(10, n_instances), dim=0).indices
    for branch in range(3):
        assert set(masked[:, branch].nonzero()[:, 0].tolist()) <= set(top[:, branch].tolist())
    assert torch.isneginf(output.attention[0][masked]).all()
    torch.testing.assert_close(output.attention[0][~masked], raw[~masked])
    weights = torch.softmax(output.attention[0], dim=0)
    assert (weights[masked] == 0).all()
    torch.testing.assert_close(weights.sum(dim=0), torch.ones(3))


def test_masking_per_bag_in_a_padded_batch():
    model = _model(top_k=4, mask_prob=0.5).train()
    features = torch.randn(2, 12, IN_DIM)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 3:] = False
    masked = model(features, mask).extras["masked"]
    assert masked.sum(dim=1).tolist() == [[2, 2, 2], [1, 1, 1]]
    assert not masked[1, 3:].any()


def test_never_masks_in_eval_or_without_top_k():
    features = torch.randn(2, 30, IN_DIM)
    for model in (_model().eval(), _model(top_k=0).train(), _model(mask_prob=0.0).train()):
        output = model(features)
        assert not output.extras["masked"].any() and torch.isfinite(output.attention).all()


def test_mask_choice_is_uniform_and_reproducible():
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])[..., None]  # (1, 6, 1): top-4 = 0..3
    generator = torch.Generator().manual_seed(0)
    counts = sum(stochastic_topk_mask(logits, 4, 0.5, generator=generator)[0, :, 0].long() for _ in range(4000))
    assert counts[4:].sum() == 0 and counts.sum() == 8000
    assert (counts[:4].float() / 4000 - 0.5).abs().max() < 0.05
    first = stochastic_topk_mask(logits, 4, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, stochastic_topk_mask(logits, 4, 0.5, generator=torch.Generator().manual_seed(3)))


def test_forward_matches_hand_computation():
    model = _model().eval()
    features = torch.randn(1, 6, IN_DIM)
    output = model(features)
    h = torch.relu(features[0] @ model.encoder[0].weight.T)
    gate = torch.tanh(model.attention.tanh[0](h)) * torch.sigmoid(model.attention.gate[0](h))
    logits = gate @ model.attention.score.weight.T + model.attention.score.bias  # (N, M)
    alpha = torch.softmax(logits, dim=0)
    branch = torch.stack([model.branch_heads[m](alpha[:, m] @ h) for m in range(3)])
    slide = model.slide_head(alpha.mean(dim=1) @ h)
    torch.testing.assert_close(output.attention[0], logits)
    torch.testing.assert_close(output.extras["branch_logits"][0], branch)
    torch.testing.assert_close(output.logits[0], slide)


def test_losses_against_hand_computed_values():
    log3 = math.log(3.0)
    attention = torch.tensor([[[0.0, log3, 0.0], [0.0, 0.0, float("-inf")]]])  # (1, N=2, M=3)
    branch_logits = torch.tensor([[[0.0, 0.0], [log3, 0.0], [0.0, log3]]])
    output = MILOutput(torch.tensor([[math.log(2.0), 0.0]]), attention, {"branch_logits": branch_logits})
    losses = _model().losses(output, torch.tensor([0]))
    # branch attentions: (1/2, 1/2), (3/4, 1/4), (1, 0)
    diversity = (2 / math.sqrt(5) + 1 / math.sqrt(2) + 3 / math.sqrt(10)) / 3
    branch = (math.log(2.0) - math.log(3 / 4) - math.log(1 / 4)) / 3
    torch.testing.assert_close(losses["slide"], torch.tensor(-math.log(2 / 3)))
    torch.testing.assert_close(losses["branch"], torch.tensor(branch))
    torch.testing.assert_close(losses["diversity"], torch.tensor(diversity))


def test_single_branch_has_no_branch_or_diversity_loss():
    model = _model(n_branches=1)
    output = model(torch.randn(2, 5, IN_DIM))
    losses = model.losses(output, torch.tensor([0, 1]))
    assert losses["branch"] == 0 and losses["diversity"] == 0
    torch.testing.assert_close(losses["slide"], F.cross_entropy(output.logits, torch.tensor([0, 1])))


def test_diversity_ignores_padding_and_is_a_cosine():
    attention = torch.randn(3, 9, 4)
    value = attention_diversity(attention)
    assert -1 <= value <= 1
    padded = torch.cat([attention, torch.full((3, 5, 4), float("-inf"))], dim=1)
    torch.testing.assert_close(attention_diversity(padded), value)
    assert attention_diversity(torch.zeros(2, 7, 3)) == pytest.approx(1.0)


def test_losses_backpropagate_through_the_masked_model():
    model = _model().train()
    features, target = torch.randn(2, 20, IN_DIM), torch.tensor([1, 0])
    losses = model.losses(model(features, generator=torch.Generator().manual_seed(0)), target)
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(head.weight.grad.abs().sum() > 0 for head in model.branch_heads)
