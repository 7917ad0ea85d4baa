"""2-D encoder presets: the architecture, preprocessing and provenance of published patch encoders.

Each :class:`EncoderSpec` names a timm architecture with the keyword arguments of its model card, its
normalization and input size, and where its weights come from; :mod:`pathattn.extract.encoders` builds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from timm.layers import SwiGLUPacked
from torch import nn

from pathattn.models.normalisation import IMAGENET_MEAN, IMAGENET_STD

_USER_WEIGHTS = "You supply the weights file (gated model: accept its terms on the model page, then download it)."


@dataclass(frozen=True)
class EncoderSpec:
    """The architecture and preprocessing of a published encoder.

    Attributes:
        name: preset name (``--encoder``).
        timm_name: the timm architecture.
        kwargs: ``timm.create_model`` keyword arguments (classes such as ``SwiGLUPacked`` allowed).
        embed_dim: D, the size of one embedding.
        mean: per-channel normalization mean; None takes timm's data config.
        std: per-channel normalization std; None takes timm's data config.
        input_size: side of the square input in pixels; None takes timm's data config.
        pool: ``"model"``: the model's own pooled output; ``"cls+mean"``: the class token concatenated with
            the mean of the patch tokens, register tokens skipped (Virchow).
        grid: for a truncated ResNet (``features_only``), the side of its average-pooling grid (1: global).
        ignore_prefixes: keys of a full checkpoint that this encoder drops (e.g. ``fc.``).
        precision: the inference precision the encoder's authors use.
        description: one paragraph for ``--help`` and the docs.
        citation: the paper to cite.
        url: the model page (where the weights are).
    """

    name: str
    timm_name: str
    kwargs: Mapping[str, Any]
    embed_dim: int
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    input_size: int | None = None
    pool: Literal["model", "cls+mean"] = "model"
    grid: int = 1
    ignore_prefixes: tuple[str, ...] = ()
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    description: str = ""
    citation: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))


# Kwargs as in the model cards' timm snippets (their config.json where the card loads from hf-hub).
# fmt: off
_SWIGLU = dict(mlp_layer=SwiGLUPacked, act_layer=nn.SiLU)
_VIRCHOW = dict(img_size=224, init_values=1e-5, num_classes=0, mlp_ratio=5.3375, global_pool="", dynamic_img_size=True,
                **_SWIGLU)
_H_OPTIMUS = dict(img_size=224, init_values=1e-5, dynamic_img_size=False, num_classes=0)
_H_OPTIMUS_NORM = dict(mean=(0.707223, 0.578729, 0.703617), std=(0.211883, 0.230117, 0.177517), input_size=224)
_IMAGENET = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=224)
_UNI_PAPER = "Chen et al., Towards a general-purpose foundation model for computational pathology, Nature Medicine 2024"

_PRESET_LIST = (
    EncoderSpec(
        "resnet50_trunc", "resnet50", dict(features_only=True, out_indices=(3,)), 1024, **_IMAGENET,
        ignore_prefixes=("layer4.", "fc."),
        description="ResNet-50 through layer 3, global average pooled (1024-d), as CLAM uses. Takes a full ImageNet "
        "ResNet-50 state dict (torchvision, or timm `resnet50.tv_in1k` as CLAM); layer4 and fc are ignored.",
        citation="Lu et al., Data-efficient and weakly supervised computational pathology on whole-slide images, "
        "Nature Biomedical Engineering 2021",
        url="https://github.com/mahmoodlab/CLAM",
    ),
    EncoderSpec(
        "uni", "vit_large_patch16_224",
        dict(img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True), 1024, **_IMAGENET,
        precision="fp16",
        description=f"UNI (v1): ViT-L/16 (1024-d class token), 224 px at 20x. {_USER_WEIGHTS}",
        citation=_UNI_PAPER, url="https://huggingface.co/MahmoodLab/UNI",
    ),
    EncoderSpec(
        "uni2_h", "vit_giant_patch14_224",
        dict(img_size=224, patch_size=14, depth=24, num_heads=24, init_values=1e-5, embed_dim=1536,
             mlp_ratio=2.66667 * 2, num_classes=0, no_embed_class=True, reg_tokens=8, dynamic_img_size=True, **_SWIGLU),
        1536, **_IMAGENET, precision="bf16",
        description="UNI2-h: ViT-H/14 with SwiGLU and 8 register tokens (1536-d class token), 224 px at 20x. "
        f"{_USER_WEIGHTS}",
        citation=_UNI_PAPER, url="https://huggingface.co/MahmoodLab/UNI2-h",
    ),
    EncoderSpec(
        "gigapath", "vit_giant_patch14_dinov2",
        dict(img_size=224, in_chans=3, patch_size=16, embed_dim=1536, depth=40, num_heads=24, init_values=1e-5,
             mlp_ratio=5.33334, num_classes=0),
        1536, **_IMAGENET, precision="fp16",
        description="Prov-GigaPath tile encoder: ViT-g/16 (1536-d class token), 224 px (resized to 256 and "
        f"center-cropped) at 20x. Kwargs from the hub's config.json. {_USER_WEIGHTS}",
        citation="Xu et al., A whole-slide foundation model for digital pathology from real-world data, Nature 2024",
        url="https://huggingface.co/prov-gigapath/prov-gigapath",
    ),
    EncoderSpec(
        "h_optimus_0", "vit_giant_patch14_reg4_dinov2", _H_OPTIMUS, 1536, **_H_OPTIMUS_NORM, precision="fp16",
        description="H-optimus-0: ViT-g/14 with 4 register tokens (1536-d class token), 224 px at 0.5 µm/px. "
        "You supply the weights file (download it from the model page).",
        citation="Saillard et al., H-optimus-0, Bioptimus 2024", url="https://huggingface.co/bioptimus/H-optimus-0",
    ),
    EncoderSpec(
        "h_optimus_1", "vit_giant_patch14_reg4_dinov2", _H_OPTIMUS, 1536, **_H_OPTIMUS_NORM, precision="fp16",
        description="H-optimus-1: the architecture and normalization of H-optimus-0 (1536-d class token), 224 px "
        f"at 0.5 µm/px. {_USER_WEIGHTS}",
        citation="Bioptimus, H-optimus-1, 2025", url="https://huggingface.co/bioptimus/H-optimus-1",
    ),
    EncoderSpec(
        "virchow", "vit_huge_patch14_224", _VIRCHOW, 2560, **_IMAGENET, pool="cls+mean", precision="fp16",
        description="Virchow: ViT-H/14 with SwiGLU; class token concatenated with the mean patch token (2560-d), "
        f"224 px at 20x. {_USER_WEIGHTS}",
        citation="Vorontsov et al., A foundation model for clinical-grade computational pathology and rare cancers "
        "detection, Nature Medicine 2024",
        url="https://huggingface.co/paige-ai/Virchow",
    ),
    EncoderSpec(
        "virchow2", "vit_huge_patch14_224", dict(_VIRCHOW, reg_tokens=4), 2560, **_IMAGENET, pool="cls+mean",
        precision="fp16",
        description="Virchow2: ViT-H/14 with SwiGLU and 4 register tokens; class token concatenated with the mean "
        f"patch token (2560-d), 224 px at mixed magnifications. {_USER_WEIGHTS}",
        citation="Zimmermann et al., Virchow2: Scaling self-supervised mixed magnification models in pathology, "
        "arXiv:2408.00738, 2024",
        url="https://huggingface.co/paige-ai/Virchow2",
    ),
    EncoderSpec(
        "resnet18_l1_grid", "resnet18", dict(features_only=True, out_indices=(1,)), 256, **_IMAGENET, grid=2,
        ignore_prefixes=("layer2.", "layer3.", "layer4.", "fc."),
        description="ResNet-18 through layer 1, averaged over a 2 x 2 grid of the image (4 x 64 = 256-d): a shallow "
        "embedding that keeps where in a volume slice a bright spot lies. Takes a full ResNet-18 state dict; with "
        "seeded random weights it is what the volume learning check embeds PET slices with (docs/volumes.md).",
        citation="He et al., Deep residual learning for image recognition, CVPR 2016",
        url="https://huggingface.co/timm/resnet18.tv_in1k",
    ),
)
# fmt: on
PRESETS: dict[str, EncoderSpec] = {spec.name: spec for spec in _PRESET_LIST}
