"""MEDUSA: one self-attention body whose heads gate several scales of a CNN (Aboutalebi et al., 2022).

Re-implemented from the paper's idea and the structure of the authors' code (notes in
``shared/reference/medusa-and-slice-classification.md``); nothing is copied.

* **Body**: a small 2-D U-Net (:class:`AttentionBody`) on a low-resolution, one-channel, per-image z-scored
  copy of the input (``body_size`` x ``body_size``, 256 by default) ending in one channel and a sigmoid: the
  attention map ``m`` (B, 1, S, S) in [0, 1].
* **Heads**: for each gated stage s of the backbone, ``m`` is resized (bilinear) to the stage's H x W and
  passed through the stage's own conv 7 x 7 (linear, with bias) to the stage's C channels; the stage's
  features become ``x + x * head`` (residual multiplicative attention, no further sigmoid).
* **Backbone**: any timm CNN with ``features_only`` stages (ResNet-18 by default); the gated stages are
  indices of its ``feature_info`` (default: every stage but the last, as the authors gate a ResNet-50 after
  its stem and after conv2_x-conv4_x; timm's stem stage is the stem's activation, before the max-pool).
  The last stage's features are averaged and classified by a linear layer.

Ablations (``attention``): ``"body"`` (MEDUSA), ``"isolated"`` (each gated stage computes its own map from
its own features with a conv 1 x 1 and a sigmoid: the many small attention modules MEDUSA argues against),
``"none"`` (the backbone alone). Only ``spatial_dims=2`` is built: the backbones are timm's 2-D CNNs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import timm
import torch
from torch import nn
from torch.nn import functional as F

from pathattn.models.image.classifier import ImageOutput, stage_module
from pathattn.registry import register_model

Attention = Literal["body", "isolated", "none"]
BODY_WIDTHS = (32, 64, 64, 128, 256)  # encoder levels, then the bottleneck (the authors' widths)
DECODER_WIDTHS = (256, 256, 128, 64)  # decoder levels, deepest first


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True),
    )  # fmt: skip


class AttentionBody(nn.Module):
    """MEDUSA's body: a U-Net without normalisation, (B, 1, S, S) in, one sigmoid map (B, 1, S, S) out.

    Encoder: per level two conv 3 x 3 (``widths[:-1]``) and a 2 x 2 max-pool; bottleneck: one conv 3 x 3
    (``widths[-1]``); decoder, per level: an x2 upsampling, two conv 3 x 3 (``decoder_widths``), the encoder's
    skip concatenated, one conv 3 x 3; then a conv 3 x 3 to one channel and a sigmoid. ReLU throughout. With
    the defaults (the authors' widths) it has 5.5 M parameters. S must be divisible by 2^levels.

    Args:
        widths: channels of each encoder level, then of the bottleneck.
        decoder_widths: channels of each decoder level, deepest first (one per encoder level).
    """

    def __init__(self, widths: Sequence[int] = BODY_WIDTHS, decoder_widths: Sequence[int] = DECODER_WIDTHS) -> None:
        super().__init__()
        *levels, bottom = widths
        if len(decoder_widths) != len(levels):
            raise ValueError(f"decoder_widths {list(decoder_widths)} needs one width per encoder level {levels}")
        self.down = nn.ModuleList(_double_conv(i, o) for i, o in zip([1, *levels[:-1]], levels, strict=True))
        self.bottleneck = nn.Sequential(nn.Conv2d(levels[-1], bottom, 3, padding=1), nn.ReLU(inplace=True))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        width = bottom
        for skip, out in zip(reversed(levels), decoder_widths, strict=True):
            self.up.append(_double_conv(width, out))
            self.merge.append(nn.Sequential(nn.Conv2d(out + skip, out, 3, padding=1), nn.ReLU(inplace=True)))
            width = out
        self.out = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) -> (B, 1, S, S) in [0, 1]."""
        skips, x = [], image
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = up(F.interpolate(x, scale_factor=2.0, mode="nearest"))
            x = merge(torch.cat([x, skip], dim=1))
        return torch.sigmoid(self.out(x))


class MEDUSA(nn.Module):
    """A timm CNN whose stages are gated by MEDUSA's body and heads (module docstring).

    Args:
        backbone: a timm CNN whose ``features_only`` form runs its modules in sequence (timm's
            ``FeatureListNet``: ``resnet18``, ``resnet50``, ``convnext_tiny``, ``regnety_008``...; not
            EfficientNets, whose feature form is a class of its own).
        num_classes: K.
        in_chans: image channels.
        stages: the ``feature_info`` indices gated; None: every stage but the last.
        attention: ``"body"``, ``"isolated"`` or ``"none"`` (module docstring).
        body_size: side of the body's low-resolution copy (divisible by 2^(len(body_widths) - 1)).
        body_widths: encoder widths of the body, then its bottleneck.
        decoder_widths: decoder widths of the body, deepest first.
        head_kernel: kernel side of each head's conv.
        spatial_dims: 2 (3-D backbones are not built).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        num_classes: int = 2,
        in_chans: int = 3,
        stages: Sequence[int] | None = None,
        attention: Attention = "body",
        body_size: int = 256,
        body_widths: Sequence[int] = BODY_WIDTHS,
        decoder_widths: Sequence[int] = DECODER_WIDTHS,
        head_kernel: int = 7,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"spatial_dims {spatial_dims}: MEDUSA is built on timm's 2-D CNNs; use 2")
        if attention not in ("body", "isolated", "none"):
            raise ValueError(f"attention {attention!r} is not one of 'body', 'isolated', 'none'")
        if body_size % 2 ** (len(body_widths) - 1):
            raise ValueError(f"body_size {body_size} must be divisible by {2 ** (len(body_widths) - 1)}")
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, in_chans=in_chans)
        if not isinstance(self.backbone, nn.ModuleDict):
            raise ValueError(
                f"backbone {backbone!r}: its timm features_only form ({type(self.backbone).__name__}) does not run "
                "its modules in sequence, so its stages cannot be gated; choose a ResNet, ConvNeXt or RegNet"
            )
        info = self.backbone.feature_info
        n_stages = len(info.channels())
        self.stages = tuple(range(n_stages - 1)) if stages is None else tuple(int(s) for s in stages)
        if not all(0 <= s < n_stages for s in self.stages):
            raise ValueError(f"stages {list(self.stages)} outside the backbone's 0..{n_stages - 1}")
        self.stage_modules = {info.module_name()[s].replace(".", "_"): s for s in self.stages}  # FeatureListNet keys
        self.attention, self.body_size = attention, body_size
        channels = info.channels()
        self.body = AttentionBody(body_widths, decoder_widths) if attention == "body" else None
        heads = {
            "body": lambda c: nn.Conv2d(1, c, head_kernel, padding=head_kernel // 2),
            "isolated": lambda c: nn.Sequential(nn.Conv2d(c, 1, 1), nn.Sigmoid(),
                                                nn.Conv2d(1, c, head_kernel, padding=head_kernel // 2)),
            "none": None,
        }[attention]  # fmt: skip
        self.heads = nn.ModuleDict({str(s): heads(channels[s]) for s in self.stages} if heads else {})
        self.classifier = nn.Linear(channels[-1], num_classes)
        self.num_classes = num_classes

    def body_input(self, images: torch.Tensor) -> torch.Tensor:
        """The body's copy of ``images`` (B, C, H, W): channel mean, resized to S x S, z-scored per image."""
        grey = F.interpolate(images.mean(dim=1, keepdim=True), size=(self.body_size,) * 2, mode="bilinear",
                             align_corners=False)  # fmt: skip
        mean = grey.mean(dim=(2, 3), keepdim=True)
        std = grey.std(dim=(2, 3), keepdim=True)
        return (grey - mean) / (std + 1e-6)

    def forward(self, images: torch.Tensor) -> ImageOutput:
        """Classify ``images`` (B, C, H, W); the maps of the body and of each gated stage come along."""
        maps: dict[str, torch.Tensor] = {}
        body = None
        if self.body is not None:
            body = self.body(self.body_input(images))
            maps["body"] = body
        x = images
        for name, module in self.backbone.items():
            x = module(x)
            stage = self.stage_modules.get(name)
            if stage is None or self.attention == "none":
                continue
            head = self.heads[str(stage)]
            if body is not None:
                gate = head(F.interpolate(body, size=x.shape[-2:], mode="bilinear", align_corners=False))
            else:
                gate = head(x)
            maps[f"stage{stage}"] = gate.mean(dim=1, keepdim=True)
            x = x + x * gate
        return ImageOutput(self.classifier(x.mean(dim=(2, 3))), maps)

    def cam_layer(self, stage: int = -1) -> nn.Module:
        """The CAMs' target: the backbone's feature stage ``stage`` (-1: the last one, pooled and classified).

        Raises:
            ValueError: the backbone has no such stage.
        """
        return self.backbone[stage_module(self.backbone.feature_info, stage).replace(".", "_")]


@register_model(family="image")
def medusa(**kwargs: Any) -> MEDUSA:
    """MEDUSA on a ResNet-18: the body's map gates the stem and layer1-layer3 (module docstring)."""
    return MEDUSA(**kwargs)


@register_model(family="image")
def medusa_isolated(**kwargs: Any) -> MEDUSA:
    """MEDUSA's ablation without the body: each gated stage computes its own attention map."""
    return MEDUSA(**{**kwargs, "attention": "isolated"})
