"""Class activation maps (CAMs) of CNN image classifiers, through pytorch-grad-cam, under one convention.

Methods (``A^k``: activation map k of the target layer, ``y^c``: the target class's logit):

* ``gradcam`` (Selvaraju et al. 2017): weights ``mean_ij ∂y^c/∂A^k_ij``;
* ``gradcam++`` (Chattopadhay et al. 2018): weights ``Σ_ij a_ij ReLU(∂y^c/∂A^k_ij)`` with the closed-form ``a_ij``;
* ``eigencam`` (Muhammad & Yeasin 2020): the activations (positions x channels, centred) projected on their
  first right-singular vector: class-agnostic and gradient-free. The sign of a singular vector is arbitrary
  (LAPACK builds differ; pytorch-grad-cam issue #315), and the ReLU below would then erase the salient
  region, so the projection is flipped when ``|min| > |max|`` (Seg-Eigen-CAM, Eq. 13, the library's
  ``get_2d_projection_with_sign_correction``);
* ``scorecam`` (Wang et al. 2020): weights ``softmax_k y^c(X ⊙ H^k)`` with ``H^k`` the upsampled, min-max
  normalised ``A^k``: K forward passes per image, no gradients.

**The convention**, the same for every method so that their maps compare: the map ``Σ_k w_k A^k`` at the
layer's resolution, **ReLU**, **bilinear upsampling** to the input size (``cv2.resize``, half-pixel
centres), then **min-max** per map (a constant map becomes zeros). pytorch-grad-cam min-max-normalises
before resizing; bilinear interpolation commutes with that affine map, so the result is the same as resizing
first (up to its 1e-7 epsilon). Targets are logits (``ClassifierOutputTarget``); without targets each
image's top-1 class is explained. The library puts the model in ``eval()`` mode.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal
from unittest import mock

import numpy as np
import torch
import tqdm
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM, score_cam
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

from pathattn.io.atomic import atomic_path
from pathattn.scoremaps.wsol import normalize_map

CamMethod = Literal["gradcam", "gradcam++", "eigencam", "scorecam"]


class SignCorrectedEigenCAM(EigenCAM):
    """Eigen-CAM with the projection's sign fixed (``|min| > |max|`` flips it) before the ReLU."""

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):  # noqa: ANN001, ANN201 - the library's signature
        return get_2d_projection_with_sign_correction(activations)


class QuietScoreCAM(ScoreCAM):
    """Score-CAM without the library's per-image progress bar (it would flood the logs of a batch)."""

    def get_cam_weights(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - the library's signature
        quiet = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))
        with mock.patch.object(score_cam, "tqdm", quiet):
            return super().get_cam_weights(*args, **kwargs)


CAM_METHODS: Mapping[str, type[BaseCAM]] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "eigencam": SignCorrectedEigenCAM,
    "scorecam": QuietScoreCAM,
}


def compute_cams(
    model: torch.nn.Module,
    target_layer: torch.nn.Module,
    images: torch.Tensor,
    targets: Sequence[int] | None = None,
    method: CamMethod = "gradcam",
    batch_size: int = 32,
) -> np.ndarray:
    """CAMs of a batch of images under the module's convention.

    Args:
        model: the classifier, images (B, C, H, W) to logits (B, classes).
        target_layer: the convolutional layer whose activations are weighted (e.g. ``model.layer4``).
        images: (B, C, H, W) on the model's device.
        targets: the class explained for each image (the true class for WSOL; None: the top-1 class).
        method: one of ``gradcam``, ``gradcam++``, ``eigencam``, ``scorecam``.
        batch_size: masked images per forward pass (Score-CAM).

    Returns:
        (B, H, W) float64 maps in [0, 1].

    Raises:
        ValueError: an unknown method, a target count other than B, or a target class the model lacks.
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; use one of {', '.join(CAM_METHODS)}")
    if targets is not None and len(targets) != len(images):
        raise ValueError(f"{len(targets)} targets for {len(images)} images")
    chosen = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    maps = None
    with CAM_METHODS[method](model=model, target_layers=[target_layer]) as cam:
        cam.batch_size = batch_size
        maps = cam(input_tensor=images, targets=chosen)
    if maps is None:  # the library's context manager swallows an IndexError (a class the model lacks)
        raise ValueError(f"target classes {list(targets or [])} are out of range for the model's outputs")
    return np.stack([normalize_map(m) for m in maps])


def write_score_maps(folder: str | os.PathLike[str], image_ids: Sequence[str], maps: np.ndarray) -> list[Path]:
    """Save maps as ``{image_id}.npy`` (atomically), the layout ``pathattn evaluate wsol --maps`` reads.

    Args:
        folder: the output folder.
        image_ids: one id per map.
        maps: (B, H, W).
    """
    if len(image_ids) != len(maps):
        raise ValueError(f"{len(image_ids)} ids for {len(maps)} maps")
    paths = []
    for image_id, score in zip(image_ids, maps, strict=True):
        with atomic_path(Path(folder) / f"{image_id}.npy") as tmp:
            np.save(tmp, np.asarray(score, np.float32))
        paths.append(Path(folder) / f"{image_id}.npy")
    return paths
