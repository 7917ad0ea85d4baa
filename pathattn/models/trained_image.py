"""A trained image classifier read from a checkpoint of ``pathattn classify fit``: network, normalisation, classes.

Stage-neutral (prediction, CAMs and the report use it) and free of Lightning: the checkpoint is read with
``torch.load(weights_only=True)`` (no code in it runs), the network is rebuilt from its recorded registry
name and arguments, and its weights (``model.*``) and per-centre normalisation table (``norm_mean``,
``norm_std``: one row per training centre and a pooled last row for any other centre) are loaded strictly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from pathattn.models.recorded import load_recorded_network

PREFIX = "model."
COMMAND = "pathattn classify fit"


class LogitsOf(nn.Module):
    """``network(images).logits``: the tensor-to-tensor view of an image classifier that CAM libraries call."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images).logits


@dataclass
class TrainedImageClassifier:
    """An image classifier ready to apply.

    Args:
        network: the image model (eval mode), normalised images (B, 3, H, W) to an ``ImageOutput``.
        class_names: class names in index order.
        centres: rows of the normalisation table (the last, ``*``, for any centre not listed).
        norm_mean: (K, 3) channel means in [0, 1].
        norm_std: (K, 3) channel standard deviations.
        inputs: how the training images were made (``image_size``, ``channels``, ``min_lesion_fraction``).
        name: the registered model name.
    """

    network: nn.Module
    class_names: tuple[str, ...]
    centres: tuple[str, ...]
    norm_mean: np.ndarray
    norm_std: np.ndarray
    inputs: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def normalise(self, images: np.ndarray, centres: Sequence[str]) -> torch.Tensor:
        """uint8 ``images`` (B, 3, H, W) of ``centres`` as the network sees them: (B, 3, H, W) float32 on its device."""
        rows = {name: i for i, name in enumerate(self.centres)}
        index = [rows.get(c, len(rows) - 1) for c in centres]
        mean = torch.tensor(self.norm_mean[index], dtype=torch.float32, device=self.device)[..., None, None]
        std = torch.tensor(self.norm_std[index], dtype=torch.float32, device=self.device)[..., None, None]
        return (torch.from_numpy(np.asarray(images)).to(self.device).float() / 255.0 - mean) / std

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray, centres: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N, K) of uint8 images (N, 3, H, W)."""
        parts = [
            torch.softmax(self.network(self.normalise(images[s : s + batch_size], centres[s : s + batch_size])).logits
                          .float(), -1).cpu().numpy()
            for s in range(0, len(images), batch_size)
        ]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, len(self.class_names)))


def load_image_classifier(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TrainedImageClassifier:
    """Read a checkpoint of ``pathattn classify fit`` (module docstring).

    Raises:
        PathattnError: the file cannot be read safely, is not a checkpoint of an image classifier (e.g. one of
            ``pathattn train``, whose model is of the MIL family), or its weights do not fit its recorded model.
    """
    network, hparams, state, name = load_recorded_network(path, "image", COMMAND, PREFIX, required=("norm_mean",))
    return TrainedImageClassifier(
        network.to(device).eval(), tuple(hparams["class_names"]), tuple(hparams["centres"]),
        state["norm_mean"].reshape(-1, 3).numpy().astype(np.float64),
        state["norm_std"].reshape(-1, 3).numpy().astype(np.float64), dict(hparams.get("inputs") or {}), name,
    )  # fmt: skip
