"""Survival: time bins, discrete-time NLL and Cox partial likelihood against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.models.survival import risk_from_hazards
from pathattn.train.survival import assign_bins, cox_ph_loss, discretize_times, nll_discrete_survival

LOG2 = math.log(2.0)


def test_discretize_quantiles_of_event_times():
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 0.5])
    events = np.array([1, 1, 1, 1, 1, 0, 0])  # censored times do not move the edges
    edges, index = discretize_times(times, events, n_bins=4)
    np.testing.assert_allclose(edges, [0.0, 2.0, 3.0, 4.0, np.inf])
    assert index.tolist() == [0, 1, 2, 3, 3, 3, 0]  # half-open bins: 2.0 falls in [2, 3)
    assert index.dtype == np.int64
    assert assign_bins(torch.tensor([0.0, 2.5, 1e9]), edges).tolist() == [0, 1, 3]


def test_discretize_errors():
    with pytest.raises(PathattnError, match="no event"):
        discretize_times([1.0, 2.0], [0, 0])
    with pytest.raises(PathattnError, match="use fewer bins"):
        discretize_times([1.0, 1.0, 1.0, 1.0, 2.0], [1, 1, 1, 1, 1], n_bins=4)


def test_nll_all_zero_logits_hand_computed():
    # h = 0.5 in every bin: S_k = 0.5 ** (k + 1)
    logits = torch.zeros(4, 3)
    bins = torch.tensor([0, 1, 1, 2])
    event = torch.tensor([1, 1, 0, 0])
    losses = nll_discrete_survival(logits, bins, event, reduction="none")
    # event in bin 0: -log h0; event in bin 1: -log S0 - log h1; censored in bin 1: -log S1; in bin 2: -log S2
    torch.testing.assert_close(losses, torch.tensor([1.0, 2.0, 2.0, 3.0]) * LOG2)
    assert nll_discrete_survival(logits, bins, event).item() == pytest.approx(2.0 * LOG2)
    assert nll_discrete_survival(logits, bins, event, reduction="sum").item() == pytest.approx(8.0 * LOG2)


def test_nll_general_logits_and_alpha():
    logits = torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64)
    h = torch.sigmoid(logits)[0].tolist()
    s0, s1 = 1 - h[0], (1 - h[0]) * (1 - h[1])
    uncensored = -math.log(s0) - math.log(h[1])  # event in bin 1
    censored = -math.log(s1)  # censored in bin 1
    bins = torch.tensor([1])
    assert nll_discrete_survival(logits, bins, torch.tensor([1])).item() == pytest.approx(uncensored)
    assert nll_discrete_survival(logits, bins, torch.tensor([0])).item() == pytest.approx(censored)
    # alpha re-weights: uncensored keeps weight 1, censored gets (1 - alpha)
    both = nll_discrete_survival(logits.repeat(2, 1), bins.repeat(2), torch.tensor([1, 0]), alpha=0.4, reduction="sum")
    assert both.item() == pytest.approx(uncensored + 0.6 * censored)


def test_nll_gradient_finite_for_extreme_logits():
    logits = torch.tensor([[60.0, -60.0, 0.0], [-80.0, 80.0, 30.0]], requires_grad=True)
    loss = nll_discrete_survival(logits, torch.tensor([2, 1]), torch.tensor([1, 0]), alpha=0.15)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_nll_checks_shapes():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        nll_discrete_survival(torch.zeros(2, 3), torch.tensor([0, 3]), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="alpha"):
        nll_discrete_survival(torch.zeros(2, 3), torch.tensor([0, 1]), torch.tensor([1, 1]), alpha=2.0)


def test_risk_ordering():
    low, high = torch.full((1, 4), -3.0), torch.full((1, 4), 3.0)
    risk = risk_from_hazards(torch.cat([low, torch.zeros(1, 4), high]))
    assert risk.shape == (3,)
    assert risk[0] < risk[1] < risk[2]
    assert risk[1].item() == pytest.approx(-(0.5 + 0.25 + 0.125 + 0.0625))
    # a higher hazard in one bin only still raises the risk
    bumped = torch.zeros(1, 4)
    bumped[0, 2] = 2.0
    assert risk_from_hazards(bumped) > risk[1]


def brute_force_cox(risk, time, event) -> float:
    total, n_events = 0.0, 0
    for i in range(len(risk)):
        if event[i]:
            denominator = sum(math.exp(risk[j]) for j in range(len(risk)) if time[j] >= time[i])
            total += risk[i] - math.log(denominator)
            n_events += 1
    return -total / n_events


def test_cox_hand_computed_with_ties():
    time = torch.tensor([1.0, 2.0, 2.0, 3.0])
    event = torch.tensor([1, 1, 1, 0])
    # zero risks: risk sets of sizes 4, 3, 3 (Breslow: both tied events see both tied bags)
    assert cox_ph_loss(torch.zeros(4), time, event).item() == pytest.approx((math.log(4) + 2 * math.log(3)) / 3)
    a, b, c, d = 0.5, -1.0, 2.0, 0.3
    expected = (
        -(
            a
            - math.log(math.exp(a) + math.exp(b) + math.exp(c) + math.exp(d))
            + b
            + c
            - 2 * math.log(math.exp(b) + math.exp(c) + math.exp(d))
        )
        / 3
    )
    assert cox_ph_loss(torch.tensor([a, b, c, d]), time, event).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_cox_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=12)
    time = rng.integers(1, 6, 12).astype(float)  # many ties
    event = rng.integers(0, 2, 12)
    event[0] = 1
    loss = cox_ph_loss(torch.tensor(risk), torch.tensor(time), torch.tensor(event))
    assert loss.item() == pytest.approx(brute_force_cox(risk, time, event), rel=1e-10)


def test_cox_gradient_and_no_event_batch():
    risk = torch.tensor([[0.2], [1.5], [-0.7]], requires_grad=True)  # (B, 1) accepted
    loss = cox_ph_loss(risk, torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 1, 1]))
    loss.backward()
    assert torch.isfinite(risk.grad).all() and risk.grad.abs().sum() > 0
    risk.grad = None
    zero = cox_ph_loss(risk, torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 0, 0]))
    zero.backward()
    assert zero.item() == 0.0 and torch.equal(risk.grad, torch.zeros_like(risk))


def test_cox_prefers_correct_ordering():
    time = torch.tensor([1.0, 2.0, 3.0, 4.0])
    event = torch.ones(4)
    assert cox_ph_loss(-time, time, event) < cox_ph_loss(time, time, event)
