"""3-D encoders for the 3-D patches of volumes: MONAI's 3-D ResNets, pooled, without a classifier.

A 3-D encoder maps a batch of patches (B, C, Pi, Pj, Pk) (C channels = the tiling's modalities, patch sides in
voxels of the prepared grid, not resized) to embeddings (B, D). The presets are MONAI's
``monai.networks.nets.resnet{10,18,34,50}`` with ``spatial_dims=3``, ``n_input_channels=C`` and
``feed_forward=False`` (no ``fc`` layer: the output is the global average pool of the last stage), with the
stem and shortcuts of Med3D/MedicalNet (Chen et al., Med3D: Transfer learning for 3D medical image analysis,
arXiv:1904.00625), so that MedicalNet-style state dicts (for C = 1) load strictly:

==============  =====  ==========  ===============================================
preset          D      shortcut    MONAI constructor
==============  =====  ==========  ===============================================
resnet10_3d      512   B           ``resnet10(shortcut_type="B", bias_downsample=False)``
resnet18_3d      512   A           ``resnet18(shortcut_type="A", bias_downsample=True)``
resnet34_3d      512   A           ``resnet34(shortcut_type="A", bias_downsample=True)``
resnet50_3d     2048   B           ``resnet50(shortcut_type="B", bias_downsample=False)``
==============  =====  ==========  ===============================================

Every preset uses a 7x7x7 stem convolution with stride 2 (``conv1_t_size=7, conv1_t_stride=2``), as Med3D.
Weights are drawn from a seed, or read from a local file (``.pth``/``.pt``/``.bin``/``.safetensors``, never
unpickled beyond tensors) and loaded strictly; keys of a classifier (``fc.``) or of MedicalNet's segmentation
head (``conv_seg.``) are ignored. Inputs are the patch's preset values (:mod:`pathattn.volumes.presets`, [0, 1])
normalised as ``(x - 0.5) / 0.5`` on every channel (:data:`MEAN_3D`, :data:`STD_3D`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

MEAN_3D = (0.5,)
"""Normalisation mean, the same for every channel of a 3-D patch."""
STD_3D = (0.5,)
"""Normalisation std, the same for every channel of a 3-D patch."""
IGNORE_3D = ("fc.", "conv_seg.")
"""Key prefixes of a checkpoint that a 3-D encoder drops (a classifier, MedicalNet's segmentation head)."""


@dataclass(frozen=True)
class Encoder3dSpec:
    """A 3-D encoder preset.

    Attributes:
        name: preset name (``--encoder``).
        depth: the ResNet depth (10, 18, 34, 50): ``monai.networks.nets.resnet{depth}``.
        embed_dim: D, the size of one embedding.
        shortcut_type: MONAI's ``shortcut_type`` (``A``: parameter-free, ``B``: 1x1x1 convolution + norm).
        bias_downsample: MONAI's ``bias_downsample`` (a bias on the ``B`` shortcut convolution).
        description: one line for the docs.
    """

    name: str
    depth: int
    embed_dim: int
    shortcut_type: Literal["A", "B"]
    bias_downsample: bool
    description: str = ""


PRESETS_3D: dict[str, Encoder3dSpec] = {
    spec.name: spec
    for spec in (
        Encoder3dSpec("resnet10_3d", 10, 512, "B", False, "MONAI 3-D ResNet-10 (512-d), Med3D stem"),
        Encoder3dSpec("resnet18_3d", 18, 512, "A", True, "MONAI 3-D ResNet-18 (512-d), Med3D stem"),
        Encoder3dSpec("resnet34_3d", 34, 512, "A", True, "MONAI 3-D ResNet-34 (512-d), Med3D stem"),
        Encoder3dSpec("resnet50_3d", 50, 2048, "B", False, "MONAI 3-D ResNet-50 (2048-d), Med3D stem"),
    )
}


def resnet_3d_kwargs(spec: Encoder3dSpec, in_channels: int) -> dict[str, object]:
    """The keyword arguments of ``monai.networks.nets.resnet{depth}`` for a preset and a channel count."""
    return {
        "spatial_dims": 3,
        "n_input_channels": in_channels,
        "feed_forward": False,
        "shortcut_type": spec.shortcut_type,
        "bias_downsample": spec.bias_downsample,
        "conv1_t_size": 7,
        "conv1_t_stride": 2,
    }


def build_resnet_3d(spec: Encoder3dSpec, in_channels: int) -> nn.Module:
    """Create the random-init module of a preset, mapping (B, ``in_channels``, Pi, Pj, Pk) to (B, D)."""
    from monai.networks import nets  # imported here: MONAI takes seconds to import, slides never need it

    model = getattr(nets, f"resnet{spec.depth}")(**resnet_3d_kwargs(spec, in_channels))
    model.num_features = spec.embed_dim
    return model
