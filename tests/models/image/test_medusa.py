"""MEDUSA and the timm classifier: shapes, maps, gradients to the body, ablations, size; against timm itself."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from pathattn.models.complexity import count_macs, count_parameters
from pathattn.models.image import MEDUSA, AttentionBody
from pathattn.registry import create_model, list_models, model_family


def stage_sizes(backbone: str, side: int) -> list[tuple[int, int]]:
    """The H x W of each feature stage of a timm backbone on a side x side input (the oracle)."""
    features = timm.create_model(backbone, pretrained=False, features_only=True)
    return [tuple(f.shape[-2:]) for f in features(torch.zeros(1, 3, side, side))]


@pytest.mark.parametrize(("backbone", "side"), [("resnet18", 96), ("resnet18", 160), ("convnext_atto", 64),
                                                ("regnetx_002", 64)])  # fmt: skip
def test_maps_at_the_stage_sizes_and_in_range(backbone, side):
    torch.manual_seed(0)
    model = MEDUSA(backbone, num_classes=3, body_size=64).eval()
    out = model(torch.randn(2, 3, side, side))
    sizes = stage_sizes(backbone, side)
    assert out.logits.shape == (2, 3)
    assert set(out.maps) == {"body"} | {f"stage{s}" for s in range(len(sizes) - 1)}
    assert out.maps["body"].shape == (2, 1, 64, 64)
    assert 0 <= out.maps["body"].min() and out.maps["body"].max() <= 1
    for s in range(len(sizes) - 1):
        assert tuple(out.maps[f"stage{s}"].shape) == (2, 1, *sizes[s])
        assert torch.isfinite(out.maps[f"stage{s}"]).all()


def test_gradients_reach_the_body_and_heads():
    torch.manual_seed(0)
    model = MEDUSA("resnet18", body_size=32, body_widths=(8, 8, 16), decoder_widths=(16, 8))
    nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)).logits, torch.tensor([0, 1])).backward()
    assert model.body.out.weight.grad.abs().sum() > 0
    assert all(head.weight.grad.abs().sum() > 0 for head in model.heads.values())


def test_a_gate_of_zero_is_the_backbone_alone():
    """With every head's output zero, ``x + x * head`` is ``x``: MEDUSA's logits are the backbone's."""
    torch.manual_seed(0)
    model = MEDUSA("resnet18", body_size=32, body_widths=(8, 8, 16), decoder_widths=(16, 8)).eval()
    for head in model.heads.values():
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    images = torch.randn(2, 3, 64, 64)
    plain = MEDUSA("resnet18", attention="none").eval()
    plain.backbone.load_state_dict(model.backbone.state_dict())
    plain.classifier.load_state_dict(model.classifier.state_dict())
    torch.testing.assert_close(model(images).logits, plain(images).logits)
    features = model.backbone(images)[-1]
    torch.testing.assert_close(plain(images).logits, model.classifier(features.mean(dim=(2, 3))))


def test_ablations_and_the_registry():
    assert list_models(family="image") == ["medusa", "medusa_isolated", "timm_classifier"]
    assert model_family("medusa") == "image"
    isolated = create_model("medusa_isolated", body_size=64)
    assert isolated.body is None and set(isolated(torch.randn(1, 3, 64, 64)).maps) == {f"stage{s}" for s in range(4)}
    assert create_model("medusa", attention="none")(torch.randn(1, 3, 64, 64)).maps == {}
    classifier = create_model("timm_classifier", num_classes=4)
    assert classifier(torch.randn(2, 3, 64, 64)).logits.shape == (2, 4)
    for kwargs, needle in [({"spatial_dims": 3}, "spatial_dims 3"), ({"stages": (0, 9)}, "outside"),
                           ({"body_size": 100}, "divisible by 16"), ({"attention": "gate"}, "not one of")]:  # fmt: skip
        with pytest.raises(ValueError, match=needle):
            MEDUSA("resnet18", **kwargs)
    with pytest.raises(ValueError, match="efficientnet_b0.*cannot be gated"):
        MEDUSA("efficientnet_b0")


def test_body_is_a_unet_with_the_authors_widths():
    body = AttentionBody()
    assert [block[0].out_channels for block in body.down] == [32, 64, 64, 128]
    assert body.bottleneck[0].out_channels == 256
    assert [block[0].out_channels for block in body.up] == [256, 256, 128, 64]
    assert 5.4e6 < count_parameters(body) < 5.6e6  # the authors' body: about 5.5 M parameters
    out = body(torch.randn(1, 1, 32, 32))
    assert out.shape == (1, 1, 32, 32) and 0 <= out.min() and out.max() <= 1


def test_parameters_and_macs():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_parameters(conv) == 3 * 8 * 9 + 8
    assert count_macs(conv, (1, 3, 10, 10)) == 3 * 8 * 9 * 10 * 10
    medusa, plain = MEDUSA("resnet18"), MEDUSA("resnet18", attention="none")
    body_macs = count_macs(medusa.body, (1, 1, 256, 256))
    assert count_parameters(medusa) > count_parameters(plain) + count_parameters(medusa.body) - 1
    assert count_macs(medusa, (1, 3, 224, 224)) > count_macs(plain, (1, 3, 224, 224)) + body_macs - 1
