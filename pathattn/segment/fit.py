"""``pathattn segment fit``: train a segmentation network on labelled volumes, then segment its held-out patients.

The run folder (made beside ``--out`` and moved there when finished, as ``pathattn train``)::

    OUT/config.json                     the run's options (a resumed run must have the same)
    OUT/splits.json                     the folds: volume ids, each volume's patient
    OUT/fold_k/checkpoints/best.ckpt    the best epoch on the validation metric (and last.ckpt)
    OUT/fold_k/logs/, tensorboard/      the fold's training curves
    OUT/fold_k/test/                    the fold's test volumes as ``pathattn segment predict`` writes them,
                                        scored as ``pathattn segment evaluate`` scores them
    OUT/metrics.json                    every fold's test metrics and their mean over folds

**Split**: folds of patients (``StratifiedGroupKFold`` grouped by patient, stratified by whether a volume has
a lesion; every study of a patient in one part, leakage-checked), each fold's validation patients drawn from its
training patients. **Data**: every volume is read once, prepared on the chosen grid and kept in memory; each
epoch cuts ``patches_per_volume`` patches of every training volume (:mod:`pathattn.segment.data`); validation
and test volumes are predicted whole with the sliding window.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from monai.data import DataLoader, Dataset

from pathattn.errors import PathattnError
from pathattn.fitting.splits import Fold, Splits, check_no_leakage, grouped_folds, load_splits, save_splits
from pathattn.fitting.trainer import build_trainer, fit, is_global_zero, selected_checkpoint
from pathattn.io import rundir
from pathattn.io.jsonfile import read_json, write_json
from pathattn.io.volume_samples import VolumeEntry, read_volume_sheet
from pathattn.io.weights import load_state_dict_strict
from pathattn.models.trained_segmentation import load_segmenter, segmentation_weights
from pathattn.registry import create_model, is_model, list_models, model_family
from pathattn.segment.config import SegmentConfig
from pathattn.segment.data import SegmentationCase, read_case, train_transforms
from pathattn.segment.evaluate import evaluate_predictions
from pathattn.segment.predict import PredictOptions, predict_cases
from pathattn.segment.system import SegmentationSystem
from pathattn.volumes.prepare import PrepareParams

SUMMARY_KEYS = (
    "dice_mean_positive",
    "dice_mean",
    "hd95_mean",
    "nsd_mean",
    "lesion_dice",
    "lesion_recall",
    "lesion_precision",
)
FREE_ON_RESUME = frozenset({"resume", "overwrite", "folds", "workers", "accelerator", "devices", "strategy"})


def labelled_entries(samples: Path) -> list[VolumeEntry]:
    """The sheet's volumes, every one with a label volume.

    Raises:
        PathattnError: volumes without ``label_path``.
    """
    entries = read_volume_sheet(samples)
    missing = [e.volume_id for e in entries if e.label_path is None]
    if missing:
        raise PathattnError(f"--samples {samples}: volumes {', '.join(missing[:5])} have no label_path; a "
                            "segmentation network learns from label volumes, add them")  # fmt: skip
    return entries


def case_splits(cases: list[SegmentationCase], n_folds: int, val_fraction: float, seed: int) -> Splits:
    """Patient-level folds of the cases (module docstring).

    Raises:
        PathattnError: fewer patients than folds, or too few for the validation share.
    """
    ids = np.array([c.case_id for c in cases])
    groups = np.array([c.patient_id for c in cases])
    strata = np.array(["lesion" if c.label.any() else "none" for c in cases])
    folds = grouped_folds(ids, strata, groups, n_folds, val_fraction, seed)
    patients = dict(zip(ids.tolist(), groups.tolist(), strict=True))
    splits = Splits(folds, patients, seed, n_folds, float(val_fraction), "has lesion")
    check_no_leakage(splits, patients, "volume")
    return splits


def build_network(cfg: SegmentConfig, in_channels: int) -> torch.nn.Module:
    """The registered network for ``in_channels`` channels and ``cfg.n_classes`` classes (and ``cfg.weights``).

    Raises:
        PathattnError: not a segmentation model, arguments it does not take, weights of another network or number
            of classes.
    """
    if not (is_model(cfg.model) and model_family(cfg.model) == "segmentation"):
        names = ", ".join(list_models(family="segmentation"))
        raise PathattnError(f"--model {cfg.model} is not a segmentation model; choose one of {names}")
    kwargs = {**cfg.model_args, "spatial_dims": 3, "in_channels": in_channels, "out_channels": cfg.n_classes}
    try:
        network = create_model(cfg.model, **kwargs)
    except (TypeError, ValueError) as error:
        raise PathattnError(f"--model-args {cfg.model_args} do not fit --model {cfg.model}: {error}") from None
    if cfg.weights is not None:
        load_state_dict_strict(network, segmentation_weights(cfg.weights), cfg.weights,
                               target=f"--model {cfg.model} with {in_channels} channels and {cfg.n_classes} classes",
                               fix="pass weights of the same network, channels and --n-classes")  # fmt: skip
    return network


def fit_run(cfg: SegmentConfig) -> dict[str, Any] | None:
    """Split, fit the chosen folds and evaluate their test volumes; write the run folder (module docstring).

    Returns:
        The contents of ``metrics.json``; None in the processes of a DDP run other than global rank 0.

    Raises:
        PathattnError: ``out`` holds a run, a volume without label, an unreadable or mismatching volume (its file
            named), labels outside the classes, a splits file that does not fit, a network that does not build.
    """
    rundir.check_out(cfg.out, cfg.overwrite)
    entries = labelled_entries(cfg.samples)
    channels = [c.upper() for c in cfg.channels] if cfg.channels else list(entries[0].paths)
    build_network(cfg, len(channels))  # refuse a bad model or weights before reading the volumes
    params = PrepareParams(tuple(cfg.spacing), tuple(cfg.presets))
    cases = [read_case(e, params, cfg.n_classes, channels) for e in entries]
    table = [{"slide_id": c.case_id, "patient_id": c.patient_id} for c in cases]
    splits = (
        load_splits(cfg.splits, table, source=str(cfg.samples), item="volume")
        if cfg.splits
        else case_splits(cases, cfg.n_folds, cfg.val_fraction, cfg.seed)
    )
    if cfg.resume:
        check_resumable(cfg, splits, table)
    return rundir.staged_run(
        cfg.out, lambda staging: _run(cfg, staging, splits, cases, entries, channels), resume=cfg.resume
    )


def run_options(cfg: SegmentConfig) -> dict[str, str]:
    """The options of a run as ``config.json`` and ``metrics.json`` record them."""
    return {key: str(value) for key, value in asdict(cfg).items()}


def check_resumable(cfg: SegmentConfig, splits: Splits, table: list[dict[str, str]]) -> None:
    """Refuse to resume an interrupted run (if ``out`` has one) with other options or other splits.

    Checked before the run starts, so that the interrupted run is kept for a resume with the right options.

    Raises:
        PathattnError: naming the options that differ, or the changed split, and the fix.
    """
    staging = rundir.staging_folder(cfg.out)
    if not (staging / "config.json").is_file():
        return
    fix = "drop --resume to start the run again"
    saved = read_json(staging / "config.json", fix=fix)
    options = run_options(cfg)
    changed = [k for k in options if k not in FREE_ON_RESUME and saved.get(k) != options[k]]
    if changed:
        names = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise PathattnError(f"--resume: the interrupted run in {staging} was started with other {names}; pass the "
                            f"same options, or {fix}")  # fmt: skip
    if load_splits(staging / "splits.json", table, source=str(cfg.samples), item="volume") != splits:
        raise PathattnError(f"--resume: the interrupted run in {staging} split other volumes (--samples {cfg.samples} "
                            f"changed); {fix}")  # fmt: skip


def _run(
    cfg: SegmentConfig, staging: Path, splits: Splits, cases: list[SegmentationCase], entries: list[VolumeEntry],
    channels: list[str],
) -> dict[str, Any] | None:  # fmt: skip
    """Fit the chosen folds into ``staging``; on global rank 0 segment and score their test volumes."""
    if is_global_zero():
        write_json(staging / "config.json", run_options(cfg))
        save_splits(staging / "splits.json", splits)
    checkpoints = {k: _fit_fold(cfg, staging / f"fold_{k}", k, splits[k], cases, channels) for k in cfg.folds}
    if not is_global_zero():
        return None
    by_id = {e.volume_id: e for e in entries}
    options = PredictOptions(cfg.overlap, cfg.blend, cfg.batch_size, cfg.tta)
    folds = []
    for k, checkpoint in checkpoints.items():
        final = str(cfg.out.resolve() / Path(checkpoint).relative_to(staging.resolve()))
        test_entries = [by_id[v] for v in splits[k].test]
        folder = staging / f"fold_{k}" / "test"
        predict_cases(load_segmenter(checkpoint), test_entries, folder, options, final)
        metrics = evaluate_predictions(folder, test_entries, cfg.n_classes)
        fold = splits[k]
        folds.append({"fold": k, "n_train": len(fold.train), "n_val": len(fold.val), "n_test": len(fold.test),
                      "checkpoint": final, **metrics})  # fmt: skip
    result = {"model": cfg.model, "channels": channels, "folds": folds, "summary": _summary(folds, cfg.n_classes),
              "config": run_options(cfg)}  # fmt: skip
    write_json(staging / "metrics.json", result)
    return result


def _summary(folds: list[dict[str, Any]], n_classes: int) -> dict[str, dict[str, float | None]]:
    """Per class, the mean over folds of the test metrics (and the gates' PxAP)."""

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known else None

    summary = {c: {key: mean([f["classes"][c][key] for f in folds]) for key in SUMMARY_KEYS}
               for c in map(str, range(1, n_classes))}  # fmt: skip
    gates = sorted({name for f in folds for name in f["attention_pxap"]})
    summary["attention_pxap"] = {g: mean([f["attention_pxap"].get(g) for f in folds]) for g in gates}
    return summary


def _fit_fold(
    cfg: SegmentConfig, folder: Path, k: int, fold: Fold, cases: list[SegmentationCase], channels: list[str]
) -> str:
    """Fit one fold; return its selected checkpoint."""
    L.seed_everything(cfg.seed + k, workers=True, verbose=False)
    by_id = {c.case_id: c for c in cases}
    if cfg.monitor == "dice" and not any(by_id[v].label.any() for v in fold.val):
        raise PathattnError(f"fold {k}: no validation volume has a lesion, so --monitor dice cannot select a "
                            "checkpoint; use --monitor loss, a larger --val-fraction or another --seed")  # fmt: skip
    network = build_network(cfg, len(channels))
    spec = {"name": cfg.model, "kwargs": {**cfg.model_args, "spatial_dims": 3, "in_channels": len(channels),
                                          "out_channels": cfg.n_classes}}  # fmt: skip
    inputs = {"channels": channels, "spacing": list(cfg.spacing), "presets": list(cfg.presets),
              "patch_size": list(cfg.patch_size)}  # fmt: skip
    system = SegmentationSystem(network, spec, inputs, cfg.lr, cfg.weight_decay, cfg.deep_supervision_weights,
                                cfg.overlap, cfg.blend)  # fmt: skip
    transforms = train_transforms(cfg.patch_size, cfg.patches_per_volume, cfg.positive, cfg.augment)
    transforms.set_random_state(cfg.seed + k)
    train = Dataset([by_id[v].as_dict() for v in fold.train], transforms)
    val = [{"image": torch.from_numpy(by_id[v].image), "label": torch.from_numpy(by_id[v].label), "index": i}
           for i, v in enumerate(fold.val)]  # fmt: skip
    volumes_per_step = max(1, cfg.batch_size // cfg.patches_per_volume)
    generator = torch.Generator().manual_seed(cfg.seed + k)
    trainer = build_trainer(cfg.trainer_settings, folder, validate=True)
    last = folder / "checkpoints" / "last.ckpt"
    fit(
        trainer,
        system,
        DataLoader(train, batch_size=volumes_per_step, shuffle=True, num_workers=cfg.workers, generator=generator),
        DataLoader(Dataset(val), batch_size=1, num_workers=0),
        resume=last if cfg.resume and last.is_file() else None,
    )
    return selected_checkpoint(trainer)
