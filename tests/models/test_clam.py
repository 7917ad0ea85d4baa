"""CLAM-SB: the instance clustering loss by hand, and loading a CLAM-keyed checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.models.mil import CLAMSB, clam_instance_loss, load_clam_sb
from pathattn.registry import create_model

IN_DIM = 20


def _ce(logits: torch.Tensor, label: int) -> float:
    """Cross-entropy of one 2-vector of logits, by hand."""
    a, b = logits.tolist()
    return -((a, b)[label] - math.log(math.exp(a) + math.exp(b)))


ATTENTION = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5]])  # top-2: 1, 3; bottom-2: 2, 0
TOP, BOTTOM = (1, 3), (2, 0)


@pytest.mark.parametrize("subtyping", [False, True])
def test_instance_loss_by_hand(subtyping):
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 3, 2)
    value = clam_instance_loss(ATTENTION, logits, torch.tensor([1]), k_sample=2, subtyping=subtyping)
    in_class = sum(_ce(logits[0, i, 1], 1) for i in TOP) + sum(_ce(logits[0, i, 1], 0) for i in BOTTOM)
    expected = in_class / 4
    if subtyping:
        expected += sum(_ce(logits[0, i, c], 0) for c in (0, 2) for i in TOP) / 2
        expected /= 3
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_instance_loss_of_small_and_padded_bags():
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 2, 2)
    target = torch.tensor([0, 1])
    attention = torch.randn(2, 7)
    attention[0, 3:] = float("-inf")  # 3 real instances: k = 1 although B = 8
    per_bag = [clam_instance_loss(attention[i : i + 1, :n], logits[i : i + 1, :n], target[i : i + 1]) for i, n in
               ((0, 3), (1, 7))]  # fmt: skip
    order = attention[0, :3].argsort(descending=True)
    expected_0 = (_ce(logits[0, order[0], 0], 1) + _ce(logits[0, order[-1], 0], 0)) / 2
    assert per_bag[0].item() == pytest.approx(expected_0, rel=1e-6)
    torch.testing.assert_close(clam_instance_loss(attention, logits, target), (per_bag[0] + per_bag[1]) / 2)
    assert clam_instance_loss(attention[:, :1], logits[:, :1], target) == 0  # a single instance gives no pair


def test_model_instance_loss_trains_the_instance_classifiers():
    torch.manual_seed(0)
    model = create_model("clam_sb", in_dim=IN_DIM, n_classes=2).train()
    output = model(torch.randn(2, 30, IN_DIM))
    assert output.extras["instance_logits"].shape == (2, 30, 2, 2)
    target = torch.tensor([1, 0])
    loss = model.instance_loss(output, target)
    expected = clam_instance_loss(output.attention[..., 0], output.extras["instance_logits"], target)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(classifier.weight.grad.abs().sum() > 0 for classifier in model.instance_classifiers)


def test_registered_defaults():
    model = create_model("clam_sb", in_dim=IN_DIM)
    assert (model.attention.tanh[0].out_features, model.head.in_features) == (256, 512)
    assert (model.k_sample, model.subtyping, model.encoder[2].p, model.attention.gate[2].p) == (8, False, 0.25, 0.25)
    with pytest.raises(ValueError, match="n_classes >= 2"):
        CLAMSB(IN_DIM, 1)


def _clam_state_dict(attention_index: int = 3, n_classes: int = 2) -> dict[str, torch.Tensor]:
    """A CLAM-SB 'small' state dict as CLAM's code names it, with random values."""
    torch.manual_seed(1)
    shapes = {
        "attention_net.0.weight": (512, IN_DIM),
        "attention_net.0.bias": (512,),
        f"attention_net.{attention_index}.attention_a.0.weight": (256, 512),
        f"attention_net.{attention_index}.attention_a.0.bias": (256,),
        f"attention_net.{attention_index}.attention_b.0.weight": (256, 512),
        f"attention_net.{attention_index}.attention_b.0.bias": (256,),
        f"attention_net.{attention_index}.attention_c.weight": (1, 256),
        f"attention_net.{attention_index}.attention_c.bias": (1,),
        "classifiers.weight": (n_classes, 512),
        "classifiers.bias": (n_classes,),
    }
    for index in range(n_classes):
        shapes |= {f"instance_classifiers.{index}.weight": (2, 512), f"instance_classifiers.{index}.bias": (2,)}
    return {key: torch.randn(shape) * 0.1 for key, shape in shapes.items()}


@pytest.mark.parametrize("attention_index", [3, 2])
def test_loads_a_clam_checkpoint(attention_index, tmp_path, clam_forward):
    weights = _clam_state_dict(attention_index)
    path = tmp_path / "s_0_checkpoint.pt"
    torch.save({**weights, "instance_loss_fn.dummy": torch.zeros(1)}, path)
    model = load_clam_sb(create_model("clam_sb", in_dim=IN_DIM, n_classes=2), path).eval()
    torch.testing.assert_close(model.instance_classifiers[1].weight, weights["instance_classifiers.1.weight"])
    features = torch.randn(15, IN_DIM)
    logits, raw = clam_forward(weights, features)
    output = model(features[None])
    torch.testing.assert_close(output.logits[0], logits[0])
    torch.testing.assert_close(output.attention[0], raw)


def test_incomplete_clam_checkpoint_is_refused():
    weights = _clam_state_dict()
    del weights["instance_classifiers.1.bias"]
    with pytest.raises(PathattnError, match=r"missing key \(instance_classifiers.1.bias\)"):
        load_clam_sb(create_model("clam_sb", in_dim=IN_DIM, n_classes=2), weights)
    with pytest.raises(PathattnError, match="shape mismatch"):
        load_clam_sb(create_model("clam_sb", in_dim=IN_DIM, n_classes=3), _clam_state_dict())
