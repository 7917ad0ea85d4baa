"""Image classifiers: what they return, and timm's CNNs as the baseline (the PET/CT paper's ResNet-18)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import nn

from pathattn.registry import register_model


@dataclass
class ImageOutput:
    """What an image classifier returns.

    Attributes:
        logits: (B, K) class scores.
        maps: attention maps by name, each (B, 1, h, w) (MEDUSA: ``body`` in [0, 1] at the body's resolution,
            ``stage{i}`` the channel mean of the head at stage i's resolution); empty for plain CNNs, whose
            maps come from CAMs (:mod:`pathattn.evaluate.cams`).
    """

    logits: torch.Tensor
    maps: dict[str, torch.Tensor] = field(default_factory=dict)


def stage_module(feature_info: Any, stage: int) -> str:  # noqa: ANN401 - timm's FeatureInfo
    """The dotted module name of feature stage ``stage`` (Python indexing: -1 the last) of a timm network.

    Raises:
        ValueError: no such stage.
    """
    n = len(feature_info)
    if not -n <= stage < n:
        names = ", ".join(f"{i - n} ({info['module']})" for i, info in enumerate(feature_info))
        raise ValueError(f"feature stage {stage} out of range; the network's stages are {names}")
    return feature_info[stage]["module"]


class TimmClassifier(nn.Module):
    """Any timm model as an image classifier, seeded random init (load local weights separately).

    Args:
        backbone: a timm model name (``resnet18``, the PET/CT slice classifier's network).
        num_classes: K.
        in_chans: image channels.
        spatial_dims: 2 (timm's models are 2-D).
    """

    def __init__(self, backbone: str = "resnet18", num_classes: int = 2, in_chans: int = 3, spatial_dims: int = 2):
        super().__init__()
        if spatial_dims != 2:
            raise ValueError(f"spatial_dims {spatial_dims}: timm classifiers are 2-D; use 2")
        self.network = timm.create_model(backbone, pretrained=False, num_classes=num_classes, in_chans=in_chans)
        self.num_classes = num_classes

    def forward(self, images: torch.Tensor) -> ImageOutput:
        """Classify ``images`` (B, C, H, W)."""
        return ImageOutput(self.network(images))

    def cam_layer(self, stage: int = -1) -> nn.Module:
        """The CAMs' target: feature stage ``stage`` (-1: the last map before the pooling, ``layer4`` of a ResNet).

        Raises:
            ValueError: the network has no such stage.
        """
        return self.network.get_submodule(stage_module(self.network.feature_info, stage))


@register_model(family="image")
def timm_classifier(**kwargs: Any) -> TimmClassifier:
    """A timm CNN classifier, ResNet-18 by default (``backbone=`` any timm name)."""
    return TimmClassifier(**kwargs)
