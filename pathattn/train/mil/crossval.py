"""Patient-level K-fold cross-validation of a MIL model: one Lightning fit per fold, out-of-fold predictions.

Outputs under ``RUN``::

    RUN/splits.json            the folds (reusable with ``splits=``), checked for patient leakage
    RUN/fold_{k}/              checkpoints (best on the validation metric, and last), CSV and TensorBoard logs
                               (the layout of :func:`pathattn.train.trainer.build_trainer`)
    RUN/predictions.csv        the out-of-fold prediction of every slide (its fold's test set)
    RUN/metrics.json           every metric per fold with a bootstrap 95% CI, and their mean and std

Under DDP every process fits every fold; global rank 0 alone writes the three files and predicts the test
sets, after the last fit (so that the other processes never wait on it inside a fit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from pathattn.errors import PathattnError
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.registry import create_model
from pathattn.train.config import Task
from pathattn.train.metrics import bootstrap_metrics, classification_metrics, summarize_folds, survival_metrics, with_ci
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.data import (
    BagDataset,
    Sample,
    collate_bags,
    feature_dim,
    feature_stats,
    match_features,
    read_samples,
)
from pathattn.train.mil.system import MILSystem
from pathattn.train.splits import Fold, check_labels, load_splits, make_splits, patient_labels, save_splits
from pathattn.train.survival import assign_bins, discretize_times
from pathattn.train.trainer import build_trainer, is_global_zero, selected_checkpoint


def _table(samples: Sequence[Sample], task: Task) -> list[dict[str, object]]:
    """Rows for the splitting functions."""
    if task == "classification":
        return [{"slide_id": s.slide_id, "patient_id": s.patient_id, "label": s.label} for s in samples]
    return [{"slide_id": s.slide_id, "patient_id": s.patient_id, "time": s.time, "event": s.event} for s in samples]


def _n_outputs(cfg: TrainConfig, classes: Sequence[str]) -> int:
    if cfg.task == "classification":
        return len(classes)
    return 1 if cfg.survival_loss == "cox" else cfg.n_bins


def _with_bins(samples: list[Sample], train: set[str], n_bins: int) -> list[Sample]:
    """Survival samples whose ``label`` is their time bin, with edges from the training slides' events."""
    times = np.array([s.time for s in samples if s.slide_id in train])
    events = np.array([s.event for s in samples if s.slide_id in train])
    edges, _ = discretize_times(times, events, n_bins)
    bins = assign_bins(np.array([s.time for s in samples]), edges)
    return [replace(s, label=int(b)) for s, b in zip(samples, bins, strict=True)]


def _class_weights(samples: Sequence[Sample], n_classes: int) -> list[float]:
    counts = np.bincount([s.label for s in samples], minlength=n_classes).astype(float)
    return (counts.sum() / (n_classes * np.maximum(counts, 1))).tolist()


def _loader(dataset: BagDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_bags, generator=generator)


def _fit_fold(
    cfg: TrainConfig,
    k: int,
    fold: Fold,
    samples: list[Sample],
    paths: dict[str, Path],
    dim: int,
    classes: list[str],
) -> tuple[list[Sample], str]:
    """Train fold ``k``; return the fold's samples (with bins) and its selected checkpoint."""
    L.seed_everything(cfg.seed + k, workers=True, verbose=False)
    if cfg.task == "survival" and cfg.survival_loss == "nll":
        samples = _with_bins(samples, set(fold.train), cfg.n_bins)
    by_id = {s.slide_id: s for s in samples}
    train = [by_id[i] for i in fold.train]
    datasets = {
        "train": BagDataset(train, paths, dim, cfg.max_instances),
        "val": BagDataset([by_id[i] for i in fold.val], paths, dim),
    }
    n_out = _n_outputs(cfg, classes)
    spec = {"name": cfg.model, "kwargs": {**cfg.model_args, "in_dim": dim, "n_classes": n_out}}
    weights = _class_weights(train, n_out) if cfg.class_weighting and cfg.task == "classification" else None
    system = MILSystem(
        create_model(spec["name"], **spec["kwargs"]), cfg.task, cfg.lr, cfg.weight_decay, weights,
        cfg.survival_loss, cfg.aem_lambda, cfg.aem_anneal, model_spec=spec, class_names=list(classes),
        feature_norm=cfg.feature_norm,
    )  # fmt: skip
    if cfg.feature_norm == "standardize":
        system.set_feature_stats(*map(torch.from_numpy, feature_stats(datasets["train"])))
    has_val = len(datasets["val"]) > 0
    trainer = build_trainer(cfg.trainer_settings, cfg.out / f"fold_{k}", validate=has_val)
    val_loader = _loader(datasets["val"], cfg.batch_size, False, cfg.seed) if has_val else None
    trainer.fit(system, _loader(datasets["train"], cfg.batch_size, True, cfg.seed + k), val_loader)
    return samples, selected_checkpoint(trainer)


@torch.inference_mode()
def _predict(system: MILSystem, samples: Sequence[Sample], paths: dict[str, Path], dim: int) -> np.ndarray:
    """Scores of each sample: (n, C) probabilities or (n, 1) risks."""
    system.eval()
    loader = _loader(BagDataset(samples, paths, dim), 1, False, 0)
    return np.concatenate([system.scores(system(b["features"], b["mask"]).logits).numpy() for b in loader])


def _fold_metrics(cfg: TrainConfig, samples: Sequence[Sample], scores: np.ndarray, k: int) -> dict[str, float]:
    if cfg.task == "classification":
        labels = np.array([s.label for s in samples])
        cis = bootstrap_metrics(classification_metrics, labels, scores, n_boot=cfg.n_boot, seed=cfg.seed + k)
    else:
        times, events = np.array([s.time for s in samples]), np.array([s.event for s in samples])
        cis = bootstrap_metrics(survival_metrics, times, events, scores[:, 0], n_boot=cfg.n_boot, seed=cfg.seed + k)
    return with_ci(cis)


def _check_config(cfg: TrainConfig) -> None:
    expected = {"classification": "auroc", "survival": "c_index"}[cfg.task]
    if cfg.monitor not in ("loss", expected):
        raise PathattnError(f"--monitor {cfg.monitor} does not fit --task {cfg.task}; use loss or {expected}")
    if cfg.task == "survival" and cfg.survival_loss == "cox" and cfg.batch_size < 2:
        raise PathattnError("--survival-loss cox needs several bags per step: set --batch-size 8 or more")
    if cfg.n_folds < 2:
        raise PathattnError("--n-folds must be at least 2")


def train_cv(cfg: TrainConfig) -> dict[str, Any] | None:
    """Cross-validate ``cfg.model`` and write the run folder (module docstring).

    Returns:
        The contents of ``metrics.json``; None in the processes of a DDP run other than global rank 0.

    Raises:
        PathattnError: bad sample sheet, missing features, a single class, patients whose slides disagree,
            leaking splits, NaN/Inf or differently sized features.
    """
    _check_config(cfg)
    samples, classes = read_samples(cfg.samples, cfg.task)
    samples, paths = match_features(samples, cfg.features, cfg.skip_missing)
    table = _table(samples, cfg.task)
    if cfg.task == "classification":
        check_labels([classes[s.label] for s in samples], "label", str(cfg.samples))
        patient_labels(table, "label", str(cfg.samples))
    dim = feature_dim(paths)
    splits = load_splits(cfg.splits, table, str(cfg.samples)) if cfg.splits else make_splits(
        table, cfg.n_folds, cfg.seed, val_fraction=cfg.val_fraction, task=cfg.task, source=str(cfg.samples)
    )  # fmt: skip
    cfg.out.mkdir(parents=True, exist_ok=True)
    if is_global_zero():
        save_splits(cfg.out / "splits.json", splits)
    fits = [_fit_fold(cfg, k, fold, samples, paths, dim, classes) for k, fold in enumerate(splits.folds)]
    if not is_global_zero():
        return None
    rows, per_fold = [], []
    for k, (fold, (fold_samples, checkpoint)) in enumerate(zip(splits.folds, fits, strict=True)):
        test = [s for s in fold_samples if s.slide_id in set(fold.test)]
        scores = _predict(MILSystem.load(checkpoint), test, paths, dim)
        per_fold.append(_fold_metrics(cfg, test, scores, k))
        rows += [_prediction_row(cfg, classes, s, sc, k, checkpoint) for s, sc in zip(test, scores, strict=True)]
    result = {"task": cfg.task, "model": cfg.model, "classes": classes, "folds": per_fold,
              "summary": summarize_folds(per_fold), "config": {k: str(v) for k, v in asdict(cfg).items()}}  # fmt: skip
    write_csv(cfg.out / "predictions.csv", sorted(rows, key=lambda r: str(r["slide_id"])))
    write_json(cfg.out / "metrics.json", result)
    return result


def _prediction_row(
    cfg: TrainConfig, classes: Sequence[str], sample: Sample, scores: np.ndarray, fold: int, checkpoint: str
) -> dict[str, object]:
    row: dict[str, object] = {"slide_id": sample.slide_id, "patient_id": sample.patient_id, "fold": fold}
    if cfg.task == "classification":
        row |= {"label": classes[sample.label], "prediction": classes[int(np.argmax(scores))]}
        row |= {f"prob_{name}": float(p) for name, p in zip(classes, scores, strict=True)}
    else:
        row |= {"time": sample.time, "event": sample.event, "risk": float(scores[0])}
    return row | {"checkpoint": checkpoint}
