"""A trained MIL model, whatever wrote it: the network, its input standardisation and how its logits are read.

:func:`load_trained` reads three checkpoint formats, telling them apart by their content (``auto``) or as
named (``--checkpoint-format``):

============  ===================================================================================================
format        what the file holds
============  ===================================================================================================
``pathattn``  a Lightning ``.ckpt`` of ``pathattn train``: ``hyper_parameters.model_spec`` (the registered model
              and its arguments), task, class names, and a ``state_dict`` of the network (``model.*``) and the
              training fold's ``feature_mean`` / ``feature_std``
``hippo``     the state dict of a HIPPO ``AttentionMILModel`` (hippo-nn; ``encoder.0``, ``attention_weights.*``,
              ``head``), e.g. ``model_best.pt``; loaded as :class:`~pathattn.models.mil.ABMIL`
``clam_sb``   the state dict of a CLAM-SB model (CLAM's ``s_{fold}_checkpoint.pt``: ``attention_net.*``,
              ``classifiers``, ``instance_classifiers.*``); loaded as :class:`~pathattn.models.mil.CLAMSB`
============  ===================================================================================================

HIPPO and CLAM models are classifiers without input standardisation; their class names are the indices
``"0" .. "C-1"``. Every file is read with ``torch.load(weights_only=True)`` (or safetensors): no code in a
checkpoint is ever run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.io.weights import TORCH_SUFFIXES, load_state_dict_strict, read_state_dict
from pathattn.models.checkpoint_formats import CHECKPOINT_FORMATS, CheckpointFormat
from pathattn.models.mil.adapters import abmil_from_hippo, load_clam_sb
from pathattn.models.mil.clam import CLAMSB
from pathattn.models.survival import risk_from_hazards
from pathattn.registry import create_model

Task = Literal["classification", "survival"]
SurvivalLoss = Literal["nll", "cox"]
KnownFormat = Literal["pathattn", "hippo", "clam_sb"]

HIPPO_ATTENTION_KEYS = ("attention_weights.attention_V.0.weight", "attention_weights.0.weight")  # gated, plain
CLAM_ATTENTION_KEYS = tuple(f"attention_net.{index}.attention_a.0.weight" for index in (3, 2))  # with, without dropout
# Each format's alternative key sets: a state dict is of the format when it holds every key of one of them.
SIGNATURES: dict[KnownFormat, tuple[frozenset[str], ...]] = {
    "pathattn": (frozenset({"feature_mean", "feature_std"}),),
    "hippo": tuple(frozenset({"encoder.0.weight", key, "head.weight"}) for key in HIPPO_ATTENTION_KEYS),
    "clam_sb": tuple(frozenset({"attention_net.0.weight", key, "classifiers.weight"}) for key in CLAM_ATTENTION_KEYS),
}
DESCRIPTIONS: dict[KnownFormat, str] = {
    "pathattn": "a checkpoint of 'pathattn train' (RUN/fold_k/checkpoints/*.ckpt)",
    "hippo": "a HIPPO AttentionMILModel state dict",
    "clam_sb": "a CLAM-SB state dict (CLAM's s_{fold}_checkpoint.pt)",
}
PATHATTN_PREFIX = "model."
LISTED_KEYS = 4  # keys named when a file is of no format


@dataclass(frozen=True)
class TrainedModel:
    """A MIL network with the transform its inputs need and the meaning of its logits.

    Args:
        network: maps ``features (B, N, D)`` and ``mask (B, N)`` to a ``MILOutput``; put in eval mode here.
        task: ``classification`` (logits of C classes) or ``survival``.
        survival_loss: how a survival network's logits become a risk: ``nll`` (discrete hazards) or ``cox``.
        class_names: the class names in index order (classification).
        feature_mean: (D,) subtracted from raw features (None: no standardisation).
        feature_std: (D,) raw features are divided by it after centring.
        name: the registered model name, for the outputs.
    """

    network: nn.Module
    task: Task = "classification"
    survival_loss: SurvivalLoss = "nll"
    class_names: tuple[str, ...] = ()
    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.network.eval()

    @property
    def in_dim(self) -> int:
        """D, the feature size the network takes."""
        return int(self.network.in_dim)

    @property
    def device(self) -> torch.device:
        """Where the network's parameters are."""
        return next(self.network.parameters()).device

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw ``features`` (..., D) as the network sees them (standardised with the checkpoint's statistics)."""
        if self.feature_mean is None or self.feature_std is None:
            return features
        mean, std = self.feature_mean.to(features), self.feature_std.to(features)
        return (features - mean) / std

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's outputs, in the dtype of ``logits`` (B, C).

        Returns:
            (B, C) class probabilities, or (B, 1) the risk of a survival model (higher = shorter survival:
            the Cox score, or ``-sum_t S(t)`` of the discrete hazards).
        """
        if self.task == "classification":
            return torch.softmax(logits, dim=-1)
        if self.survival_loss == "cox":
            return logits[:, :1]
        return risk_from_hazards(logits)[:, None]

    @torch.inference_mode()
    def predict_bag(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The outputs and raw attention of one bag of raw features.

        Args:
            features: (N, D) raw instance features (standardised here), N >= 1.

        Returns:
            scores: (C,) class probabilities or (1,) risk (:meth:`scores`), and attention: (N, K) raw
            attention logits of K heads, both float32 on the CPU.
        """
        output = self.network(self.normalize(features.to(self.device))[None], None)
        return self.scores(output.logits)[0].float().cpu(), output.attention[0].float().cpu()


def detect_format(state_dict: Mapping[str, torch.Tensor]) -> KnownFormat | None:
    """The format whose keys ``state_dict`` holds (module docstring), or None."""
    keys = set(state_dict)
    return next((name for name, options in SIGNATURES.items() if any(o <= keys for o in options)), None)


def load_trained(
    path: str | os.PathLike[str], device: str = "cpu", checkpoint_format: CheckpointFormat = "auto"
) -> TrainedModel:
    """Load a trained model from a checkpoint of any supported format (module docstring).

    Args:
        path: the checkpoint file.
        device: where the network goes.
        checkpoint_format: ``auto`` (detected from the keys), ``pathattn``, ``hippo`` or ``clam_sb``.

    Returns:
        The model, in eval mode on ``device``.

    Raises:
        PathattnError: an unknown format name, a missing or unreadable file, content of no supported format
            (or not of the format named), or weights that do not fit the recorded model.
    """
    if checkpoint_format not in CHECKPOINT_FORMATS:
        raise PathattnError(f"unknown --checkpoint-format {checkpoint_format!r}; use {', '.join(CHECKPOINT_FORMATS)}")
    path = Path(path)
    state_dict = read_state_dict(path)
    found = detect_format(state_dict)
    if found is None or checkpoint_format not in ("auto", found):
        raise PathattnError(_unrecognised(path, state_dict, checkpoint_format))
    model = LOADERS[found](path, state_dict)
    model.network.to(device)
    return model


def _unrecognised(path: Path, state_dict: Mapping[str, torch.Tensor], checkpoint_format: CheckpointFormat) -> str:
    what = "of no supported format" if checkpoint_format == "auto" else f"not {DESCRIPTIONS[checkpoint_format]}"
    keys = ", ".join(list(state_dict)[:LISTED_KEYS])
    accepted = "; ".join(f"{name}: {description}" for name, description in DESCRIPTIONS.items())
    return f"checkpoint {path} is {what}: its first keys are {keys}; --checkpoint-format accepts auto or {accepted}"


def _load_pathattn(path: Path, state_dict: Mapping[str, torch.Tensor]) -> TrainedModel:
    """Rebuild the recorded model of a ``pathattn train`` checkpoint and load its weights strictly."""
    content = torch.load(path, map_location="cpu", weights_only=True) if path.suffix.lower() in TORCH_SUFFIXES else {}
    hparams = content.get("hyper_parameters") or {}
    spec = hparams.get("model_spec")
    if not spec:
        raise PathattnError(
            f"checkpoint {path} does not record its model (hyper_parameters.model_spec); pass a .ckpt written by "
            "'pathattn train', or name its format with --checkpoint-format"
        )
    network = create_model(spec["name"], **spec["kwargs"])
    weights = {k.removeprefix(PATHATTN_PREFIX): v for k, v in state_dict.items() if k.startswith(PATHATTN_PREFIX)}
    load_state_dict_strict(network, weights, path, target=f"its recorded model {spec['name']}",
                           fix="pass the checkpoint as 'pathattn train' wrote it")  # fmt: skip
    standardize = hparams.get("feature_norm", "none") != "none"
    return TrainedModel(
        network,
        task=hparams.get("task", "classification"),
        survival_loss=hparams.get("survival_loss", "nll"),
        class_names=tuple(hparams.get("class_names") or ()),
        feature_mean=state_dict["feature_mean"] if standardize else None,
        feature_std=state_dict["feature_std"] if standardize else None,
        name=spec["name"],
    )


def _load_hippo(path: Path, state_dict: Mapping[str, torch.Tensor]) -> TrainedModel:
    """A HIPPO ``AttentionMILModel`` as ABMIL (gated or plain, sizes from the tensors)."""
    network = abmil_from_hippo(path)
    return _classifier(network, "abmil" if network.attention.gate is not None else "abmil_plain")


def _load_clam_sb(path: Path, state_dict: Mapping[str, torch.Tensor]) -> TrainedModel:
    """A CLAM-SB state dict as :class:`CLAMSB` with the sizes read from its tensors."""
    fc = state_dict["attention_net.0.weight"]  # (L, D)
    attention = next(state_dict[key] for key in CLAM_ATTENTION_KEYS if key in state_dict)  # (attn_dim, L)
    n_classes = state_dict["classifiers.weight"].shape[0]
    network = CLAMSB(fc.shape[1], n_classes, embed_dim=fc.shape[0], attn_dim=attention.shape[0])
    return _classifier(load_clam_sb(network, path), "clam_sb")


def _classifier(network: nn.Module, name: str) -> TrainedModel:
    """A classifier of another code base: no standardisation, its class indices as class names."""
    return TrainedModel(network, class_names=tuple(str(c) for c in range(network.n_classes)), name=name)


LOADERS = {"pathattn": _load_pathattn, "hippo": _load_hippo, "clam_sb": _load_clam_sb}
