"""ABMIL against hippo-nn's AttentionMILModel (BSD-3, a test-only dependency) with the same weights."""

from __future__ import annotations

import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.models.mil import abmil_from_hippo, load_hippo
from pathattn.registry import create_model

hippo = pytest.importorskip("hippo")

IN_DIM = 1024  # UNI-size features, HIPPO's released L=512, D=384


def _reference(gated: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return hippo.AttentionMILModel(
        in_features=IN_DIM, L=512, D=384, num_classes=2, dropout=0.25, gated_attention=gated
    ).eval()


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("n_instances", [1, 7, 1000])
def test_same_logits_and_raw_attention_as_hippo(gated, n_instances):
    reference = _reference(gated)
    model = load_hippo(create_model("abmil" if gated else "abmil_plain", in_dim=IN_DIM), reference.state_dict()).eval()
    features = torch.randn(n_instances, IN_DIM)
    with torch.no_grad():
        expected, ours = reference(features), model(features[None])
    torch.testing.assert_close(ours.logits, expected.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.attention[0], expected.attention, atol=1e-6, rtol=0)


def test_padded_batch_matches_hippo_per_bag():
    reference = _reference(True, seed=1)
    model = abmil_from_hippo(reference.state_dict())
    bags = [torch.randn(n, IN_DIM) for n in (3, 40)]
    features = torch.zeros(2, 40, IN_DIM)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    for index, bag in enumerate(bags):
        features[index, : len(bag)], mask[index, : len(bag)] = bag, True
    with torch.no_grad():
        ours = model(features, mask)
        for index, bag in enumerate(bags):
            expected = reference(bag)
            torch.testing.assert_close(ours.logits[index], expected.logits[0], atol=1e-6, rtol=0)
            torch.testing.assert_close(ours.attention[index, : len(bag)], expected.attention, atol=1e-6, rtol=0)


@pytest.mark.parametrize("gated", [True, False])
def test_training_mode_matches_with_the_same_dropout_draws(gated):
    """Same RNG order as HIPPO (embedding dropout, then tanh, then sigmoid), so train mode agrees too."""
    reference = _reference(gated).train()
    model = abmil_from_hippo(reference.state_dict()).train()
    features = torch.randn(50, IN_DIM)
    torch.manual_seed(7)
    expected = reference(features)
    torch.manual_seed(7)
    ours = model(features[None])
    torch.testing.assert_close(ours.logits, expected.logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.attention[0], expected.attention, atol=1e-6, rtol=0)


def test_from_file_infers_the_sizes(tmp_path):
    torch.manual_seed(0)
    reference = hippo.AttentionMILModel(in_features=64, L=32, D=24, num_classes=3, gated_attention=False).eval()
    path = tmp_path / "model_best.pt"
    torch.save(reference.state_dict(), path)
    model = abmil_from_hippo(path)
    assert (model.in_dim, model.n_classes, model.attention.gate) == (64, 3, None)
    features = torch.randn(10, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(features[None]).logits, reference(features).logits, atol=1e-6, rtol=0)


def test_mismatch_is_reported_with_the_keys():
    gated_weights = _reference(True).state_dict()
    with pytest.raises(PathattnError, match="unexpected key.*attention_weights.attention_U"):
        load_hippo(create_model("abmil_plain", in_dim=IN_DIM), gated_weights)
    with pytest.raises(PathattnError, match="shape mismatch"):
        load_hippo(create_model("abmil", in_dim=IN_DIM, attn_dim=128), gated_weights)
    with pytest.raises(PathattnError, match="not a HIPPO"):
        abmil_from_hippo({"head.weight": torch.zeros(2, 4)})
