"""The Lightning system of the image classifiers: normalisation, loss, optimisation, evaluation.

The network (any registered model of the ``image`` family: a timm CNN, MEDUSA) maps normalised images
(B, 3, H, W) to an :class:`~pathattn.models.image.ImageOutput`. The system normalises uint8 images on the
device with the statistics of each image's centre (a table saved with the checkpoint), minimises the
(optionally class-weighted) cross-entropy with AdamW and a per-step cosine schedule, and logs the validation
loss and AUROC over every image of the epoch. A finished checkpoint is read back without Lightning by
:func:`pathattn.models.trained_image.load_image_classifier`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from pathattn.fitting.gather import gather_outputs
from pathattn.fitting.trainer import adamw_cosine


class ImageSystem(L.LightningModule):
    """Train and evaluate an image classifier.

    Args:
        model_spec: ``{"name": registered image model, "kwargs": its arguments}`` (the network is built from it,
            so :meth:`load` rebuilds it from a checkpoint).
        class_names: class names in index order.
        centres: the rows of the normalisation table (the last, ``*``, for centres never seen).
        norm_mean: (K, 3) channel means in [0, 1], one row per centre.
        norm_std: (K, 3) channel standard deviations.
        lr: AdamW learning rate (peak of the cosine schedule).
        weight_decay: AdamW weight decay.
        class_weights: per-class weights of the cross-entropy (None: unweighted).
        inputs: how the training images were made (``image_size``, ``channels``, ``min_lesion_fraction``), so that
            prediction and CAMs cut the same images by default.
    """

    def __init__(
        self,
        model_spec: Mapping[str, Any],
        class_names: Sequence[str],
        centres: Sequence[str] = ("*",),
        norm_mean: Sequence[Sequence[float]] = ((0.5, 0.5, 0.5),),
        norm_std: Sequence[Sequence[float]] = ((0.5, 0.5, 0.5),),
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        class_weights: Sequence[float] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from pathattn.registry import create_model

        self.save_hyperparameters()
        self.model = create_model(model_spec["name"], **model_spec["kwargs"])
        as_table = lambda rows: torch.tensor(np.asarray(rows, np.float32)).view(len(rows), 3, 1, 1)  # noqa: E731
        self.register_buffer("norm_mean", as_table(norm_mean))
        self.register_buffer("norm_std", as_table(norm_std))
        weights = torch.tensor(list(class_weights), dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self._outputs: list[dict[str, torch.Tensor]] = []

    def normalise(self, images: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """uint8 ``images`` (B, 3, H, W) as the network sees them: / 255, minus the centre's mean, / its std."""
        values = images.float() / 255.0
        return (values - self.norm_mean[centre]) / self.norm_std[centre]

    def forward(self, images: torch.Tensor, centre: torch.Tensor) -> Any:
        """The network's :class:`~pathattn.models.image.ImageOutput` for uint8 ``images`` of centre rows ``centre``."""
        return self.model(self.normalise(images, centre))

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self(batch["image"], batch["centre"])
        loss = nn.functional.cross_entropy(output.logits, batch["label"], weight=self.class_weights)
        self.log("train/loss", loss, batch_size=len(batch["label"]), prog_bar=True)
        return loss

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        output = self(batch["image"], batch["centre"])
        loss = nn.functional.cross_entropy(output.logits, batch["label"])
        self.log("val/loss", loss, batch_size=len(batch["label"]), on_epoch=True, sync_dist=True)
        self._outputs.append({"scores": torch.softmax(output.logits.float(), -1).detach(), "label": batch["label"],
                              "index": batch["index"]})  # fmt: skip

    def on_validation_epoch_end(self) -> None:
        from pathattn.train.metrics import classification_metrics

        outputs, self._outputs = self._outputs, []
        if not outputs or self.trainer.sanity_checking:
            return
        joined = gather_outputs(self, {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]})
        if len(np.unique(joined["label"])) < 2:
            return  # AUROC is undefined on one class
        self.log("val/auroc", classification_metrics(joined["label"], joined["scores"])["auroc"], sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_cosine(self.trainer, self.model.parameters(), self.hparams.lr, self.hparams.weight_decay)
