"""The Lightning system of the segmentation networks: loss, optimisation, whole-volume validation.

The network (any model of the ``segmentation`` family, built by the caller and injected) maps patches
(B, C, *S) to a :class:`~pathattn.models.seg.SegmentationOutput`. Training minimises MONAI's ``DiceCELoss``
(softmax Dice over every class plus cross-entropy, equal weights) on the full-resolution logits; with per-scale
auxiliary outputs (``deep_supervision="auxiliary"``) MONAI's ``DeepSupervisionLoss`` adds the same loss of each
coarser output against the label downsampled to it (nearest), weighted by ``deep_supervision_weights``
(default 1, 1/2, 1/4, 1/8, finest first). AdamW with a per-step cosine schedule. Validation predicts each whole
validation volume with the sliding window (as prediction does) and logs ``val/loss`` and ``val/dice``, the mean
over volumes and foreground classes of the Dice of the argmax, over the classes each volume's truth has (a
volume without lesions counts in ``val/loss`` only). A finished checkpoint is read back without Lightning by
:func:`pathattn.models.trained_segmentation.load_segmenter`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from torch import nn

from pathattn.fitting.gather import gather_outputs
from pathattn.fitting.trainer import adamw_cosine
from pathattn.segment.inference import WindowSettings, class_dice, predict_volume


class SegmentationSystem(L.LightningModule):
    """Train and validate a segmentation network.

    Args:
        network: the segmentation model (not saved as a hyperparameter; ``model_spec`` rebuilds it).
        model_spec: ``{"name": registered model, "kwargs": its arguments}`` of ``network``.
        inputs: how the volumes were prepared (``channels``, ``spacing``, ``presets``, ``patch_size``), kept with
            the checkpoint for prediction.
        lr: AdamW learning rate (peak of the cosine schedule).
        weight_decay: AdamW weight decay.
        deep_supervision_weights: loss weights of the full-resolution and coarser outputs, finest first (None:
            MONAI's ``exp`` weights).
        overlap: sliding-window overlap of validation.
        blend: ``gaussian`` or ``constant`` blending of validation windows.
    """

    def __init__(
        self,
        network: nn.Module,
        model_spec: Mapping[str, Any],
        inputs: Mapping[str, Any],
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        deep_supervision_weights: Sequence[float] | None = None,
        overlap: float = 0.5,
        blend: str = "gaussian",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["network"])
        self.network = network
        self.n_classes = int(model_spec["kwargs"]["out_channels"])
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
        weights = list(deep_supervision_weights) if deep_supervision_weights else None
        self.deep_loss = DeepSupervisionLoss(self.dice_ce, weight_mode="exp", weights=weights)
        self.window = WindowSettings(tuple(inputs["patch_size"]), overlap, blend)
        self._dice: list[dict[str, torch.Tensor]] = []

    def loss(self, output: Any, label: torch.Tensor) -> torch.Tensor:  # noqa: ANN401 - a SegmentationOutput
        """DiceCE of the logits, plus the weighted auxiliary losses of the coarser outputs when there are any."""
        if output.deep:
            return self.deep_loss([output.logits, *output.deep], label)
        return self.dice_ce(output.logits, label)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.network(batch["image"]), batch["label"])
        self.log("train/loss", loss, batch_size=len(batch["image"]), prog_bar=True)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        probabilities, _ = predict_volume(self.network, batch["image"], self.window)
        label = batch["label"]
        loss = self.dice_ce(torch.log(probabilities.clamp_min(1e-8))[None], label)
        self.log("val/loss", loss, batch_size=1, on_epoch=True, sync_dist=True)
        dice = torch.tensor(class_dice(probabilities.argmax(0), label[0, 0], self.n_classes), device=self.device)
        self._dice.append({"dice": dice.nanmean()[None], "index": batch["index"]})

    def on_validation_epoch_end(self) -> None:
        scores, self._dice = self._dice, []
        if not scores or self.trainer.sanity_checking:
            return
        joined = gather_outputs(self, {k: torch.cat([s[k] for s in scores]) for k in scores[0]})["dice"]
        if not np.isnan(joined).all():
            self.log("val/dice", float(np.nanmean(joined)), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_cosine(self.trainer, self.network.parameters(), self.hparams.lr, self.hparams.weight_decay)
