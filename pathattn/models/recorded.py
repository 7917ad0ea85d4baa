"""A network rebuilt from a Lightning checkpoint that records its registry name and arguments (``model_spec``).

Shared by the readers of the image classifiers' and the segmentation networks' checkpoints: the file is read with
``torch.load(weights_only=True)`` (no code in it runs), its ``hyper_parameters["model_spec"]`` names a registered
model of the expected family, and the weights under a prefix are loaded strictly into the rebuilt network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.io.weights import load_state_dict_strict, read_state_dict
from pathattn.registry import create_model, is_model, model_family


def load_recorded_network(
    path: str | os.PathLike[str], family: str, command: str, prefix: str, required: Sequence[str] = ()
) -> tuple[nn.Module, dict[str, Any], dict[str, torch.Tensor], str]:
    """The network of a checkpoint of ``command``, its hyperparameters, its state dict and the model's name.

    Args:
        path: the checkpoint.
        family: the registry family its model must be of (``image``, ``segmentation``).
        command: the command that writes such checkpoints, for the messages (``pathattn classify fit``).
        prefix: the network's weights' key prefix in the state dict (``model.``, ``network.``).
        required: other keys the state dict must hold (e.g. a normalisation table).

    Raises:
        PathattnError: the file cannot be read safely, is not such a checkpoint (one of another family), or its
            weights do not fit its recorded model.
    """
    fix = f"pass a checkpoint of '{command}' (RUN/fold_k/checkpoints/best.ckpt)"
    state = read_state_dict(path)
    hparams = dict(torch.load(path, map_location="cpu", weights_only=True).get("hyper_parameters") or {})
    spec = hparams.get("model_spec") or {}
    name = str(spec.get("name", ""))
    if not (is_model(name) and model_family(name) == family and all(k in state for k in required)):
        known = model_family(name) if is_model(name) else None
        what = f"a checkpoint of the {known} model {name}" if known else f"not a checkpoint of '{command}'"
        raise PathattnError(f"--checkpoint {path} is {what}; {fix}")
    network = create_model(name, **spec["kwargs"])
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    load_state_dict_strict(network, weights, path, target=f"its recorded model {name}", fix=fix)
    return network, hparams, state, name
