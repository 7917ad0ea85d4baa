"""Greedy search against hippo-nn's ``greedy_search`` (BSD-3, a test-only dependency) on seeded models.

Both back ends, all three optimizers, a non-saturated and a saturated prediction (p exactly 1.0 in float32,
where the reference's ties decide). The reference's defects (constant features only in the baseline row,
scoring an empty bag) appear in the compatibility mode and nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.explain.engine import Explainer
from pathattn.explain.hippo_compat import hippo_greedy_search
from pathattn.explain.model import Scoring
from pathattn.models.mil import abmil_from_hippo
from pathattn.models.trained import TrainedModel

hippo = pytest.importorskip("hippo")

OPTIMIZERS = ("minimize", "maximize", "smallest_difference")
BACKENDS = ("cached", "generic")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_model(seed: int, log_odds: float | None = None) -> tuple[torch.nn.Module, torch.Tensor]:
    """A seeded HIPPO ABMIL and a bag of 60 patches; with ``log_odds``, a sharp head shifted to that baseline."""
    torch.manual_seed(seed)
    model = hippo.AttentionMILModel(in_features=32, L=16, D=8, num_classes=2).eval()
    features = torch.randn(60, 32)
    if log_odds is not None:
        with torch.no_grad():
            model.head.weight.mul_(8.0)
            logits = model(features).logits[0]
            model.head.bias[1] += log_odds - float(logits[1] - logits[0])
    return model, features


def run_reference(model, features, optimizer: str, rounds: int | None, constants=None) -> dict:
    return hippo.greedy_search(
        features=features,
        model_probs_fn=lambda x: torch.softmax(model(x).logits, dim=-1)[0],
        output_index_to_optimize=1,
        optimizer=getattr(hippo, optimizer),
        num_rounds=rounds,
        constant_features=constants,
        disable_progbar=True,
    )


def assert_same(found: dict, expected: dict) -> None:
    assert set(found) == set(expected)
    assert found["optimized_class_index"] == expected["optimized_class_index"]
    np.testing.assert_array_equal(found["ablated_patches"], expected["ablated_patches"])
    np.testing.assert_allclose(found["model_outputs"], expected["model_outputs"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_same_order_and_outputs_as_the_reference(optimizer, backend):
    model, features = reference_model(seed=0)
    expected = run_reference(model, features, optimizer, rounds=10)
    explainer = Explainer(TrainedModel(abmil_from_hippo(model.state_dict())), features, backend=backend)
    assert explainer.backend.name == backend
    assert_same(hippo_greedy_search(explainer, 1, optimizer, 10), expected)
    ours = explainer.greedy_remove(Scoring(explainer.model, "prob"), optimizer=optimizer, rounds=10)
    np.testing.assert_array_equal(ours.order, expected["ablated_patches"])  # no ties: the default mode agrees
    np.testing.assert_allclose(ours.outputs, expected["model_outputs"], atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_saturated_prediction_reproduces_the_reference_ties_in_compat_mode(optimizer, backend):
    model, features = reference_model(seed=0, log_odds=16.8)
    expected = run_reference(model, features, optimizer, rounds=20)
    saturated = expected["model_outputs"][:, 1] == 1.0
    assert saturated[0] and saturated.sum() >= 6, "the case must start saturated"
    explainer = Explainer(TrainedModel(abmil_from_hippo(model.state_dict())), features, backend=backend)
    assert_same(hippo_greedy_search(explainer, 1, optimizer, 20), expected)


def test_default_log_odds_orders_saturated_candidates_by_their_effect():
    model, features = reference_model(seed=0, log_odds=16.8)
    expected = run_reference(model, features, "minimize", rounds=5)
    np.testing.assert_array_equal(expected["ablated_patches"], np.arange(5))  # ties: index order
    explainer = Explainer(TrainedModel(abmil_from_hippo(model.state_dict())), features)
    scoring = Scoring(explainer.model)  # log-odds, float64
    found = explainer.greedy_remove(scoring, rounds=5)
    single = scoring.values(explainer.leave_one_out())
    assert found.order[0] == int(single.argmin()) != 0
    assert not np.array_equal(found.order, expected["ablated_patches"])
    assert np.all(np.diff(found.values) < 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_features_only_in_the_baseline_row_in_compat_mode(backend):
    model, features = reference_model(seed=1)
    constants = torch.randn(5, 32)
    expected = run_reference(model, features, "minimize", rounds=4, constants=constants)
    network = TrainedModel(abmil_from_hippo(model.state_dict()))
    explainer = Explainer(network, features, donors=constants, backend=backend)
    assert_same(hippo_greedy_search(explainer, 1, "minimize", 4, constant_features=True), expected)

    fixed = explainer.greedy_remove(Scoring(network, "prob"), rounds=4, always=np.arange(5))
    with torch.no_grad():
        for step in range(5):
            kept = np.setdiff1d(np.arange(60), fixed.order[:step])
            bag = torch.cat([features[kept], constants])
            direct = torch.softmax(model(bag).logits, dim=-1)[0].numpy()
            np.testing.assert_allclose(fixed.outputs[step], direct, atol=1e-6)
    assert np.abs(fixed.outputs[1:] - expected["model_outputs"][1:]).max() > 1e-3  # the defect is not reproduced


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_bag_only_in_compat_mode(backend):
    model, features = reference_model(seed=2)
    features = features[:6]
    expected = run_reference(model, features, "minimize", rounds=6)
    explainer = Explainer(TrainedModel(abmil_from_hippo(model.state_dict())), features, backend=backend)
    found = hippo_greedy_search(explainer, 1, "minimize", 6)
    assert_same(found, expected)
    np.testing.assert_allclose(found["model_outputs"][-1], torch.softmax(model.head.bias, 0).detach(), atol=1e-6)
    with pytest.raises(PathattnError, match="empty the bag"):
        explainer.greedy_remove(Scoring(explainer.model), rounds=6)
    assert len(explainer.greedy_remove(Scoring(explainer.model)).order) == 5  # default: all but one


def test_num_rounds_zero_means_all_but_one_like_the_reference():
    model, features = reference_model(seed=3)
    features = features[:8]
    expected = run_reference(model, features, "maximize", rounds=0)
    explainer = Explainer(TrainedModel(abmil_from_hippo(model.state_dict())), features)
    assert_same(hippo_greedy_search(explainer, 1, "maximize", 0), expected)
    assert len(expected["ablated_patches"]) == 7
    with pytest.raises(PathattnError, match="num_rounds"):
        hippo_greedy_search(explainer, 1, "maximize", 9)
