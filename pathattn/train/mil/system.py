"""The Lightning system of attention-MIL: losses, optimisation and evaluation around an injected network.

The network (any ``pathattn.models.mil`` model) maps ``features (B, N, D)`` and ``mask (B, N)`` to logits
and raw attention. The system adds the task's loss (cross-entropy, discrete-time survival NLL or Cox),
the model's own auxiliary terms (ACMIL branch and diversity losses, CLAM's instance loss), the AEM
attention-entropy regulariser, AdamW with a per-step cosine schedule, and out-of-sample predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.fitting.config import Task
from pathattn.fitting.gather import gather_outputs
from pathattn.fitting.trainer import adamw_cosine
from pathattn.train.mil.config import FeatureNorm, SurvivalLoss


class MILSystem(L.LightningModule):
    """Train and evaluate a MIL network on slide-level targets.

    Args:
        model: the network; ``model(features, mask)`` returns a ``MILOutput`` (``logits`` (B, C), raw
            ``attention`` (B, N, K)). ACMIL's branch and diversity losses (``model.losses``) and CLAM's
            instance loss (``model.instance_loss``, weighted ``1 - clam_bag_weight``) are added for
            classification.
        task: ``classification`` (C = number of classes) or ``survival`` (C = number of time bins for
            ``nll``, 1 for ``cox``).
        lr: AdamW learning rate (peak of the cosine schedule).
        weight_decay: AdamW weight decay.
        class_weights: per-class weights of the cross-entropy (None: unweighted).
        survival_loss: ``nll`` (discrete-time hazards) or ``cox`` (partial likelihood; needs several bags
            per step).
        aem_lambda: weight of the AEM attention-entropy regulariser (0 disables it).
        aem_anneal: ``cosine`` anneals the weight from ``aem_lambda`` to 0 over training.
        clam_bag_weight: CLAM's weight of the bag loss against the instance loss (0.7 in CLAM).
        model_spec: the registered name and keyword arguments of ``model`` (saved with checkpoints, so
            :meth:`load` can rebuild the network).
        class_names: the class names in index order (classification), saved for prediction.
        feature_norm: ``standardize`` subtracts a per-dimension mean and divides by a per-dimension standard
            deviation (buffers set by :meth:`set_feature_stats` from the training fold and saved with the
            checkpoint) before the network; ``none`` feeds the features as they are.

    For survival with ``nll``, ``batch["label"]`` holds each bag's time-bin index.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task = "classification",
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        class_weights: list[float] | None = None,
        survival_loss: SurvivalLoss = "nll",
        aem_lambda: float = 0.0,
        aem_anneal: Literal["none", "cosine"] = "none",
        clam_bag_weight: float = 0.7,
        model_spec: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        feature_norm: FeatureNorm = "none",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        dim = int(model.in_dim)
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self._outputs: dict[str, list[dict[str, torch.Tensor]]] = {"val": [], "test": []}

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the statistics of ``feature_norm="standardize"``: ``mean`` and ``std`` (D,); a zero std counts as 1."""
        std = torch.as_tensor(std, dtype=torch.float32)
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` (B, N, D) as the network sees them (standardised when ``feature_norm`` says so)."""
        if self.hparams.get("feature_norm", "none") == "none":
            return features
        return (features - self.feature_mean.to(features.dtype)) / self.feature_std.to(features.dtype)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Any:
        """The network's output for raw ``features`` (B, N, D) and ``mask`` (B, N), after :meth:`normalize`."""
        return self.model(self.normalize(features), mask)

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self(batch["features"], batch["mask"])
        terms = self._loss_terms(output, batch)
        total = torch.stack(list(terms.values())).sum()
        if self._logs_this_step():
            size = len(batch["index"])
            for name, value in terms.items():
                self.log(f"train/{name}", value, batch_size=size)
            self.log("train/loss", total, batch_size=size, prog_bar=True)
        return total

    def _logs_this_step(self) -> bool:
        """Whether the Trainer writes this step's values (every ``log_every_n_steps``-th step, as Lightning counts).

        Logging a value costs more than a training step on a bag of a few instances, and Lightning drops the
        values of the steps between, so they are not logged at all.
        """
        return self._trainer is None or (self.global_step + 1) % self.trainer.log_every_n_steps == 0

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        output = self(batch["features"], batch["mask"])
        return {"index": batch["index"], "scores": self.scores(output.logits), "logits": output.logits,
                "attention": output.attention, "mask": batch["mask"]}  # fmt: skip

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def configure_optimizers(self) -> dict[str, Any]:
        trained = [p for p in self.model.parameters() if p.requires_grad]
        return adamw_cosine(self.trainer, trained, self.hparams.lr, self.hparams.weight_decay)

    # -- losses ------------------------------------------------------------------------------------

    def _loss_terms(self, output: Any, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term of this step, by name (their sum is minimised)."""
        from pathattn.models.mil.aem import attention_entropy_loss

        terms = {"task": self._task_loss(output.logits, batch)}
        if self.hparams.task == "classification":
            terms.update(self._model_terms(output, batch["label"], terms["task"]))
        weight = self._aem_weight()
        if weight > 0:
            terms["aem"] = weight * attention_entropy_loss(output.attention, batch["mask"])
        return terms

    def _model_terms(self, output: Any, labels: torch.Tensor, task_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's own auxiliary losses (ACMIL: branch, diversity; CLAM: weighted instance loss)."""
        if hasattr(self.model, "losses"):  # ACMIL; its "slide" term is the task loss itself
            return {k: v for k, v in self.model.losses(output, labels).items() if k != "slide"}
        if hasattr(self.model, "instance_loss"):
            weight = float(self.hparams.clam_bag_weight)
            return {"task": weight * task_loss, "instance": (1 - weight) * self.model.instance_loss(output, labels)}
        return {}

    @classmethod
    def load(cls, checkpoint: str | Path, map_location: str | torch.device = "cpu") -> MILSystem:
        """Rebuild a trained system (network included) from a checkpoint of ``pathattn train``.

        The file is read with ``torch.load(weights_only=True)``: no code in it runs.

        Raises:
            PathattnError: the file cannot be read safely, does not record its model, or its weights do not fit
                that model (one line naming the file).
        """
        from pathattn.io.weights import load_state_dict_strict, read_state_dict
        from pathattn.registry import create_model

        state_dict = read_state_dict(checkpoint)
        hparams = dict(torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters") or {})
        spec = hparams.get("model_spec")
        if not spec:
            raise PathattnError(f"{checkpoint} does not record its model; it was not written by 'pathattn train'")
        system = cls(create_model(spec["name"], **spec["kwargs"]), **hparams)
        load_state_dict_strict(system, state_dict, checkpoint, target=f"its recorded model {spec['name']}",
                               fix="pass the checkpoint as 'pathattn train' wrote it")  # fmt: skip
        return system.to(map_location)

    def _task_loss(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.hparams.task == "classification":
            return nn.functional.cross_entropy(logits, batch["label"], weight=self.class_weights)
        from pathattn.train.survival import cox_ph_loss, nll_discrete_survival

        if self.hparams.survival_loss == "cox":
            return cox_ph_loss(logits[:, 0], batch["time"], batch["event"])
        return nll_discrete_survival(logits, batch["label"], batch["event"])

    def _aem_weight(self) -> float:
        """The AEM weight at this step: constant, or cosine-annealed from ``aem_lambda`` to 0."""
        from pathattn.models.mil.aem import AEMSchedule

        lam = float(self.hparams.aem_lambda)
        if lam <= 0 or self.hparams.aem_anneal == "none" or self._trainer is None:
            return lam
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return AEMSchedule(lam, self.hparams.aem_anneal, total)(self.global_step)

    # -- evaluation --------------------------------------------------------------------------------

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities (classification) or a risk score (B, 1), higher = shorter survival."""
        if self.hparams.task == "classification":
            return torch.softmax(logits.float(), dim=-1)
        if self.hparams.survival_loss == "cox":
            return logits[:, :1].float()
        from pathattn.models.survival import risk_from_hazards

        return risk_from_hazards(logits.float())[:, None]

    def _evaluate(self, batch: Mapping[str, torch.Tensor], stage: str) -> None:
        output = self(batch["features"], batch["mask"])
        loss = self._task_loss(output.logits, batch)
        self.log(f"{stage}/loss", loss, batch_size=len(batch["index"]), on_epoch=True, sync_dist=True)
        keep = ("label", "time", "event", "index")
        self._outputs[stage].append({"scores": self.scores(output.logits).detach(),
                                     **{k: batch[k].detach() for k in keep}})  # fmt: skip

    def _log_metrics(self, stage: str) -> None:
        """Log the epoch's metrics over every bag of the stage, whichever process evaluated it."""
        from pathattn.train.metrics import classification_metrics, survival_metrics

        outputs, self._outputs[stage] = self._outputs[stage], []
        if not outputs or self.trainer.sanity_checking:
            return
        joined = gather_outputs(self, {k: torch.cat([o[k] for o in outputs]) for k in outputs[0]})
        if self.hparams.task == "classification":
            if len(np.unique(joined["label"])) < 2:
                return  # AUROC is undefined on one class
            metrics = classification_metrics(joined["label"], joined["scores"])
        else:
            metrics = survival_metrics(joined["time"], joined["event"], joined["scores"][:, 0])
        for name, value in metrics.items():  # the same on every process; synced only to keep Lightning quiet
            self.log(f"{stage}/{name}", float(value), sync_dist=True)
