"""The Lightning Trainer shared by the systems of the train stage, and which process writes a run's files.

:func:`build_trainer` gives every system the same fit, under a folder ``FOLDER`` (one per fold of a
cross-validation)::

    FOLDER/checkpoints/best.ckpt    the best epoch on the monitored validation metric (no validation: the last)
    FOLDER/checkpoints/last.ckpt    the last epoch (with validation: rewritten after every epoch, so that an
                                    interrupted fit resumes from it: :func:`fit`)
    FOLDER/logs/version_*/          CSV logs (metrics.csv, hparams.yaml)
    FOLDER/tensorboard/version_*/   TensorBoard events

Distributed data parallel (a ``ddp*`` strategy on several devices): every process takes part in every fit,
and Lightning shards the training and validation bags between them (a system computes its validation
metrics over the outputs of all processes). Lightning writes its checkpoints and logs from global rank 0;
the files a run writes itself (splits, predictions, metrics) are written where :func:`is_global_zero`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from pathattn.errors import PathattnError
from pathattn.fitting.config import TrainerSettings


def build_trainer(settings: TrainerSettings, folder: Path, validate: bool) -> L.Trainer:
    """A Trainer that checkpoints, stops early and logs under ``folder`` (module docstring).

    Args:
        settings: epochs, hardware, numerics and the monitored metric.
        folder: where the checkpoints and logs go.
        validate: whether the fit has a validation set. With one, ``best.ckpt`` is the best epoch on
            ``settings.monitor``, training stops after ``settings.patience`` epochs without improvement, and
            ``last.ckpt`` is rewritten after every epoch (what an interrupted fit resumes from: :func:`fit`);
            without, every epoch runs and ``best.ckpt`` and ``last.ckpt`` are the last epoch, written at its end
            only (not after every epoch: on many small bags the writes would cost more than the training).

    Returns:
        The Trainer; its ``checkpoint_callback`` names the selected checkpoint after ``fit``
        (:func:`selected_checkpoint`).

    Raises:
        PathattnError: Lightning rejects the accelerator, devices, strategy or precision on this machine.
    """
    mode, monitor = settings.monitor_mode, settings.monitor if validate else None
    every = 1 if validate else settings.max_epochs  # without validation: once, after the last epoch
    checkpoints = folder / "checkpoints"
    checkpoint = ModelCheckpoint(
        checkpoints, filename="best", monitor=monitor, mode=mode, save_last=not validate, every_n_epochs=every
    )
    callbacks: list[L.Callback] = [checkpoint]
    if validate:  # since Lightning 2.6 save_last writes only when best.ckpt is written: the last epoch has its own
        stopping = StayStopped(settings.monitor, patience=settings.patience, mode=mode, check_finite=False)
        callbacks += [LastEpoch(checkpoints / "last.ckpt"), stopping]
    try:
        return L.Trainer(
            max_epochs=settings.max_epochs, accelerator=settings.accelerator, devices=settings.devices,
            strategy=settings.strategy, precision=settings.precision, deterministic=settings.deterministic,
            logger=[CSVLogger(folder, name="logs"), TensorBoardLogger(folder, name="tensorboard")],
            callbacks=callbacks, default_root_dir=folder, log_every_n_steps=settings.log_every_n_steps,
            enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
        )  # fmt: skip
    except MisconfigurationException as err:
        chosen = (
            f"--accelerator {settings.accelerator} --devices {settings.devices} --strategy {settings.strategy} "
            f"--precision {settings.precision}"
        )
        reason = " ".join(str(err).split()).rstrip(".")
        raise PathattnError(f"{chosen}: {reason}; choose options this machine has") from None


class LastEpoch(Checkpoint):
    """Write the state of the last epoch run to ``path`` after every epoch, its validation included.

    The file is the whole training state (weights, optimiser, schedule, epoch, the best score so far and the
    early-stopping count), so an interrupted fit resumes from it (``Trainer.fit(ckpt_path=...)``). It is written
    beside ``path`` and renamed over it, so a fit killed while writing leaves the previous epoch's file whole.
    A ``Checkpoint`` so that Lightning calls it after early stopping and ``best.ckpt`` have taken the epoch in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        staged = self.path.with_name(f".{self.path.name}.partial")
        trainer.save_checkpoint(staged)  # every process calls it; the strategy writes from global rank 0
        if trainer.is_global_zero:
            staged.replace(self.path)


class StayStopped(EarlyStopping):
    """Early stopping that a resumed fit honours: a fit resumed after it stopped trains no further epoch."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopped_epoch > 0:  # restored from the checkpoint of a fit that had stopped
            trainer.should_stop = True


def fit(trainer: L.Trainer, system: L.LightningModule, train: Any, val: Any, resume: Path | None = None) -> None:
    """``trainer.fit`` on the ``train`` and ``val`` loaders, continued from the checkpoint ``resume`` if given.

    Continuing restores the weights, optimiser, schedule, epoch, best score and early-stopping count; a fit that
    had finished trains no further. The data order of the resumed epochs is not that of an uninterrupted fit, and
    the logs of the resumed epochs go to a new ``logs/version_*`` folder.

    Raises:
        KeyboardInterrupt: the fit was interrupted (Ctrl-C, or SIGTERM from a scheduler); Lightning has written
            its logs, and ``last.ckpt`` holds the last finished epoch.
    """
    try:
        trainer.fit(system, train, val, ckpt_path=resume)
    except SystemExit:  # how Lightning ends a fit interrupted by Ctrl-C or SIGTERM
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


def selected_checkpoint(trainer: L.Trainer) -> str:
    """The checkpoint a finished fit selected: ``best.ckpt``, else ``last.ckpt``.

    Lightning broadcasts the path from global rank 0, so every process (and the launching process of
    ``ddp_spawn``) gets the same file.
    """
    callback = trainer.checkpoint_callback
    return callback.best_model_path or callback.last_model_path


def is_global_zero() -> bool:
    """Whether this process is global rank 0, the one that writes a run's own files (always, without DDP).

    Before the first fit the rank comes from the variables a launcher sets (``RANK``, ``LOCAL_RANK``,
    ``SLURM_PROCID``; none in the process that was started by hand); each Trainer then sets it from its
    strategy.
    """
    return rank_zero_only.rank == 0


def adamw_cosine(
    trainer: L.Trainer, parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> dict[str, Any]:
    """AdamW over ``parameters`` with a cosine schedule stepped per batch over the whole fit (``configure_optimizers``).

    Args:
        trainer: the fit's trainer (its estimated number of optimiser steps is the schedule's length).
        parameters: what is optimised (e.g. those that require a gradient).
        lr: the peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    steps = max(1, int(trainer.estimated_stepping_batches))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
