"""Captum attributions per patch: integrated gradients' completeness and feature ablation against direct passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathattn.explain.attributions import patch_attributions
from pathattn.explain.engine import Explainer
from pathattn.explain.model import Scoring
from pathattn.models.trained import TrainedModel
from pathattn.registry import create_model


@pytest.fixture
def setup():
    torch.manual_seed(0)
    network = create_model("abmil", in_dim=8, n_classes=2, embed_dim=16, attn_dim=8)
    model = TrainedModel(network, feature_mean=torch.randn(8), feature_std=torch.rand(8) + 0.5)
    features = torch.randn(25, 8) * 2
    return Explainer(model, features), Scoring(model, "log_odds", class_index=1)


def value(explainer: Explainer, scoring: Scoring, bag: torch.Tensor) -> float:
    with torch.no_grad():
        return float(scoring.values(explainer.model.network(bag[None]).logits)[0])


def test_integrated_gradients_add_up_to_the_change_from_the_baseline(setup):
    explainer, scoring = setup
    scores, delta = patch_attributions(explainer, scoring, "integrated_gradients", n_steps=64)
    bag = explainer.pool[:25].clone()
    total = value(explainer, scoring, bag) - value(explainer, scoring, torch.zeros_like(bag))
    assert scores.shape == (25,)
    assert abs(scores.sum() - total) <= max(delta, 1e-4) + 1e-6
    assert delta < 1e-2


def test_feature_ablation_sets_one_patch_to_the_baseline(setup):
    explainer, scoring = setup
    scores, _ = patch_attributions(explainer, scoring, "feature_ablation", max_batch_instances=100)
    bag = explainer.pool[:25].clone()
    whole = value(explainer, scoring, bag)
    for i in (0, 11, 24):
        ablated = bag.clone()
        ablated[i] = 0.0
        assert scores[i] == pytest.approx(whole - value(explainer, scoring, ablated), abs=1e-5)
    assert np.isfinite(scores).all()
