"""The counterfactual engine: both back ends against direct forward passes, back-end choice and bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.explain.cached import CachedBackend
from pathattn.explain.engine import BackendFallbackWarning, Explainer
from pathattn.explain.model import Scoring
from pathattn.models.mil.abmil import ABMIL
from pathattn.models.mil.base import InstanceTerms, MILOutput
from pathattn.models.trained import TrainedModel
from pathattn.registry import create_model

DIM = 12
SEPARABLE = ("abmil", "abmil_plain", "abmil_acmil_style", "clam_sb", "acmil", "mean_pool")


def explained(name: str, seed: int = 0, n_classes: int = 3) -> TrainedModel:
    torch.manual_seed(seed)
    network = create_model(name, in_dim=DIM, n_classes=n_classes, embed_dim=16)
    mean, std = torch.randn(DIM), torch.rand(DIM) + 0.5
    return TrainedModel(network, class_names=tuple("abc"[:n_classes]), feature_mean=mean, feature_std=std)


def direct(model: TrainedModel, features: torch.Tensor) -> torch.Tensor:
    """Logits of a bag of raw features by the network itself (standardised here)."""
    with torch.no_grad():
        return model.network(model.normalize(features)[None]).logits[0].double()


@pytest.fixture
def bag() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(40, DIM, generator=generator) * 3, torch.randn(6, DIM, generator=generator) * 3


@pytest.mark.parametrize("name", SEPARABLE)
@pytest.mark.parametrize("backend", ["cached", "generic"])
def test_interventions_equal_forward_passes(name, backend, bag):
    features, donors = bag
    model = explained(name)
    explainer = Explainer(model, features, donors=donors, backend=backend)
    assert explainer.backend.name == backend
    torch.testing.assert_close(explainer.logits(), direct(model, features), atol=1e-5, rtol=0)
    removed = explainer.remove([3, 7, 30])
    torch.testing.assert_close(removed.after, direct(model, features[np.setdiff1d(range(40), [3, 7, 30])]),
                               atol=1e-5, rtol=0)  # fmt: skip
    torch.testing.assert_close(explainer.keep([1, 2]).after, direct(model, features[[1, 2]]), atol=1e-5, rtol=0)
    added = explainer.add([0, 5])
    np.testing.assert_array_equal(added.patches, [40, 45])
    torch.testing.assert_close(added.after, direct(model, torch.cat([features, donors[[0, 5]]])), atol=1e-5, rtol=0)
    single = explainer.leave_one_out()
    for j in (0, 17, 39):
        torch.testing.assert_close(single[j], direct(model, features[np.arange(40) != j]), atol=1e-5, rtol=0)
    sets, logits = explainer.random_removals(5, 3, seed=4)
    for drawn, row in zip(sets, logits, strict=True):
        torch.testing.assert_close(row, direct(model, features[np.setdiff1d(range(40), drawn)]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", SEPARABLE)
def test_both_back_ends_find_the_same_search_paths(name, bag):
    features, donors = bag
    model = explained(name, seed=2)
    scoring = Scoring(model, "log_odds", class_index=2)
    found = {}
    for backend in ("cached", "generic"):
        explainer = Explainer(model, features, donors=donors, backend=backend)
        removal = explainer.greedy_remove(scoring, optimizer="minimize", rounds=6)
        insertion = explainer.greedy_insert(scoring, rounds=4)
        found[backend] = (removal, insertion)
    for cached, generic in zip(found["cached"], found["generic"], strict=True):
        np.testing.assert_array_equal(cached.order, generic.order)
        np.testing.assert_allclose(cached.values, generic.values, atol=1e-5)
    assert np.all(found["cached"][1].order >= 40)  # donors only


@pytest.mark.parametrize("name", ["abmil", "acmil"])
def test_the_torch_and_triton_kernels_give_the_same_explanations(name, bag, monkeypatch):
    """The cached back end's masked_pool (and the models' abmil_pool) on both paths (Triton: the CPU interpreter)."""
    features, donors = bag
    model = explained(name, seed=5)
    scoring = Scoring(model, "prob", class_index=1)
    launchers = importlib.import_module("pathattn.kernels.masked_pool.function")
    calls = []
    removed = launchers.masked_pool_removed
    monkeypatch.setattr(launchers, "masked_pool_removed", lambda *args: calls.append(1) or removed(*args))
    found = {}
    for path in ("torch", "triton"):
        monkeypatch.setenv("PATHATTN_KERNELS", path)
        explainer = Explainer(model, features, donors=donors, backend="cached")
        found[path] = (
            explainer.greedy_remove(scoring, rounds=4),
            explainer.greedy_insert(scoring, rounds=3),
            explainer.random_removals(5, 3, seed=1)[1],
        )
    (removal, insertion, drawn), (removal_t, insertion_t, drawn_t) = found["torch"], found["triton"]
    for ours, theirs in ((removal, removal_t), (insertion, insertion_t)):
        np.testing.assert_array_equal(ours.order, theirs.order)
        np.testing.assert_allclose(ours.values, theirs.values, atol=1e-9)
    torch.testing.assert_close(drawn, drawn_t, atol=1e-9, rtol=0)
    assert len(calls) == 4  # the Triton path ran every removal round


@pytest.mark.parametrize("backend", ["cached", "generic"])
def test_insertion_from_an_empty_bag_builds_the_most_convincing_subset(bag, backend):
    features, _ = bag
    model = explained("acmil", seed=1, n_classes=2)
    scoring = Scoring(model, "log_odds", class_index=1)
    result = Explainer(model, features, backend=backend).greedy_insert(scoring, from_empty=True, rounds=3)
    empty = scoring.values(model.network.slide_head.bias.detach().double()[None])[0]
    assert result.values[0] == pytest.approx(float(empty))
    singles = [float(scoring.values(direct(model, features[[j]])[None])[0]) for j in range(40)]
    assert result.order[0] == int(np.argmax(singles)) and result.values[1] == pytest.approx(max(singles), abs=1e-5)
    kept = features[result.order]
    assert result.values[-1] == pytest.approx(float(scoring.values(direct(model, kept)[None])[0]), abs=1e-5)


def test_greedy_removal_takes_the_best_candidate_every_round(bag):
    features, _ = bag
    model = explained("abmil", seed=3)
    scoring = Scoring(model, "logit", class_index=0)
    result = Explainer(model, features).greedy_remove(scoring, optimizer="maximize", rounds=3)
    kept = list(range(40))
    for chosen in result.order:
        values = [float(direct(model, features[[i for i in kept if i != j]])[0]) for j in kept]
        assert kept[int(np.argmax(values))] == chosen
        kept.remove(chosen)


def test_stop_on_flip_ends_at_the_first_changed_decision(bag):
    features, _ = bag
    model = explained("abmil", seed=4, n_classes=2)
    explainer = Explainer(model, features)
    predicted = int(explainer.logits().argmax())
    scoring = Scoring(model, "log_odds", class_index=predicted)
    full = explainer.greedy_remove(scoring, rounds=39)
    assert full.flipped_at is not None
    stopped = explainer.greedy_remove(scoring, rounds=39, stop_on_flip=True)
    assert len(stopped.order) == full.flipped_at == stopped.flipped_at
    np.testing.assert_array_equal(stopped.order, full.order[: full.flipped_at])
    assert stopped.decisions[-1] != predicted and np.all(stopped.decisions[:-1] == predicted)


def test_cancellation_is_recomputed_exactly():
    """A patch holding all but 1e-20 of the attention: removing it must not lose the rest's digits."""
    attention = torch.tensor([[46.0], [0.0], [0.3], [-0.2]], dtype=torch.float64)
    contributions = torch.tensor([[5.0, -5.0], [1.0, 2.0], [-3.0, 0.5], [2.0, 2.0]], dtype=torch.float64)
    backend = CachedBackend(InstanceTerms(attention, contributions, torch.zeros(2, dtype=torch.float64)))
    alive = torch.ones(4, dtype=torch.bool)
    toggled = backend.toggle(alive, torch.arange(4))
    weights = torch.softmax(attention[1:, 0], 0)
    torch.testing.assert_close(toggled[0], weights @ contributions[1:], atol=1e-12, rtol=0)
    only = torch.tensor([True, False, False, False])
    torch.testing.assert_close(backend.toggle(only, torch.tensor([0]))[0], torch.zeros(2, dtype=torch.float64))


def test_max_pool_falls_back_to_the_generic_back_end_with_a_message(bag):
    features, _ = bag
    model = explained("max_pool")
    with pytest.warns(BackendFallbackWarning, match="MaxPool is not instance-separable"):
        explainer = Explainer(model, features)
    assert explainer.backend.name == "generic" and "fallback" in explainer.backend_note
    torch.testing.assert_close(explainer.remove([0]).after, direct(model, features[1:]), atol=1e-5, rtol=0)
    with pytest.raises(PathattnError, match="cached back end cannot serve"):
        Explainer(model, features, backend="cached")


class ScaledABMIL(ABMIL):
    """An ABMIL whose forward differs from what its layers give: the cached terms must not be trusted."""

    def forward(self, features, mask=None):
        output = super().forward(features, mask)
        return output._replace(logits=output.logits * 2)


def test_a_model_whose_forward_disagrees_with_its_layers_falls_back(bag):
    features, _ = bag
    torch.manual_seed(0)
    model = TrainedModel(ScaledABMIL(DIM, 2, embed_dim=16, attn_dim=8))
    with pytest.warns(BackendFallbackWarning, match="differ from its forward pass"):
        explainer = Explainer(model, features)
    assert explainer.backend.name == "generic"


class TwoHeadTanh(nn.Module):
    """A MIL model written outside pathattn: tanh embedding, two attention heads averaged, a linear head."""

    def __init__(self, in_dim: int, n_classes: int) -> None:
        super().__init__()
        self.in_dim, self.n_classes = in_dim, n_classes
        self.embed, self.score, self.head = nn.Linear(in_dim, 10), nn.Linear(10, 2), nn.Linear(10, n_classes)

    def _embed_and_score(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = torch.tanh(self.embed(features))
        return embeddings, self.score(embeddings)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        embeddings, attention = self._embed_and_score(features)
        if mask is not None:
            attention = attention.masked_fill(~mask[..., None], float("-inf"))
        weights = torch.softmax(attention, dim=1).nan_to_num(0.0)  # an empty bag pools to zeros
        pooled = torch.einsum("bnm,bnl->bml", weights, embeddings).mean(dim=1)
        return MILOutput(self.head(pooled), attention, {})

    def instance_terms(self, features: torch.Tensor) -> InstanceTerms:
        embeddings, attention = self._embed_and_score(features)
        return InstanceTerms(attention, embeddings @ self.head.weight.T, self.head.bias)


class ForwardOnly(nn.Module):
    """A network that only runs forward passes (no ``instance_terms``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.in_dim, self.n_classes = inner, inner.in_dim, inner.n_classes

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> MILOutput:
        return self.inner(features, mask)


def test_a_model_outside_pathattn_with_instance_terms_is_served_by_the_cached_back_end(bag):
    features, donors = bag
    torch.manual_seed(0)
    model = TrainedModel(TwoHeadTanh(DIM, 3))
    explainer = Explainer(model, features, donors=donors)
    assert explainer.backend.name == "cached" and "TwoHeadTanh is instance-separable" in explainer.backend_note
    torch.testing.assert_close(explainer.logits(), direct(model, features), atol=1e-5, rtol=0)
    kept = np.setdiff1d(range(40), [0, 9])
    torch.testing.assert_close(explainer.remove([0, 9]).after, direct(model, features[kept]), atol=1e-5, rtol=0)
    added = explainer.add([1]).after
    torch.testing.assert_close(added, direct(model, torch.cat([features, donors[[1]]])), atol=1e-5, rtol=0)
    single = explainer.leave_one_out()
    torch.testing.assert_close(single[5], direct(model, features[np.arange(40) != 5]), atol=1e-5, rtol=0)
    empty = explainer.evaluate(explainer.mask()[None])[0]
    torch.testing.assert_close(empty, model.network.head.bias.detach().double())


def test_a_model_without_instance_terms_falls_back_with_a_message_naming_the_method(bag):
    features, _ = bag
    torch.manual_seed(0)
    separable = TwoHeadTanh(DIM, 3)
    model = TrainedModel(ForwardOnly(separable))
    with pytest.warns(BackendFallbackWarning, match="ForwardOnly is not instance-separable.* no instance_terms"):
        explainer = Explainer(model, features)
    assert explainer.backend.name == "generic"
    cached = Explainer(TrainedModel(separable), features, backend="cached")
    torch.testing.assert_close(explainer.remove([2, 3]).after, cached.remove([2, 3]).after, atol=1e-5, rtol=0)
    with pytest.raises(PathattnError, match="cannot serve this model: ForwardOnly .* no instance_terms method"):
        Explainer(model, features, backend="cached")


def test_bad_input_gets_clear_errors(bag):
    features, donors = bag
    model = explained("abmil")
    explainer = Explainer(model, features, donors=donors)
    with pytest.raises(PathattnError, match=r"out of range: \[40\]; valid indices are 0 to 39"):
        explainer.remove([2, 40])
    with pytest.raises(PathattnError, match="out of range"):
        explainer.add([6])
    with pytest.raises(PathattnError, match="repeat a patch"):
        explainer.keep([1, 1])
    with pytest.raises(PathattnError, match="empty bag"):
        explainer.remove(range(40))
    with pytest.raises(PathattnError, match="empty"):
        Explainer(model, features[:0])
    with pytest.raises(PathattnError, match=r"shape \(N, 12\)"):
        Explainer(model, features[:, :5])
    with pytest.raises(PathattnError, match="NaN"):
        Explainer(model, features.masked_fill(torch.eye(40, DIM, dtype=torch.bool), float("nan")))
    with pytest.raises(PathattnError, match="class index 3 out of range"):
        Scoring(model, "prob", class_index=3)
    with pytest.raises(PathattnError, match="risk is for survival"):
        Scoring(model, "risk")
    with pytest.raises(PathattnError, match="donor features"):
        Explainer(model, features).greedy_insert(Scoring(model))


def test_standardisation_happens_once(bag):
    features, _ = bag
    model = explained("abmil")
    explainer = Explainer(model, features)
    torch.testing.assert_close(explainer.pool, (features - model.feature_mean) / model.feature_std)
