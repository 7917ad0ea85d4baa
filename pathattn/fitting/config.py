"""Settings shared by every system that fits a network: the task kinds and how Lightning trains.

Kept free of heavy imports (no torch, no Lightning) so that the command line can describe the options of
``pathattn train`` (and of the other fitting commands) without loading them;
:func:`pathattn.fitting.trainer.build_trainer` turns :class:`TrainerSettings` into a ``lightning.Trainer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Task = Literal["classification", "survival"]
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]
Devices = int | Literal["auto"] | list[int]
Strategy = Literal[
    "auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_true"
]
Precision = Literal["32-true", "bf16-mixed", "16-mixed"]
MonitorMode = Literal["min", "max"]


@dataclass(frozen=True)
class TrainerSettings:
    """How a system is fitted: epochs, hardware, numerics, and the metric that selects the checkpoint.

    Args:
        max_epochs: epochs of one fit.
        accelerator: Lightning accelerator (``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``).
        devices: devices per node: a count, ``auto`` (all of the accelerator's), or a list of device indices.
        strategy: ``auto`` (one device) or a DDP flavour: ``ddp`` (Lightning re-runs the command in one
            process per device; for the command line), ``ddp_spawn`` (spawns the processes; works inside
            notebooks and pytest), and their ``*_find_unused_parameters_true`` variants for networks whose
            parameters do not all get a gradient in every step (DDP fails on them otherwise).
        precision: ``32-true``, or mixed precision ``bf16-mixed`` / ``16-mixed`` (weights stay float32).
        deterministic: deterministic algorithms (reproducible, sometimes slower).
        patience: early-stopping patience in epochs on ``monitor``.
        monitor: the logged validation metric of early stopping and checkpoint selection, e.g. ``val/loss``.
        monitor_mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better.
        log_every_n_steps: training losses are logged every this many optimiser steps (1: every step).
    """

    max_epochs: int = 20
    accelerator: Accelerator = "auto"
    devices: Devices = 1
    strategy: Strategy = "auto"
    precision: Precision = "32-true"
    deterministic: bool = True
    patience: int = 5
    monitor: str = "val/loss"
    monitor_mode: MonitorMode = "min"
    log_every_n_steps: int = 1

    @classmethod
    def of(cls, options: Any) -> TrainerSettings:
        """The settings of a command's options (``max_epochs``, ..., ``monitor``: a metric under ``val/``)."""
        return cls(
            max_epochs=options.max_epochs, accelerator=options.accelerator, devices=options.devices,
            strategy=options.strategy, precision=options.precision, deterministic=options.deterministic,
            patience=options.patience, monitor=f"val/{options.monitor}",
            monitor_mode="min" if options.monitor == "loss" else "max",
        )  # fmt: skip
