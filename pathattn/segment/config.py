"""The configuration of a segmentation run: every option of ``pathattn segment fit``.

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

Blend = Literal["gaussian", "constant"]


@dataclass(frozen=True)
class SegmentConfig:
    """A segmentation run: patient-level split, fit, prediction and evaluation of the held-out patients.

    Args:
        samples: the volume sample sheet (volume_id, patient_id, one ``<modality>_path`` column per image,
            label_path).
        out: the run folder.
        model: a registered segmentation model (``attention_unet``, ``unet``, ``monai_attention_unet``).
        model_args: keyword arguments of the model (``channels: [8, 16, 32, 64, 128]``,
            ``deep_supervision: auxiliary``); ``in_channels``, ``out_channels`` and ``spatial_dims`` are set from
            the data.
        weights: a state dict (or a checkpoint of ``pathattn segment fit``) to start from, loaded strictly: it must
            be of the same network and number of classes.
        channels: the modalities the network sees, in this order (``[CT]``, ``[CT, PET]``); null: every image
            column of the sheet.
        n_classes: classes of the network, background included (label values 0..n_classes-1).
        spacing: target mm along i, j, k of the RAS grid (null on an axis keeps the volume's own).
        presets: intensity presets per channel (as ``pathattn tile``; empty: each modality's default).
        patch_size: training patch and sliding-window size in voxels (i, j, k); a volume smaller than a patch is
            padded. Each side should be divisible by 16 (four poolings).
        patches_per_volume: patches cut from each training volume per epoch.
        positive: probability that a patch is centred on a lesion voxel (else on background).
        augment: flips, 90-degree in-plane rotations and intensity scaling/shifts on training patches.
        n_folds: folds of the patient-level split (stratified by whether a study has a lesion).
        folds: the folds to fit (default: fold 0, one train/validation/test split).
        val_fraction: share of each fold's training patients held out for checkpoint selection.
        splits: a ``splits.json`` of an earlier run to reuse (checked for leakage).
        seed: seed of the splits and of each fold's training (fold k uses seed + k).
        max_epochs: epochs per fold.
        patience: early-stopping patience in epochs on the validation metric.
        batch_size: patches per step.
        lr: AdamW peak learning rate (cosine schedule per step).
        weight_decay: AdamW weight decay.
        deep_supervision_weights: with ``deep_supervision: auxiliary``, the loss weights of the full-resolution
            output and each coarser level, finest first (null: MONAI's ``exp`` weights 1, 1/2, 1/4, 1/8).
        overlap: sliding-window overlap of validation and test prediction.
        blend: ``gaussian`` or ``constant`` weighting of overlapping windows.
        tta: average the predictions of the volume flipped along every combination of axes (8 passes).
        monitor: validation metric of early stopping and checkpoint selection: ``dice`` or ``loss``.
        workers: processes reading volumes (0: this one).
        overwrite: replace the run already in ``out``.
        resume: continue the run that an interrupted or killed fit into ``out`` left (its staging folder
            ``.{out}.partial``) with the same options: each fold continues from its ``last.ckpt``, and test volumes
            already segmented are kept. Without such a folder the run starts afresh (so a scheduler may always
            pass it). ``folds``, ``workers`` and the hardware options may change; any other option is refused.
        deterministic: deterministic algorithms (reproducible, sometimes slower).
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``).
        devices: devices of each fold's fit (several: DDP, ``strategy``).
        strategy: ``auto`` or a DDP flavour (as ``pathattn train``).
        precision: ``32-true``, ``bf16-mixed`` or ``16-mixed``.
    """

    samples: Path
    out: Path
    model: str = "attention_unet"
    model_args: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    channels: list[str] | None = None
    n_classes: int = 2
    spacing: list[float | None] = field(default_factory=lambda: [None, None, None])
    presets: list[str] = field(default_factory=list)
    patch_size: list[int] = field(default_factory=lambda: [64, 64, 32])
    patches_per_volume: int = 4
    positive: float = 0.67
    augment: bool = True
    n_folds: int = 4
    folds: list[int] = field(default_factory=lambda: [0])
    val_fraction: float = 0.2
    splits: Path | None = None
    seed: int = 0
    max_epochs: int = 100
    patience: int = 20
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-5
    deep_supervision_weights: list[float] | None = None
    overlap: float = 0.5
    blend: Blend = "gaussian"
    tta: bool = False
    monitor: Literal["dice", "loss"] = "dice"
    workers: int = 0
    overwrite: bool = False
    resume: bool = False
    deterministic: bool = False
    accelerator: Accelerator = "auto"
    devices: Devices = 1
    strategy: Strategy = "auto"
    precision: Precision = "32-true"

    def __post_init__(self) -> None:
        """Refuse values no run could use (one line naming the option)."""
        checks = (
            ("--n-classes", self.n_classes >= 2, "at least 2 (background and one class)"),
            (
                "--patch-size",
                len(self.patch_size) == 3 and min(self.patch_size) >= 8,
                "three sides of 8 voxels or more",
            ),
            ("--patches-per-volume", self.patches_per_volume >= 1, "at least 1"),
            ("--positive", 0 <= self.positive <= 1, "in [0, 1]"),
            ("--n-folds", self.n_folds >= 2, "at least 2"),
            ("--val-fraction", 0 < self.val_fraction <= 0.5, "in (0, 0.5]"),
            ("--max-epochs", self.max_epochs >= 1, "at least 1"),
            ("--patience", self.patience >= 0, "0 or more"),
            ("--batch-size", self.batch_size >= 1, "at least 1"),
            ("--lr", math.isfinite(self.lr) and self.lr > 0, "a positive number, e.g. 0.001"),
            ("--weight-decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "0 or more"),
            ("--overlap", 0 <= self.overlap < 1, "in [0, 1)"),
            ("--workers", self.workers >= 0, "0 or more"),
        )
        for option, ok, rule in checks:
            if not ok:
                raise PathattnError(f"{option} must be {rule}; got {getattr(self, option[2:].replace('-', '_'))}")
        bad = [k for k in self.folds if not 0 <= k < self.n_folds]
        if bad or not self.folds:
            raise PathattnError(
                f"--folds {bad or '[]'}: give folds of --n-folds {self.n_folds} (0 to {self.n_folds - 1})"
            )
        taken = sorted({"in_channels", "out_channels", "spatial_dims"} & set(self.model_args))
        if taken:
            raise PathattnError(f"--model-args sets {', '.join(taken)}, which the data set; remove it")

    @property
    def trainer_settings(self) -> TrainerSettings:
        """What :func:`pathattn.fitting.trainer.build_trainer` needs of these options."""
        return TrainerSettings.of(self)
