"""The model registry: registration, lookup, the factory and its error messages."""

from __future__ import annotations

import pytest
import torch

from pathattn import registry
from pathattn.errors import PathattnError
from pathattn.registry import create_model, is_model, list_models, model_family, register_model


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test entrypoints in a copy of the registry, dropped after the test."""
    registry.list_models()  # the built-in models are registered before the copy
    monkeypatch.setattr(registry, "_ENTRYPOINTS", dict(registry._ENTRYPOINTS))


def test_list_models_is_sorted_and_filters():
    names = list_models()
    assert names == sorted(names) and "abmil" in names
    assert list_models("abmil*") == ["abmil", "abmil_acmil_style", "abmil_plain"]
    assert list_models("*pool") == ["max_pool", "mean_pool"]
    assert set(list_models(family="mil")) <= set(names)
    assert list_models(family="no-such-family") == []


def test_is_model_and_family():
    assert is_model("acmil") and not is_model("acmill")
    assert model_family("clam_sb") == "mil"


def test_unknown_name_suggests_close_names():
    with pytest.raises(PathattnError, match=r"unknown model 'abmill'; did you mean 'abmil'"):
        create_model("abmill", in_dim=4)
    with pytest.raises(PathattnError, match="see list_models"):
        model_family("zzzzzz")


def test_kwargs_override_the_variant_defaults():
    model = create_model("abmil", in_dim=12, n_classes=4, attn_dim=7, dropout=0.0)
    assert (model.in_dim, model.n_classes, model.attention.tanh[0].out_features, model.encoder[2].p) == (12, 4, 7, 0.0)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        create_model("abmil", in_dim=12, atn_dim=7)


def test_register_bare_and_with_family(scratch_registry):
    @register_model
    def tiny_linear(**kwargs) -> torch.nn.Module:
        return torch.nn.Linear(2, 3, **kwargs)

    @register_model(family="toy")
    def tiny_conv(**kwargs) -> torch.nn.Module:
        return torch.nn.Conv2d(1, 1, 3, **kwargs)

    assert isinstance(create_model("tiny_linear", bias=False), torch.nn.Linear)
    assert model_family("tiny_linear") is None and model_family("tiny_conv") == "toy"
    assert list_models(family="toy") == ["tiny_conv"]
    assert "tiny_linear" in list_models() and "tiny_linear" not in list_models(family="mil")


def test_duplicate_names_are_refused(scratch_registry):
    def abmil(**kwargs) -> torch.nn.Module:
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="'abmil' is already registered by pathattn.models.mil.abmil.abmil"):
        register_model(abmil)
    assert create_model("abmil", in_dim=4).__class__.__name__ == "ABMIL"
