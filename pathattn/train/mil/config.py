"""The configuration of an attention-MIL cross-validation: every option of ``pathattn train`` (and its YAML keys).

Kept free of heavy imports so that the command line can describe it without loading torch. A configuration
is checked when it is made: a value no run could use is a :class:`~pathattn.errors.PathattnError` naming
the option before anything is read or trained.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pathattn.errors import PathattnError
from pathattn.fitting.config import Accelerator, Devices, Precision, Strategy, Task, TrainerSettings

SurvivalLoss = Literal["nll", "cox"]
FeatureNorm = Literal["standardize", "none"]


def _finite(check: Callable[[float], bool]) -> Callable[[float], bool]:
    return lambda value: math.isfinite(value) and check(value)


# (option, field, whether a value is allowed, the rule in words): checked in this order
RANGES: tuple[tuple[str, str, Callable[[Any], bool], str], ...] = (
    ("--n-folds", "n_folds", lambda v: v >= 2, "at least 2"),
    (
        "--val-fraction",
        "val_fraction",
        _finite(lambda v: v == 0 or 0 < v <= 0.5),
        "0 (no validation set) or in (0, 0.5]",
    ),
    ("--max-epochs", "max_epochs", lambda v: v >= 1, "at least 1"),
    ("--patience", "patience", lambda v: v >= 0, "0 or more"),
    ("--batch-size", "batch_size", lambda v: v >= 1, "at least 1"),
    ("--max-instances", "max_instances", lambda v: v is None or v >= 1, "at least 1, or null (no subsampling)"),
    ("--lr", "lr", _finite(lambda v: v > 0), "a positive number, e.g. 0.0001"),
    ("--weight-decay", "weight_decay", _finite(lambda v: v >= 0), "0 or a positive number, e.g. 0.00001"),
    ("--n-bins", "n_bins", lambda v: v >= 1, "at least 1, e.g. 4"),
    ("--aem-lambda", "aem_lambda", _finite(lambda v: v >= 0), "0 (off) or a positive number, e.g. 0.1"),
    ("--n-boot", "n_boot", lambda v: v >= 1, "at least 1, e.g. 1000"),
    ("--log-every-n-steps", "log_every_n_steps", lambda v: v >= 1, "at least 1 (every step), e.g. 50"),
    ("--threads", "threads", lambda v: v is None or v >= 1, "at least 1, or null (torch's default)"),
)


@dataclass(frozen=True)
class TrainConfig:
    """A cross-validated training run.

    Args:
        samples: sample sheet: slide_id, patient_id, and label (classification) or time, event (survival).
        features: folder of feature files (``pathattn extract`` output, CLAM or TRIDENT features).
        out: the run folder.
        task: ``classification`` or ``survival``.
        model: a registered MIL model (``pathattn.registry.list_models(family="mil")``).
        model_args: keyword arguments of the model (``in_dim`` and ``n_classes`` are set from the data).
        n_folds: folds of the patient-level stratified cross-validation.
        val_fraction: share of each fold's training patients held out for early stopping and checkpoint
            selection (0: no validation set; the last epoch is used).
        splits: a ``splits.json`` of an earlier run to reuse.
        seed: seed of the splits and of each fold's training (fold k uses seed + k).
        max_epochs: epochs per fold.
        patience: early-stopping patience in epochs on the validation metric.
        batch_size: bags per step (1 is usual for MIL; Cox needs several).
        max_instances: random subsampling of large training bags to this many instances (null: off).
        lr: AdamW peak learning rate (cosine schedule per step).
        weight_decay: AdamW weight decay.
        class_weighting: weight the cross-entropy by inverse class frequency of the training fold.
        survival_loss: ``nll`` (discrete time, ``n_bins`` quantile bins) or ``cox``.
        n_bins: time bins of the ``nll`` survival loss.
        aem_lambda: weight of the AEM attention-entropy regulariser (0: off).
        aem_anneal: ``cosine`` anneals the AEM weight to 0.
        feature_norm: ``standardize`` each feature dimension with the mean and standard deviation of the
            training fold's instances (stored in the checkpoint and applied at prediction); ``none`` uses the
            features as they are. Encoders whose features share a large common component (random-init CNNs,
            some foundation models) train much better standardised.
        skip_missing: train without slides that have no feature file (else an error lists them); they are
            listed under ``excluded`` in ``metrics.json``.
        overwrite: replace the run already in ``out`` (else a second run into it is refused). The new run is
            made in a sibling folder and swapped in when it has finished, so the old one stays intact if it
            fails or is killed.
        deterministic: deterministic algorithms (reproducible, sometimes slower).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``).
        devices: devices of each fold's fit: a count, ``auto`` (every device of the accelerator) or a list of
            device indices. More than one trains with DDP (``strategy``).
        strategy: ``auto`` (one device) or distributed data parallel: ``ddp`` (Lightning re-runs the
            ``pathattn train`` command once per extra device), ``ddp_spawn`` (spawned processes; for notebooks
            and pytest), or their ``*_find_unused_parameters_true`` variants for a network with parameters
            that get no gradient in some steps (DDP stops with an error naming them). Only global rank 0 writes
            ``splits.json``, ``predictions.csv`` and ``metrics.json`` and predicts the test folds; validation
            metrics are computed over the bags of every process.
        precision: ``32-true``, or automatic mixed precision ``bf16-mixed`` (CPU and recent GPUs) or
            ``16-mixed`` (GPU).
        n_boot: bootstrap resamples of the confidence intervals.
        monitor: validation metric of early stopping and checkpoint selection: ``loss`` (always defined),
            ``auroc`` (classification) or ``c_index`` (survival), both undefined on a validation set of one
            class or without events.
        log_every_n_steps: log the training losses every this many optimiser steps (1: every step). On many
            bags of a few instances, logging every step costs more than the step itself.
        threads: torch's intra-op threads while training and predicting (null: torch's default, one per core).
            1 is the fastest for small networks on bags of a few instances (the classic MIL benchmarks).
    """

    samples: Path
    features: Path
    out: Path
    task: Task = "classification"
    model: str = "abmil"
    model_args: dict[str, Any] = field(default_factory=dict)
    n_folds: int = 5
    val_fraction: float = 0.2
    splits: Path | None = None
    seed: int = 0
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 1
    max_instances: int | None = None
    lr: float = 1e-4
    weight_decay: float = 1e-5
    class_weighting: bool = False
    survival_loss: SurvivalLoss = "nll"
    n_bins: int = 4
    aem_lambda: float = 0.0
    aem_anneal: Literal["none", "cosine"] = "none"
    feature_norm: FeatureNorm = "standardize"
    skip_missing: bool = False
    overwrite: bool = False
    deterministic: bool = True
    accelerator: Accelerator = "auto"
    devices: Devices = 1
    strategy: Strategy = "auto"
    precision: Precision = "32-true"
    n_boot: int = 1000
    monitor: Literal["loss", "auroc", "c_index"] = "loss"
    log_every_n_steps: int = 1
    threads: int | None = None

    def __post_init__(self) -> None:
        """Refuse values no run could use (one line naming the option), before anything is read or trained."""
        for option, name, allowed, rule in RANGES:
            value = getattr(self, name)
            if not allowed(value):
                raise PathattnError(f"{option} must be {rule}; got {value}")
        expected = {"classification": "auroc", "survival": "c_index"}[self.task]
        if self.monitor not in ("loss", expected):
            raise PathattnError(f"--monitor {self.monitor} does not fit --task {self.task}; use loss or {expected}")
        if self.task == "survival" and self.survival_loss == "cox" and self.batch_size < 2:
            raise PathattnError("--survival-loss cox needs several bags per step: set --batch-size 8 or more")
        reserved = sorted({"in_dim", "n_classes"} & set(self.model_args))
        if reserved:
            raise PathattnError(f"--model-args sets {', '.join(reserved)}, which the data sets; remove it")

    @property
    def trainer_settings(self) -> TrainerSettings:
        """What :func:`pathattn.fitting.trainer.build_trainer` needs of these options."""
        return replace(TrainerSettings.of(self), log_every_n_steps=self.log_every_n_steps)
