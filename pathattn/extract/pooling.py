"""Pooling wrappers that turn a timm trunk into a one-embedding-per-image encoder (CLAM's and Virchow's)."""

from __future__ import annotations

import torch
from torch import nn


class TruncatedResNet(nn.Module):
    """A ResNet cut after its last requested stage, average pooled (CLAM's ``resnet50_trunc``).

    ``grid`` 1 pools globally; ``grid`` g > 1 averages each of g x g equal cells of the feature map and
    concatenates them channel by channel (``(B, C, g, g)`` flattened: C g^2 values), so the embedding keeps
    where in the image a response lies, e.g. in which part of a body's cross-section a hot spot is.

    Built from a timm ``features_only`` ResNet; its stages become direct children, so the parameter names
    are those of the full ResNet (``conv1.*``, ``layer1.*``, ...) and a full checkpoint loads once the
    later stages and the classifier are ignored.

    Args:
        features: ``timm.create_model("resnet50", features_only=True, out_indices=(3,))`` or alike.
        grid: side of the pooling grid (1: global average).
    """

    def __init__(self, features: nn.Module, grid: int = 1) -> None:
        super().__init__()
        for name, module in features.named_children():
            self.add_module(name, module)
        self.grid = grid
        self.num_features = int(features.feature_info.channels()[-1]) * grid * grid
        self.pretrained_cfg = dict(getattr(features, "pretrained_cfg", None) or {})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a batch: (B, 3, H, W) -> (B, C grid^2) with C the channels of the last stage."""
        x = images
        for module in self.children():
            x = module(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, self.grid), 1)


class ClassMeanPool(nn.Module):
    """Virchow pooling of a timm ViT: class token concatenated with the mean of the patch tokens.

    Register tokens (``num_prefix_tokens - 1`` of them) are skipped. The ViT stays ``self.trunk``; load
    weights into it.

    Args:
        trunk: a timm VisionTransformer (``forward_features`` returns (B, T, D) tokens).
    """

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk
        self.num_features = 2 * int(trunk.num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a batch: (B, 3, H, W) -> (B, 2 D)."""
        tokens = self.trunk.forward_features(images)
        patches = tokens[:, self.trunk.num_prefix_tokens :]
        return torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1)
