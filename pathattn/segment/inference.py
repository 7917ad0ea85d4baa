"""Whole-volume inference: MONAI's sliding window over a prepared volume, class probabilities and gate maps.

Windows of the training patch size slide over the volume with ``overlap`` (a volume smaller than a window is
padded and cropped back by MONAI); overlapping windows are blended with a Gaussian (``gaussian``, MONAI's
sigma of 1/8 of the window) or averaged (``constant``). The network's softmax probabilities are stitched, and
so are its attention gates' maps, each at its own level's resolution (MONAI stitches outputs whose size is a
fixed fraction of the window's), then resampled (trilinear) to the volume's grid. With ``tta`` the volume is
also predicted flipped along every combination of the spatial axes, flipped back, and the 2^d predictions
averaged (maps included).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch import nn

Blend = Literal["gaussian", "constant"]


@dataclass(frozen=True)
class WindowSettings:
    """How a volume is swept.

    Args:
        roi_size: the window in voxels (the training patch size).
        overlap: fraction of a window shared with its neighbour along each axis, in [0, 1).
        blend: ``gaussian`` or ``constant`` weighting of overlapping windows.
        batch_size: windows per forward pass.
        tta: also predict the flipped volumes and average.
    """

    roi_size: tuple[int, ...]
    overlap: float = 0.5
    blend: Blend = "gaussian"
    batch_size: int = 4
    tta: bool = False


def _predictor(network: nn.Module) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
    """The window function: softmax probabilities (B, K, *S) and every gate map (B, 1, *S_level)."""

    def predict(windows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = network(windows)
        return (torch.softmax(output.logits.float(), dim=1), *(a.float() for a in output.attention))

    return predict


def _sweep(network: nn.Module, image: torch.Tensor, settings: WindowSettings) -> list[torch.Tensor]:
    outputs = sliding_window_inference(
        image, settings.roi_size, settings.batch_size, _predictor(network), overlap=settings.overlap,
        mode=settings.blend, padding_mode="constant", cval=0.0,
    )  # fmt: skip
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


@torch.inference_mode()
def predict_volume(
    network: nn.Module, image: torch.Tensor, settings: WindowSettings
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Class probabilities and gate maps of one volume.

    Args:
        network: a segmentation network in eval mode (returns ``SegmentationOutput``).
        image: (1, C, *S) on the network's device.
        settings: window, overlap, blending, test-time flips.

    Returns:
        probabilities (K, *S) and the gates' maps, finest level first, each (*S) in [0, 1] on the volume's grid.
    """
    dims = list(range(2, image.dim()))
    flips = [c for n in range(len(dims) + 1) for c in itertools.combinations(dims, n)] if settings.tta else [()]
    total: list[torch.Tensor] | None = None
    for axes in flips:
        outputs = _sweep(network, image.flip(axes) if axes else image, settings)
        outputs = [o.flip(axes) if axes else o for o in outputs]
        total = outputs if total is None else [t + o for t, o in zip(total, outputs, strict=True)]
    mean = [t / len(flips) for t in total]
    size = tuple(image.shape[2:])
    mode = "trilinear" if len(size) == 3 else "bilinear"
    maps = [F.interpolate(m, size=size, mode=mode, align_corners=False)[0, 0].clamp(0, 1) for m in mean[1:]]
    return mean[0][0], maps


def class_dice(prediction: torch.Tensor, truth: torch.Tensor, n_classes: int) -> list[float]:
    """Dice of every foreground class of one case; NaN for a class the truth does not have (MONAI's ``ignore_empty``).

    Args:
        prediction: (*S) class indices.
        truth: (*S) class indices.
        n_classes: classes, background included.
    """
    scores = []
    for c in range(1, n_classes):
        p, t = prediction == c, truth == c
        scores.append(float(2 * (p & t).sum()) / float(p.sum() + t.sum()) if t.any() else math.nan)
    return scores
