"""A trained segmentation network read from a checkpoint of ``pathattn segment fit``: network, classes, inputs.

Free of Lightning: the checkpoint is read with ``torch.load(weights_only=True)`` (no code in it runs), the
network is rebuilt from its recorded registry name and arguments and its weights (``network.*``) are loaded
strictly. ``inputs`` records how the training volumes were prepared (channels, spacing, presets, patch size),
so that prediction prepares new volumes the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from pathattn.io.weights import read_state_dict
from pathattn.models.recorded import load_recorded_network

PREFIX = "network."


@dataclass
class TrainedSegmenter:
    """A segmentation network ready to apply.

    Args:
        network: the model (eval mode): images (B, C, *S) to a ``SegmentationOutput``.
        name: its registered name.
        n_classes: classes, background included.
        inputs: how the training volumes were prepared (``channels``, ``spacing``, ``presets``, ``patch_size``).
    """

    network: nn.Module
    name: str
    n_classes: int
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device


def segmentation_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The network's weights in a checkpoint of ``pathattn segment fit``, or a bare state dict as it is."""
    state = read_state_dict(path)
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    return state


def load_segmenter(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainedSegmenter:
    """Read a checkpoint of ``pathattn segment fit`` (module docstring).

    Raises:
        PathattnError: the file cannot be read safely, is not a checkpoint of a segmentation network (one of
            ``pathattn train`` or ``pathattn classify fit``), or its weights do not fit its recorded network.
    """
    network, hparams, _, name = load_recorded_network(path, "segmentation", "pathattn segment fit", PREFIX)
    spec = hparams["model_spec"]
    n_classes = int(spec["kwargs"]["out_channels"])
    return TrainedSegmenter(network.to(device).eval(), name, n_classes, dict(hparams.get("inputs") or {}))
