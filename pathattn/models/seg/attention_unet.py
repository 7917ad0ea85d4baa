"""Attention U-Net (Oktay et al., MIDL 2018), its parameter-matched plain U-Net, and MONAI's AttentionUnet.

The network follows the official code (``unet_CT_single_att_dsv_3D``) with ``spatial_dims`` 2 or 3, one class:

* **encoder**: four levels of two (conv 3 + batch norm + ReLU) each followed by max pooling, and a centre block
  (``channels``: five widths, (16, 32, 64, 128, 256) = the official 64..1024 / feature_scale 4);
* **gating signal**: 1 x 1 conv + batch norm + ReLU on the centre;
* **grid attention gates** (:class:`~pathattn.models.layers.attention_gate.GridAttentionGate`) on the skips of
  levels 2-4 (the full-resolution skip of level 1 is not gated), each gated by the next-coarser decoder feature
  (the gating signal for level 4), followed by ``combine_gates`` (1 x 1 conv + batch norm + ReLU);
* **decoder**: bi/trilinear upsampling to the skip's size, concatenation, two (conv 3 + batch norm + ReLU);
* optional **multi-scale input** (``multiscale_input``): an input pyramid joined to each coarser encoder level;
* **deep supervision** (``deep_supervision``): ``fused`` (the official code, the default): a 1 x 1 conv of each
  decoder level to the classes, upsampled to the input and fused by a 1 x 1 conv over their concatenation, one
  output and one loss; ``auxiliary`` (the paper's text): the finest level's 1 x 1 conv is the output and the
  three coarser levels' class maps, at their own resolution, are returned for auxiliary losses
  (``SegmentationOutput.deep``, finest first); ``none``: the finest level's output alone.

The forward returns :class:`SegmentationOutput`: logits (B, K, *S), the gates' alpha maps (finest first, each
(B, 1, *S_level)), and the auxiliary outputs. Inputs of any size of at least 16 voxels a side work (pooling
floors, the decoder resamples to each skip). ``unet`` is the same network without gates, widened until its
parameter count matches ``attention_unet``'s with the same arguments; ``monai_attention_unet`` is MONAI's
``AttentionUnet`` (its gate differs: docs/segment.md) with its gates' maps captured by hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from pathattn.models.complexity import count_parameters
from pathattn.models.layers.attention_gate import BATCH_NORM, CONV, GridAttentionGate, SpatialDims, resample
from pathattn.registry import register_model

DeepSupervision = Literal["fused", "auxiliary", "none"]
POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


@dataclass
class SegmentationOutput:
    """What a segmentation network returns.

    Attributes:
        logits: (B, K, *S) class scores at the input's size.
        attention: the gates' alpha maps, finest level first, each (B, 1, *S_level) in (0, 1) (empty: no gates).
        deep: with ``deep_supervision="auxiliary"``, the coarser levels' class scores (B, K, *S_level), finest
            first, for auxiliary losses (empty otherwise).
    """

    logits: torch.Tensor
    attention: list[torch.Tensor] = field(default_factory=list)
    deep: list[torch.Tensor] = field(default_factory=list)


def conv_norm_relu(spatial_dims: SpatialDims, in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """Conv (same padding) + batch norm + ReLU."""
    conv = CONV[spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return nn.Sequential(conv, BATCH_NORM[spatial_dims](out_channels), nn.ReLU(inplace=True))


def double_conv(spatial_dims: SpatialDims, in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (conv 3 + batch norm + ReLU): the official ``UnetConv3``."""
    return nn.Sequential(conv_norm_relu(spatial_dims, in_channels, out_channels, 3),
                         conv_norm_relu(spatial_dims, out_channels, out_channels, 3))  # fmt: skip


class GatedSkip(nn.Module):
    """A grid attention gate followed by ``combine_gates`` (the official ``MultiAttentionBlock``, one gate)."""

    def __init__(self, spatial_dims: SpatialDims, channels: int, gating_channels: int) -> None:
        super().__init__()
        self.gate = GridAttentionGate(spatial_dims, channels, gating_channels, inter_channels=channels)
        self.combine = conv_norm_relu(spatial_dims, channels, channels, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gated, alpha = self.gate(x, g)
        return self.combine(gated), alpha


class AttentionUNet(nn.Module):
    """Attention U-Net (module docstring); ``gates=False`` gives the plain U-Net of the same blocks.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes K (background included).
        channels: the five widths, finest level first.
        deep_supervision: ``fused``, ``auxiliary`` or ``none`` (module docstring).
        gates: gate the skips of levels 2-4.
        multiscale_input: an input pyramid (Bouget et al. 2021's ``input_pyramid``): the image average-pooled
            by 2 once per level, through a conv 3 + ReLU as wide as the level's incoming features, concatenated
            with them before each coarser encoder block.
    """

    def __init__(
        self,
        spatial_dims: SpatialDims = 3,
        in_channels: int = 1,
        out_channels: int = 2,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        deep_supervision: DeepSupervision = "fused",
        gates: bool = True,
        multiscale_input: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in CONV:
            raise ValueError(f"spatial_dims {spatial_dims}: use 2 or 3")
        if len(channels) != 5 or min(channels) < 1:
            raise ValueError(f"channels {tuple(channels)}: give five positive widths, finest level first")
        if deep_supervision not in ("fused", "auxiliary", "none"):
            raise ValueError(f"deep_supervision {deep_supervision!r}: one of fused, auxiliary, none")
        c, conv = list(channels), CONV[spatial_dims]
        self.deep_supervision = deep_supervision
        self.encoder = nn.ModuleList([double_conv(spatial_dims, in_channels, c[0])])
        widen = 2 if multiscale_input else 1
        self.encoder.extend(double_conv(spatial_dims, widen * c[k], c[k + 1]) for k in range(4))
        self.pool = POOL[spatial_dims](2)
        self.pyramid = (
            nn.ModuleList(
                [nn.Sequential(conv(in_channels, c[k], 3, padding=1), nn.ReLU(inplace=True)) for k in range(4)]
            )
            if multiscale_input
            else None
        )
        self.gating = conv_norm_relu(spatial_dims, c[4], c[4], 1) if gates else None
        # level k (1..3 here: levels 2-4) gated by the next-coarser decoder feature (c[k + 1] channels)
        self.gated = nn.ModuleList([GatedSkip(spatial_dims, c[k], c[k + 1]) for k in (1, 2, 3)]) if gates else None
        self.decoder = nn.ModuleList([double_conv(spatial_dims, c[k] + c[k + 1], c[k]) for k in range(4)])
        self.heads = nn.ModuleList([conv(c[k], out_channels, 1) for k in range(4)])
        self.fuse = conv(4 * out_channels, out_channels, 1) if deep_supervision == "fused" else None

    def forward(self, images: torch.Tensor) -> SegmentationOutput:
        """Segment ``images`` (B, C, *S)."""
        skips, x, scaled = [], images, images
        for k, block in enumerate(self.encoder):
            if k > 0:
                x = self.pool(x)
                if self.pyramid is not None:
                    scaled = F.avg_pool2d(scaled, 2) if scaled.dim() == 4 else F.avg_pool3d(scaled, 2)
                    x = torch.cat([x, self.pyramid[k - 1](scaled)], dim=1)
            x = block(x)
            skips.append(x)
        up, attention = skips[4], []
        g = self.gating(up) if self.gating is not None else None
        levels = []
        for k in (3, 2, 1, 0):
            skip = skips[k]
            if self.gated is not None and k > 0:
                skip, alpha = self.gated[k - 1](skip, g if k == 3 else up)
                attention.insert(0, alpha)
            up = self.decoder[k](torch.cat([skip, resample(up, skip.shape[2:])], dim=1))
            levels.insert(0, up)
        size = images.shape[2:]
        if self.fuse is not None:
            maps = [resample(head(level), size) for head, level in zip(self.heads, levels, strict=True)]
            return SegmentationOutput(self.fuse(torch.cat(maps, dim=1)), attention)
        auxiliary = self.deep_supervision == "auxiliary"
        deep = [head(level) for head, level in zip(self.heads[1:], levels[1:], strict=True)] if auxiliary else []
        return SegmentationOutput(self.heads[0](levels[0]), attention, deep)


def matched_channels(target: int, build: Any, base: Sequence[int]) -> tuple[int, ...]:  # noqa: ANN401
    """The widths ``round(base * s)`` whose network (``build(channels)``) has the parameter count nearest ``target``."""
    best: tuple[int, tuple[int, ...]] = (target, tuple(base))
    for step in range(401):  # widen by up to 2x in 0.25 % steps, until the count passes the target
        widths = tuple(max(1, round(w * (1 + step / 400))) for w in base)
        count = count_parameters(build(widths))
        best = min(best, (abs(count - target), widths))
        if count > target:
            break
    return best[1]


class MonaiGatedUnet(nn.Module):
    """MONAI's ``AttentionUnet`` returning :class:`SegmentationOutput`, its gates' maps captured by hooks.

    Args:
        spatial_dims, in_channels, out_channels: as :class:`AttentionUNet`.
        channels: MONAI's widths (its input sizes must be divisible by 2 ** (len(channels) - 1)).
    """

    def __init__(self, spatial_dims: SpatialDims = 3, in_channels: int = 1, out_channels: int = 2,
                 channels: Sequence[int] = (16, 32, 64, 128, 256)) -> None:  # fmt: skip
        from monai.networks.nets import AttentionUnet as MonaiAttentionUnet  # 2 s to import: only when built

        super().__init__()
        self.network = MonaiAttentionUnet(spatial_dims, in_channels, out_channels, channels=tuple(channels),
                                          strides=(2,) * (len(channels) - 1))  # fmt: skip
        self._maps: list[torch.Tensor] = []
        for name, module in self.network.named_modules():
            if name.endswith("attention.psi"):
                module.register_forward_hook(lambda _m, _i, out: self._maps.append(out))

    def forward(self, images: torch.Tensor) -> SegmentationOutput:
        self._maps = []
        logits = self.network(images)
        maps, self._maps = sorted(self._maps, key=lambda m: -m.shape[-1]), []
        return SegmentationOutput(logits, maps)


@register_model(family="segmentation")
def attention_unet(**kwargs: Any) -> AttentionUNet:
    """Attention U-Net with grid gates on levels 2-4 and fused deep supervision (module docstring)."""
    return AttentionUNet(**{**kwargs, "gates": True})


@register_model(family="segmentation")
def unet(**kwargs: Any) -> AttentionUNet:
    """The plain U-Net of the same blocks, widened to Attention U-Net's parameter count (same arguments)."""
    base = tuple(kwargs.pop("channels", (16, 32, 64, 128, 256)))
    target = count_parameters(AttentionUNet(**kwargs, channels=base, gates=True))
    widths = matched_channels(target, lambda c: AttentionUNet(**kwargs, channels=c, gates=False), base)
    return AttentionUNet(**kwargs, channels=widths, gates=False)


@register_model(family="segmentation")
def monai_attention_unet(**kwargs: Any) -> MonaiGatedUnet:
    """MONAI's AttentionUnet (for comparison; not the paper's gate)."""
    kwargs.pop("deep_supervision", None)
    return MonaiGatedUnet(**kwargs)
