"""Patch encoders: timm models, presets for common pathology encoders, weights from local files.

An encoder maps a normalized image batch (B, 3, H, W) to embeddings (B, D). It is named by

- a preset of :data:`~pathattn.extract.presets.PRESETS` (``resnet50_trunc``, ``uni``, ``uni2_h``, ``gigapath``,
  ...): the architecture of a published encoder; the user supplies its weights file (most are gated on the
  Hugging Face Hub);
- any timm model name (``timm.create_model(name, pretrained=False, num_classes=0)``);
- ``hf-hub:ORG/REPO``: timm downloads the architecture and weights (needs network access);
- a 3-D preset of :data:`~pathattn.extract.encoders_3d.PRESETS_3D` (``resnet18_3d``, ...): a MONAI 3-D ResNet
  for the 3-D patches of volumes, mapping (B, C, Pi, Pj, Pk) to (B, D).

Weights come from a ``.pth``/``.pt``/``.bin``/``.safetensors`` file and are loaded strictly.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import timm
import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.extract.encoders_3d import IGNORE_3D, MEAN_3D, PRESETS_3D, STD_3D, Encoder3dSpec, build_resnet_3d
from pathattn.extract.pooling import ClassMeanPool, TruncatedResNet
from pathattn.extract.presets import PRESETS, EncoderSpec
from pathattn.io.weights import load_state_dict_strict, read_state_dict, sha256_file

HUB_PREFIXES = ("hf-hub:", "hf_hub:")
RANDOM_INIT = "random-init"


@dataclass
class Encoder:
    """A ready encoder: its module and how to feed it.

    Attributes:
        model: module in eval mode mapping a normalized float batch (B, 3, H, W) to (B, D), or for a 3-D
            encoder (B, C, Pi, Pj, Pk) to (B, D).
        name: the name it was created from.
        spec: the preset (a 2-D or a 3-D one), or None for a timm or ``hf-hub:`` name.
        embed_dim: D.
        input_size: (H, W) in pixels; ``()`` for a 3-D encoder (it takes the tiling's patches as they are).
        mean: per-channel normalization mean (RGB, for images scaled to [0, 1]); one value for every channel
            of a 3-D encoder.
        std: per-channel normalization std (alike).
        weights_sha256: SHA-256 of the weights file, ``"random-init"`` without one.
        weights_file: absolute path of the weights file, ``""`` without one.
        spatial_dims: 2 for image encoders (slide patches, volume slices), 3 for 3-D patch encoders.
        in_channels: the channels the model takes (3 for image encoders).
    """

    model: nn.Module
    name: str
    spec: EncoderSpec | Encoder3dSpec | None
    embed_dim: int
    input_size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights_sha256: str = RANDOM_INIT
    weights_file: str = ""
    spatial_dims: Literal[2, 3] = 2
    in_channels: int = 3

    @property
    def precision(self) -> Literal["fp32", "fp16", "bf16"]:
        """The precision the encoder's authors use (fp32 for plain timm models and 3-D encoders)."""
        return self.spec.precision if isinstance(self.spec, EncoderSpec) else "fp32"


def list_encoders() -> list[str]:
    """Return the preset names, 2-D then 3-D."""
    return [*PRESETS, *PRESETS_3D]


def build_model(spec: EncoderSpec) -> nn.Module:
    """Create the random-init module of a preset, mapping (B, 3, H, W) to (B, ``spec.embed_dim``).

    Honours the ambient device context, so ``with torch.device("meta"): build_model(spec)`` allocates nothing.
    """
    model = timm.create_model(spec.timm_name, pretrained=False, **spec.kwargs)
    if spec.kwargs.get("features_only"):
        model = TruncatedResNet(model, spec.grid)
    if spec.pool == "cls+mean":
        model = ClassMeanPool(model)
    return model


def create_encoder(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    in_channels: int = 1,
) -> Encoder:
    """Create an encoder by name, with weights from a local file (or random weights without one).

    Args:
        name: a preset (:func:`list_encoders`), any timm model name, or ``hf-hub:ORG/REPO``.
        weights: a ``.pth``/``.pt``/``.bin``/``.safetensors`` file for this architecture; None keeps the
            random initialization (for a timm name) or downloads the weights (for ``hf-hub:``).
        device: where the module is placed; ``"meta"`` without weights builds it without allocating memory
            (to check shapes and preprocessing of a giant preset).
        seed: the seed of the random initialization (drawn from a forked RNG: the global one is untouched).
        in_channels: the input channels of a 3-D preset (the modalities of the tiling); 2-D encoders take 3.

    Returns:
        The encoder in eval mode, with its input size and normalization.

    Raises:
        PathattnError: unknown name, unreadable or mismatched weights file, unreachable Hugging Face Hub.
    """
    if name in PRESETS_3D:
        return _create_3d(PRESETS_3D[name], weights, torch.device(device), seed, in_channels)
    spec = PRESETS.get(name)
    if spec is not None:
        build: Callable[[], nn.Module] = partial(build_model, spec)
    elif name.startswith(HUB_PREFIXES):
        build = partial(_create_from_hub, name, pretrained=weights is None)
    elif timm.is_model(name):
        build = partial(timm.create_model, name, pretrained=False, num_classes=0)
    else:
        raise _unknown_name_error(name)
    if weights is None:
        model, sha, file = _build_random(build, torch.device(device), seed), RANDOM_INIT, ""
    else:
        model = _build_with_weights(build, Path(weights), name, spec)
        sha, file = sha256_file(weights), str(Path(weights).resolve())
    _check_pooled(model, name)
    size, mean, std = _preprocessing(model, spec)
    embed_dim = spec.embed_dim if spec is not None else _pooled_dim(model)
    model = model.to(device).eval()
    return Encoder(model, name, spec, embed_dim, size, mean, std, weights_sha256=sha, weights_file=file)


def _create_3d(
    spec: Encoder3dSpec, weights: str | os.PathLike[str] | None, device: torch.device, seed: int, in_channels: int
) -> Encoder:
    """A 3-D preset (:mod:`pathattn.extract.encoders_3d`) with random or local weights."""
    if in_channels < 1:
        raise PathattnError(f"encoder '{spec.name}' needs at least 1 input channel, got {in_channels}")
    build = partial(build_resnet_3d, spec, in_channels)
    sha, file = RANDOM_INIT, ""
    if weights is None:
        model = _build_random(build, device, seed)
    else:
        model, path = build(), Path(weights)
        fix = f"pass MONAI/MedicalNet 3-D ResNet-{spec.depth} weights for {in_channels} channel(s) or another --encoder"
        load_state_dict_strict(model, read_state_dict(path), path, IGNORE_3D, target=f"encoder '{spec.name}' "
                               f"({in_channels} input channels)", fix=fix)  # fmt: skip
        sha, file = sha256_file(path), str(path.resolve())
    return Encoder(model.to(device).eval(), spec.name, spec, spec.embed_dim, (), MEAN_3D, STD_3D, sha, file,
                   spatial_dims=3, in_channels=in_channels)  # fmt: skip


def _build_random(build: Callable[[], nn.Module], device: torch.device, seed: int) -> nn.Module:
    """Build with random weights drawn from ``seed``; on the ``meta`` device directly (shapes only)."""
    if device.type == "meta":
        with torch.device("meta"):
            return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _build_with_weights(build: Callable[[], nn.Module], path: Path, name: str, spec: EncoderSpec | None) -> nn.Module:
    """Build the module and load the file into it strictly.

    The module is first built on the ``meta`` device and takes the file's tensors as its parameters (no
    random initialization of a billion parameters); if that fails or leaves tensors unset (buffers that are
    not saved), it is built normally and the tensors are copied in.
    """
    state_dict = read_state_dict(path)
    model = _build_on_meta(build)
    if model is not None:
        _load(model, state_dict, path, name, spec, assign=True)
        if not _has_meta_tensors(model):
            return model.float()
    model = build()
    _load(model, state_dict, path, name, spec, assign=False)
    return model


def _build_on_meta(build: Callable[[], nn.Module]) -> nn.Module | None:
    try:
        with torch.device("meta"):
            return build()
    except PathattnError:
        raise
    except Exception:  # some architectures compute tensors at init that meta cannot; build them normally
        return None


def _load(
    model: nn.Module, state_dict: dict[str, torch.Tensor], path: Path, name: str, spec: EncoderSpec | None, assign: bool
) -> None:
    target = model.trunk if isinstance(model, ClassMeanPool) else model
    ignore = spec.ignore_prefixes if spec is not None else _classifier_prefixes(target)
    fix = "pass the weights of this architecture or choose the matching --encoder"
    load_state_dict_strict(target, state_dict, path, ignore, target=f"encoder '{name}'", fix=fix, assign=assign)


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of a timm model's classifier, which ``num_classes=0`` removes (e.g. ``fc.``, ``head.``)."""
    classifier = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    return tuple(f"{name}." for name in names)


def _has_meta_tensors(model: nn.Module) -> bool:
    return any(tensor.is_meta for tensor in (*model.parameters(), *model.buffers()))


def _create_from_hub(name: str, pretrained: bool) -> nn.Module:
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=0)
    except Exception as error:  # no network, gated repository, missing files: the user's fix is the same
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise PathattnError(
            f"cannot load encoder '{name}' from the Hugging Face Hub ({type(error).__name__}: {first}); download "
            "the weights where you have access and pass --weights FILE with the architecture's --encoder name "
            f"(a preset: {', '.join(PRESETS)}; or the timm model name)"
        ) from error


def _check_pooled(model: nn.Module, name: str) -> None:
    """Refuse a timm model configured to return tokens instead of one embedding per image."""
    if not isinstance(model, (ClassMeanPool, TruncatedResNet)) and getattr(model, "global_pool", None) == "":
        raise PathattnError(
            f"encoder '{name}' returns tokens, not one embedding per image (global_pool=''); use its preset "
            f"({', '.join(p for p, s in PRESETS.items() if s.pool == 'cls+mean')} for Virchow) with --weights FILE"
        )


def _pooled_dim(model: nn.Module) -> int:
    """D of a timm model with ``num_classes=0`` (its pre-logits size when it has one)."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def _preprocessing(
    model: nn.Module, spec: EncoderSpec | None
) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """Input (H, W), mean and std: the preset's values, else timm's data config of the model."""
    trunk = model.trunk if isinstance(model, ClassMeanPool) else model
    config = timm.data.resolve_data_config({}, model=trunk)
    side = spec.input_size if spec is not None else None
    size = (side, side) if side else (int(config["input_size"][1]), int(config["input_size"][2]))
    mean = spec.mean if spec is not None and spec.mean is not None else config["mean"]
    std = spec.std if spec is not None and spec.std is not None else config["std"]
    return size, _triple(mean), _triple(std)


def _triple(values: Any) -> tuple[float, ...]:
    a, b, c = (float(v) for v in values)
    return (a, b, c)


def _unknown_name_error(name: str) -> PathattnError:
    """The error for a name that is neither a preset nor a timm model, suggesting close names."""
    by_lower: dict[str, str] = {}
    for candidate in [*PRESETS, *PRESETS_3D, *timm.list_models()]:
        by_lower.setdefault(candidate.lower(), candidate)
    close = [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=6, cutoff=0.6)]
    suggestion = f"did you mean {', '.join(close)}? " if close else ""
    return PathattnError(
        f"unknown encoder '{name}'; {suggestion}(presets: {', '.join(PRESETS)}; 3-D: {', '.join(PRESETS_3D)}; "
        "any timm model name or hf-hub:ORG/REPO works)"
    )
