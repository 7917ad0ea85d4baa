"""Properties every registered MIL model must have: shapes, permutation and padding invariance, gradients."""

from __future__ import annotations

import pytest
import torch

from pathattn.models.mil import InstanceSeparable, MILOutput
from pathattn.registry import create_model, list_models

IN_DIM, N_CLASSES = 16, 3
MIL_MODELS = list_models(family="mil")
NOT_SEPARABLE = {"max_pool"}  # a maximum is no attention-weighted mean


def _model(name: str, train: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, in_dim=IN_DIM, n_classes=N_CLASSES).train(train)


def _pad(bags: list[torch.Tensor], fill: float = float("nan")) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack bags into (B, N_max, D) with garbage padding, and their mask."""
    n_max = max(len(bag) for bag in bags)
    features = torch.full((len(bags), n_max, IN_DIM), fill)
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool)
    for index, bag in enumerate(bags):
        features[index, : len(bag)] = bag
        mask[index, : len(bag)] = True
    return features, mask


def test_every_family_member_is_found():
    assert set(MIL_MODELS) >= {"abmil", "abmil_plain", "abmil_acmil_style", "acmil", "mean_pool", "max_pool", "clam_sb"}


@pytest.mark.parametrize("name", MIL_MODELS)
def test_output_shapes_and_finite(name):
    model = _model(name)
    features = torch.randn(2, 9, IN_DIM)
    output = model(features)
    assert isinstance(output, MILOutput)
    assert output.logits.shape == (2, N_CLASSES)
    assert output.attention.shape[:2] == (2, 9) and output.attention.ndim == 3
    assert torch.isfinite(output.logits).all() and torch.isfinite(output.attention).all()
    assert all(not value.is_floating_point() or torch.isfinite(value).all() for value in output.extras.values())


@pytest.mark.parametrize("name", MIL_MODELS)
def test_rejects_bad_shapes(name):
    model = _model(name)
    with pytest.raises(ValueError, match="features must have shape"):
        model(torch.randn(9, IN_DIM))
    with pytest.raises(ValueError, match="N = 0"):
        model(torch.randn(2, 0, IN_DIM))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(torch.randn(1, 9, IN_DIM), torch.ones(1, 8, dtype=torch.bool))


@pytest.mark.parametrize("name", MIL_MODELS)
def test_permutation_invariance(name):
    model = _model(name)
    torch.manual_seed(1)
    features = torch.randn(1, 50, IN_DIM)
    permutation = torch.randperm(50)
    output, permuted = model(features), model(features[:, permutation])
    torch.testing.assert_close(permuted.logits, output.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted.attention, output.attention[:, permutation], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MIL_MODELS)
@pytest.mark.parametrize("fill", [float("nan"), 1e6])
def test_padding_invariance(name, fill):
    model = _model(name)
    torch.manual_seed(2)
    bag = torch.randn(6, IN_DIM)
    alone = model(bag[None])
    features, mask = _pad([bag, torch.randn(11, IN_DIM)], fill)
    padded = model(features, mask)
    torch.testing.assert_close(padded.logits[0], alone.logits[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded.attention[0, :6], alone.attention[0], atol=1e-5, rtol=1e-5)
    assert torch.isneginf(padded.attention[0, 6:]).all()


@pytest.mark.parametrize("name", MIL_MODELS)
def test_batch_of_different_sizes_equals_each_bag_alone(name):
    model = _model(name)
    torch.manual_seed(3)
    bags = [torch.randn(n, IN_DIM) for n in (1, 7, 30)]
    features, mask = _pad(bags)
    batched = model(features, mask)
    for index, bag in enumerate(bags):
        alone = model(bag[None])
        torch.testing.assert_close(batched.logits[index], alone.logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batched.attention[index, : len(bag)], alone.attention[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", MIL_MODELS)
def test_empty_bag_gives_no_nan(name):
    model = _model(name, train=True)
    features, mask = _pad([torch.randn(5, IN_DIM), torch.randn(3, IN_DIM)])
    mask[1] = False
    output = model(features, mask)
    assert torch.isfinite(output.logits).all()
    assert torch.isneginf(output.attention[1]).all()


@pytest.mark.parametrize("name", MIL_MODELS)
def test_gradient_flows_to_real_instances_only(name):
    model = _model(name, train=True)
    torch.manual_seed(4)
    features, mask = _pad([torch.randn(8, IN_DIM), torch.randn(4, IN_DIM)], fill=0.5)
    features.requires_grad_(True)
    output = model(features, mask)
    output.logits.square().sum().backward()
    assert torch.isfinite(features.grad).all()
    assert features.grad[~mask].abs().max() == 0
    assert features.grad[mask].abs().sum(dim=-1).gt(0).any(dim=0)
    assert model.encoder[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MIL_MODELS)
def test_single_logit_for_risk_scores(name):
    if name.startswith("clam"):  # CLAM's instance classifiers need classes
        with pytest.raises(ValueError, match="n_classes >= 2"):
            create_model(name, in_dim=IN_DIM, n_classes=1)
        return
    output = create_model(name, in_dim=IN_DIM, n_classes=1).eval()(torch.randn(3, 5, IN_DIM))
    assert output.logits.shape == (3, 1)


def test_instance_separable_models_provide_instance_terms():
    separable = {name for name in MIL_MODELS if isinstance(_model(name), InstanceSeparable)}
    assert separable == set(MIL_MODELS) - NOT_SEPARABLE


@pytest.mark.parametrize("name", sorted(set(MIL_MODELS) - NOT_SEPARABLE))
def test_instance_terms_give_the_logits_of_every_subset(name):
    """The protocol's contract: logits(S) = mean_m [sum_S e_im z_i / sum_S e_im] + b; an empty S gives b."""
    model = _model(name)
    torch.manual_seed(5)
    features = torch.randn(9, IN_DIM) * 2
    with torch.no_grad():
        terms = model.instance_terms(features)
        n_heads = terms.attention.shape[1]
        assert terms.contributions.shape == (9, N_CLASSES) and terms.bias.shape == (N_CLASSES,)
        for subset in ([0, 4, 8], [3], list(range(9))):
            weights = torch.softmax(terms.attention[subset], dim=0)  # (|S|, M)
            expected = (weights.T @ terms.contributions[subset]).sum(dim=0) / n_heads + terms.bias
            torch.testing.assert_close(model(features[subset][None]).logits[0], expected, atol=1e-5, rtol=1e-5)
        empty = model(features[:1][None], torch.zeros(1, 1, dtype=torch.bool)).logits[0]
    torch.testing.assert_close(empty, terms.bias)
