"""Every registered segmentation model in 2-D and 3-D: shapes, attention maps, deep supervision, gradients."""

from __future__ import annotations

import pytest
import torch

from pathattn.models.complexity import count_parameters
from pathattn.models.seg import AttentionUNet, SegmentationOutput
from pathattn.registry import create_model, list_models

SMALL = (4, 8, 16, 32, 64)
MODELS = ("attention_unet", "unet", "monai_attention_unet")


def test_the_family_is_registered() -> None:
    assert set(MODELS) <= set(list_models(family="segmentation"))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("dims", "size"), [(2, (32, 48)), (3, (32, 16, 32))])
def test_every_model_segments_2d_and_3d(name: str, dims: int, size: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = create_model(name, spatial_dims=dims, in_channels=2, out_channels=3, channels=SMALL)
    images = torch.randn(2, 2, *size, requires_grad=True)
    out = model(images)
    assert isinstance(out, SegmentationOutput) and out.logits.shape == (2, 3, *size)
    expected = {"attention_unet": 3, "unet": 0, "monai_attention_unet": 4}[name]  # MONAI gates every level
    assert len(out.attention) == expected
    for level, alpha in enumerate(out.attention, start=1 if name == "attention_unet" else 0):
        assert alpha.shape == (2, 1, *(s // 2**level for s in size)), (level, alpha.shape)
        assert 0 < alpha.min() and alpha.max() < 1
    out.logits.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_gates_skip_full_resolution_and_take_any_size() -> None:
    model = AttentionUNet(2, 1, 2, SMALL).eval()
    out = model(torch.randn(1, 1, 37, 45))
    assert out.logits.shape == (1, 2, 37, 45)
    assert [tuple(a.shape[2:]) for a in out.attention] == [(18, 22), (9, 11), (4, 5)]  # levels 2, 3, 4


@pytest.mark.parametrize(("mode", "n_deep"), [("fused", 0), ("auxiliary", 3), ("none", 0)])
def test_deep_supervision_modes(mode: str, n_deep: int) -> None:
    model = AttentionUNet(3, 1, 2, SMALL, deep_supervision=mode)
    out = model(torch.randn(1, 1, 32, 32, 32))
    assert out.logits.shape == (1, 2, 32, 32, 32) and len(out.deep) == n_deep
    assert [d.shape[2] for d in out.deep] == [16, 8, 4][:n_deep]
    assert (model.fuse is not None) == (mode == "fused")
    loss = out.logits.sum() + sum(d.sum() for d in out.deep)
    loss.backward()
    gate = model.gated[2].gate  # the deepest gate, gated by the bottleneck signal
    assert gate.phi.weight.grad.abs().sum() > 0 and model.gating[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("dims", "size"), [(2, (37, 45)), (3, (32, 20, 24))])
def test_multiscale_input_joins_the_pyramid_to_each_coarser_level(dims: int, size: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = AttentionUNet(dims, 2, 2, SMALL, multiscale_input=True)
    assert len(model.pyramid) == 4 and model.encoder[1][0][0].in_channels == 2 * SMALL[0]
    images = torch.randn(1, 2, *size, requires_grad=True)
    out = model(images)
    assert out.logits.shape == (1, 2, *size) and len(out.attention) == 3
    out.logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.pyramid.parameters())
    plain = AttentionUNet(dims, 2, 2, SMALL)
    assert count_parameters(model) > count_parameters(plain)
    matched = create_model("unet", spatial_dims=dims, in_channels=2, channels=SMALL, multiscale_input=True)
    assert abs(count_parameters(matched) - count_parameters(model)) / count_parameters(model) < 0.03


def test_the_plain_unet_matches_the_parameters() -> None:
    for dims in (2, 3):
        gated = count_parameters(create_model("attention_unet", spatial_dims=dims, channels=SMALL))
        plain = create_model("unet", spatial_dims=dims, channels=SMALL)
        assert plain.gated is None and abs(count_parameters(plain) - gated) / gated < 0.03


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="spatial_dims 4"):
        AttentionUNet(4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give five positive widths"):
        AttentionUNet(2, channels=(4, 8))
    with pytest.raises(ValueError, match="deep_supervision 'both'"):
        AttentionUNet(2, deep_supervision="both")  # type: ignore[arg-type]
