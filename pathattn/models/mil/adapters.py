"""Load HIPPO and CLAM checkpoints into pathattn's models, by explicit key maps and strictly.

* HIPPO's ``AttentionMILModel`` (hippo-nn; the models on the Hugging Face Hub) -> :class:`ABMIL`.
  Gated: ``encoder.0``, ``attention_weights.attention_V.0``, ``attention_weights.attention_U.0``,
  ``attention_weights.attention_weights``, ``head``; plain: ``attention_weights.0`` and ``.2`` instead.
* CLAM-SB -> :class:`CLAMSB`: ``attention_net.0`` (fc), ``attention_net.3.attention_{a,b}.0``,
  ``attention_net.3.attention_c``, ``classifiers``, ``instance_classifiers.{i}``. Checkpoints of CLAM
  versions that add no dropout layer to the fc block have ``attention_net.2`` instead of ``.3``; both are
  accepted. Keys of the instance loss (``instance_loss_fn.*``, the SVM's state) are dropped.

Every parameter of a file must map onto a parameter of the model and the other way round; otherwise a
:class:`~pathattn.errors.PathattnError` lists the missing, unexpected and mis-shaped keys. Dropout
probabilities are not stored in checkpoints: pass the training values if you fine-tune.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

import torch

from pathattn.errors import PathattnError
from pathattn.io.weights import load_state_dict_strict, read_state_dict
from pathattn.models.mil.abmil import ABMIL
from pathattn.models.mil.clam import CLAMSB

Source = str | os.PathLike[str] | Mapping[str, torch.Tensor]
Model = TypeVar("Model", bound=ABMIL)

HIPPO_GATED_KEYS = {
    "encoder.0.": "encoder.0.",
    "attention_weights.attention_V.0.": "attention.tanh.0.",
    "attention_weights.attention_U.0.": "attention.gate.0.",
    "attention_weights.attention_weights.": "attention.score.",
    "head.": "head.",
}
HIPPO_PLAIN_KEYS = {
    "encoder.0.": "encoder.0.",
    "attention_weights.0.": "attention.tanh.0.",
    "attention_weights.2.": "attention.score.",
    "head.": "head.",
}
CLAM_SB_KEYS = {
    "attention_net.0.": "encoder.0.",
    **{
        f"attention_net.{index}.{clam}": ours
        for index in (2, 3)
        for clam, ours in (
            ("attention_a.0.", "attention.tanh.0."),
            ("attention_b.0.", "attention.gate.0."),
            ("attention_c.", "attention.score."),
        )
    },
    "classifiers.": "head.",
    "instance_classifiers.": "instance_classifiers.",
}
CLAM_IGNORED_PREFIXES = ("instance_loss_fn.",)


def rename_keys(state_dict: Mapping[str, torch.Tensor], key_map: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Replace the first matching prefix of every key; keys without a match are kept (and later reported).

    Args:
        state_dict: parameter name -> tensor.
        key_map: source prefix -> target prefix.

    Returns:
        The renamed state dict.
    """
    renamed = {}
    for key, value in state_dict.items():
        prefix = next((source for source in key_map if key.startswith(source)), None)
        renamed[key if prefix is None else key_map[prefix] + key[len(prefix) :]] = value
    return renamed


def load_hippo(model: ABMIL, source: Source) -> ABMIL:
    """Load a HIPPO ``AttentionMILModel`` checkpoint into an :class:`ABMIL` of the same sizes.

    Args:
        model: gated or plain ABMIL with HIPPO's sizes (``abmil`` / ``abmil_plain``).
        source: a weights file or a state dict.

    Returns:
        ``model``, with the weights loaded.

    Raises:
        PathattnError: the file cannot be read or its keys or shapes do not fit ``model``.
    """
    gated = model.attention.gate is not None
    return _load(model, source, HIPPO_GATED_KEYS if gated else HIPPO_PLAIN_KEYS, "HIPPO", ())


def load_clam_sb(model: CLAMSB, source: Source) -> CLAMSB:
    """Load a CLAM-SB checkpoint into a :class:`CLAMSB` of the same sizes.

    Args:
        model: the CLAM-SB model (``clam_sb``).
        source: a weights file (CLAM's ``s_{fold}_checkpoint.pt``) or a state dict.

    Returns:
        ``model``, with the weights loaded.

    Raises:
        PathattnError: the file cannot be read or its keys or shapes do not fit ``model``.
    """
    return _load(model, source, CLAM_SB_KEYS, "CLAM-SB", CLAM_IGNORED_PREFIXES)


def abmil_from_hippo(source: Source, *, dropout: float = 0.25) -> ABMIL:
    """Build an :class:`ABMIL` with the sizes of a HIPPO checkpoint and load it.

    Args:
        source: a weights file or a state dict of ``hippo.AttentionMILModel``.
        dropout: HIPPO's dropout (0.25 by default; used on the gates as well when gated).

    Returns:
        The loaded model, in eval mode.
    """
    state_dict = _read(source)
    gated = "attention_weights.attention_V.0.weight" in state_dict
    attn_key = "attention_weights.attention_V.0.weight" if gated else "attention_weights.0.weight"
    missing = [key for key in ("encoder.0.weight", attn_key, "head.weight") if key not in state_dict]
    if missing:
        raise PathattnError(
            f"{_name(source)} is not a HIPPO AttentionMILModel checkpoint: it has no {', '.join(missing)}; "
            "pass the model_best.pt of a HIPPO run"
        )
    encoder = state_dict["encoder.0.weight"]
    model = ABMIL(
        encoder.shape[1],
        state_dict["head.weight"].shape[0],
        embed_dim=encoder.shape[0],
        attn_dim=state_dict[attn_key].shape[0],
        gated=gated,
        dropout=dropout,
        attention_dropout=dropout if gated else 0.0,
    )
    return load_hippo(model, state_dict).eval()


def _load(model: Model, source: Source, key_map: Mapping[str, str], origin: str, ignored: tuple[str, ...]) -> Model:
    state_dict = rename_keys(_read(source), key_map)
    load_state_dict_strict(
        model,
        state_dict,
        _name(source),
        ignored,
        target=f"pathattn {type(model).__name__} (as a {origin} checkpoint)",
        fix="build the model with the checkpoint's sizes (in_dim, embed_dim, attn_dim, n_classes, gating)",
    )
    return model


def _name(source: Source) -> str:
    return "the given state dict" if isinstance(source, Mapping) else str(source)


def _read(source: Source) -> dict[str, torch.Tensor]:
    return dict(source) if isinstance(source, Mapping) else read_state_dict(source)
