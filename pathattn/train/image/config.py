"""The configuration of an image-classifier cross-validation: every option of ``pathattn classify fit``.

Kept free of heavy imports so that the command line can describe it without loading torch. A value no run
could use is refused when the configuration is made, naming the option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pathattn.errors import PathattnError
from pathattn.fitting.config import Accelerator, Devices, Precision, Strategy, TrainerSettings

SplitMode = Literal["patient", "slice"]
CentreMode = Literal["agnostic", "aware"]
Balance = Literal["none", "weights", "sampler"]
Augment = Literal["none", "light"]


@dataclass(frozen=True)
class ClassifyConfig:
    """A cross-validated image-classifier run (docs/classify.md).

    Args:
        out: the run folder.
        tiles: a slice tiling of volumes (``pathattn tile --volume-mode slices`` with label volumes): every kept
            slice is an image, positive when it crosses a lesion.
        images: instead of ``tiles``: an image sheet (CSV with path, label; optional image_id, patient_id,
            centre).
        samples: with ``tiles``: the volume sample sheet (volume_id, patient_id, centre).
        model: a registered image model (``timm_classifier``, ``medusa``, ``medusa_isolated``).
        model_args: keyword arguments of the model (``backbone: resnet18``; ``num_classes`` is set from the data).
        weights: a local state dict for the network (e.g. a pretrained backbone saved with torch.save), loaded
            strictly before training; null: seeded random init.
        channels: with ``tiles``: the modalities the network sees (``[PET]``, ``[PET, CT]``); null: the tiling's.
        image_size: images are resized to image_size x image_size pixels.
        min_lesion_fraction: with ``tiles``: a slice is positive when its lesion fraction is above this (0: any
            lesion voxel).
        split: ``patient`` keeps all images of a patient in one part (leakage-checked); ``slice`` splits the
            images themselves, so a patient's neighbouring slices fall into training and test: use it only to
            measure how much that overestimates performance.
        centres: ``agnostic`` (folds stratified by label, one ImageNet normalisation) or ``aware`` (folds
            stratified by label and centre, each centre normalised with its training images' channel mean and
            standard deviation).
        n_folds: folds of the stratified cross-validation.
        folds: run only these folds (null: all), e.g. ``[0]`` for one train/test split.
        val_fraction: share of each fold's training patients (or images, with ``split: slice``) held out for
            early stopping, checkpoint selection and the operating point.
        splits: a ``splits.json`` of an earlier run to reuse (its patients are checked for leakage).
        seed: seed of the splits and of each fold's training (fold k uses seed + k).
        max_epochs: epochs per fold.
        patience: early-stopping patience in epochs on the validation metric.
        batch_size: images per step.
        lr: AdamW peak learning rate (cosine schedule per step).
        weight_decay: AdamW weight decay.
        balance: ``weights`` (cross-entropy weighted by inverse class frequency), ``sampler`` (class-balanced
            batches) or ``none``.
        augment: ``light`` (rotation within 5 degrees, shifts of 5 %, scale 0.9-1.1, shear within 5 degrees,
            horizontal flip; the MEDUSA authors' set) or ``none``.
        workers: processes reading volumes and loading batches (0: this one).
        n_boot: bootstrap resamples (of patients) of the confidence intervals.
        monitor: validation metric of early stopping and checkpoint selection: ``loss`` or ``auroc``.
        overwrite: replace the run already in ``out``.
        deterministic: deterministic algorithms (reproducible, sometimes slower).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``).
        devices: devices of each fold's fit (several: DDP, ``strategy``).
        strategy: ``auto`` or a DDP flavour (as ``pathattn train``).
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed``.
    """

    out: Path
    tiles: Path | None = None
    images: Path | None = None
    samples: Path | None = None
    model: str = "timm_classifier"
    model_args: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    channels: list[str] | None = None
    image_size: int = 224
    min_lesion_fraction: float = 0.0
    split: SplitMode = "patient"
    centres: CentreMode = "agnostic"
    n_folds: int = 5
    folds: list[int] | None = None
    val_fraction: float = 0.2
    splits: Path | None = None
    seed: int = 0
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-4
    balance: Balance = "weights"
    augment: Augment = "light"
    workers: int = 0
    n_boot: int = 1000
    monitor: Literal["loss", "auroc"] = "loss"
    overwrite: bool = False
    deterministic: bool = True
    accelerator: Accelerator = "auto"
    devices: Devices = 1
    strategy: Strategy = "auto"
    precision: Precision = "32-true"

    def __post_init__(self) -> None:
        """Refuse values no run could use (one line naming the option)."""
        if (self.tiles is None) == (self.images is None):
            raise PathattnError("pass either --tiles (a slice tiling of volumes) or --images (an image sheet)")
        checks = (
            ("--image-size", self.image_size >= 8, "at least 8"),
            ("--n-folds", self.n_folds >= 2, "at least 2"),
            ("--val-fraction", 0 < self.val_fraction <= 0.5, "in (0, 0.5]"),
            ("--max-epochs", self.max_epochs >= 1, "at least 1"),
            ("--patience", self.patience >= 0, "0 or more"),
            ("--batch-size", self.batch_size >= 2, "at least 2"),
            ("--lr", math.isfinite(self.lr) and self.lr > 0, "a positive number, e.g. 0.0001"),
            ("--weight-decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "0 or more"),
            ("--min-lesion-fraction", 0 <= self.min_lesion_fraction < 1, "in [0, 1)"),
            ("--workers", self.workers >= 0, "0 or more"),
            ("--n-boot", self.n_boot >= 1, "at least 1"),
        )
        for option, ok, rule in checks:
            if not ok:
                raise PathattnError(f"{option} must be {rule}; got {getattr(self, option[2:].replace('-', '_'))}")
        bad = [k for k in self.folds or () if not 0 <= k < self.n_folds]
        if bad:
            last = self.n_folds - 1
            raise PathattnError(f"--folds {bad[0]} is not a fold of --n-folds {self.n_folds}; use 0 to {last}")
        if "num_classes" in self.model_args:
            raise PathattnError("--model-args sets num_classes, which the data sets; remove it")

    @property
    def trainer_settings(self) -> TrainerSettings:
        """What :func:`pathattn.fitting.trainer.build_trainer` needs of these options."""
        return TrainerSettings.of(self)
