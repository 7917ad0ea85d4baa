"""Patient-level K-fold cross-validation of a MIL model: one Lightning fit per fold, out-of-fold predictions.

Outputs under ``RUN``::

    RUN/splits.json            the folds (reusable with ``splits=``), checked for patient leakage
    RUN/fold_{k}/              checkpoints (best on the validation metric, and last), CSV and TensorBoard logs
                               (the layout of :func:`pathattn.fitting.trainer.build_trainer`)
    RUN/predictions.csv        the out-of-fold prediction of every slide (its fold's test set)
    RUN/metrics.json           every metric per fold with a bootstrap 95% CI, and their mean and std

Slides without a feature file (with ``skip_missing``) and slides whose feature file holds no patch are left
out of training and metrics, with one warning line on stderr each, and listed in ``metrics.json`` under
``excluded`` with the reason; they are not in ``predictions.csv``.

The run is made in a staging folder beside ``RUN`` and moved to ``RUN`` when it has finished
(:mod:`pathattn.train.rundir`): a ``RUN`` that holds anything is refused unless ``overwrite``, which replaces
it whole. Under DDP every process fits every fold; global rank 0 alone writes the three files, predicts the
test sets (after the last fit, so that the other processes never wait on it inside a fit) and moves the run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pathattn.errors import PathattnError, shorten
from pathattn.fitting.bootstrap import bootstrap_metrics, summarize_folds, with_ci
from pathattn.fitting.config import Task
from pathattn.fitting.sample_table import check_labels, patient_labels
from pathattn.fitting.splits import Fold, Splits, load_splits, make_splits, save_splits
from pathattn.fitting.trainer import build_trainer, fit, is_global_zero, selected_checkpoint
from pathattn.io import rundir
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.registry import create_model, is_model, list_models, model_family
from pathattn.threads import intra_op_threads
from pathattn.train.metrics import classification_metrics, survival_metrics
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.data import (
    BagDataset,
    Sample,
    collate_bags,
    empty_bags,
    feature_dim,
    feature_stats,
    match_features,
    read_samples,
)
from pathattn.train.mil.system import MILSystem
from pathattn.train.survival import assign_bins, discretize_times

NO_FEATURES = "no feature file (--skip-missing)"
NO_PATCHES = "no patches (its feature file holds no instance)"


@dataclass(frozen=True)
class Cohort:
    """The slides a run trains on.

    Args:
        samples: the slides with features and patches.
        paths: slide id → feature file.
        dim: the feature size D.
        classes: class names in index order (empty for survival).
        excluded: the slides of the sample sheet left out, each ``{"slide_id", "reason"}``.
    """

    samples: list[Sample]
    paths: dict[str, Path]
    dim: int
    classes: list[str]
    excluded: list[dict[str, str]]


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


def _network(cfg: TrainConfig, dim: int, n_out: int) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh network of ``cfg.model`` for ``dim``-d features and ``n_out`` outputs, and its checkpointed spec.

    Raises:
        PathattnError: ``--model`` is no MIL model, or ``--model-args`` do not fit it.
    """
    if not is_model(cfg.model) or model_family(cfg.model) != "mil":
        mil = ", ".join(list_models(family="mil"))
        raise PathattnError(f"--model {cfg.model} is not a MIL model; choose one of {mil}")
    spec = {"name": cfg.model, "kwargs": {**cfg.model_args, "in_dim": dim, "n_classes": n_out}}
    try:
        return create_model(spec["name"], **spec["kwargs"]), spec
    except (TypeError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise PathattnError(
            f"--model-args {cfg.model_args} do not fit --model {cfg.model} ({reason}); "
            "see its arguments in docs/train.md (Models)"
        ) from None


def _fit_fold(cfg: TrainConfig, k: int, fold: Fold, cohort: Cohort) -> tuple[list[Sample], str]:
    """Train fold ``k`` under ``cfg.out``; return the fold's samples (with bins) and its selected checkpoint."""
    L.seed_everything(cfg.seed + k, workers=True, verbose=False)
    samples = cohort.samples
    if cfg.task == "survival" and cfg.survival_loss == "nll":
        samples = _with_bins(samples, set(fold.train), cfg.n_bins)
    by_id = {s.slide_id: s for s in samples}
    train = [by_id[i] for i in fold.train]
    datasets = {
        "train": BagDataset(train, cohort.paths, cohort.dim, cfg.max_instances),
        "val": BagDataset([by_id[i] for i in fold.val], cohort.paths, cohort.dim),
    }
    n_out = _n_outputs(cfg, cohort.classes)
    network, spec = _network(cfg, cohort.dim, n_out)
    weights = _class_weights(train, n_out) if cfg.class_weighting and cfg.task == "classification" else None
    system = MILSystem(
        network, cfg.task, cfg.lr, cfg.weight_decay, weights, cfg.survival_loss, cfg.aem_lambda, cfg.aem_anneal,
        model_spec=spec, class_names=list(cohort.classes), feature_norm=cfg.feature_norm,
    )  # fmt: skip
    if cfg.feature_norm == "standardize":
        system.set_feature_stats(*map(torch.from_numpy, feature_stats(datasets["train"])))
    has_val = len(datasets["val"]) > 0
    trainer = build_trainer(cfg.trainer_settings, cfg.out / f"fold_{k}", validate=has_val)
    val_loader = _loader(datasets["val"], cfg.batch_size, False, cfg.seed) if has_val else None
    fit(trainer, system, _loader(datasets["train"], cfg.batch_size, True, cfg.seed + k), val_loader)
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


def _usable(cfg: TrainConfig, samples: list[Sample]) -> tuple[list[Sample], dict[str, Path], list[dict[str, str]]]:
    """The samples that can train, their feature files, and the slides left out with the reason (warned once).

    Raises:
        PathattnError: missing feature files without ``skip_missing``, or no slide with patches.
    """
    kept, paths = match_features(samples, cfg.features, cfg.skip_missing)
    empty = set(empty_bags(paths))
    if len(empty) == len(paths):
        raise PathattnError(f"--features {cfg.features}: every slide's feature file is empty (no patches); "
                            "tile and extract the slides again")  # fmt: skip
    left_out = {NO_FEATURES: [s.slide_id for s in samples if s.slide_id not in paths], NO_PATCHES: sorted(empty)}
    for reason, ids in left_out.items():
        if ids and is_global_zero():
            print(f"train: warning: {len(ids)} slide(s) left out of training and metrics, {reason}: {shorten(ids)} "
                  '(listed in metrics.json under "excluded")', file=sys.stderr)  # fmt: skip
    excluded = [{"slide_id": i, "reason": reason} for reason, ids in left_out.items() for i in ids]
    return [s for s in kept if s.slide_id not in empty], {i: p for i, p in paths.items() if i not in empty}, excluded


def _cohort(cfg: TrainConfig) -> Cohort:
    """Read and check the slides of ``cfg`` (and that the model can be built for them), before anything is written."""
    samples, classes = read_samples(cfg.samples, cfg.task)
    samples, paths, excluded = _usable(cfg, samples)
    if cfg.task == "classification":
        check_labels([classes[s.label] for s in samples], "label", str(cfg.samples))
        patient_labels(_table(samples, cfg.task), "label", str(cfg.samples))
    dim = feature_dim(paths)
    _network(cfg, dim, _n_outputs(cfg, classes))
    return Cohort(samples, paths, dim, classes, excluded)


def train_cv(cfg: TrainConfig) -> dict[str, Any] | None:
    """Cross-validate ``cfg.model`` and write the run folder (module docstring).

    Returns:
        The contents of ``metrics.json``; None in the processes of a DDP run other than global rank 0.

    Raises:
        PathattnError: ``out`` holds a run (without ``overwrite``), bad sample sheet, missing features, a single
            class, patients whose slides disagree, leaking splits, NaN/Inf or differently sized features, model
            arguments that do not fit the model.
    """
    rundir.check_out(cfg.out, cfg.overwrite)
    cohort = _cohort(cfg)
    table = _table(cohort.samples, cfg.task)
    splits = load_splits(cfg.splits, table, str(cfg.samples)) if cfg.splits else make_splits(
        table, cfg.n_folds, cfg.seed, val_fraction=cfg.val_fraction, task=cfg.task, source=str(cfg.samples)
    )  # fmt: skip
    with intra_op_threads(cfg.threads):
        return rundir.staged_run(cfg.out, lambda out: _cross_validate(cfg, replace(cfg, out=out), splits, cohort))


def _cross_validate(cfg: TrainConfig, staged: TrainConfig, splits: Splits, cohort: Cohort) -> dict[str, Any] | None:
    """Fit every fold into ``staged.out``; then, on global rank 0, predict the test sets and write the files.

    The checkpoints in ``predictions.csv`` and the configuration in ``metrics.json`` name ``cfg.out``, where
    the run is moved when it has finished.
    """
    if is_global_zero():
        save_splits(staged.out / "splits.json", splits)
    fits = [_fit_fold(staged, k, fold, cohort) for k, fold in enumerate(splits.folds)]
    if not is_global_zero():
        return None
    rows, per_fold = [], []
    for k, (fold, (fold_samples, checkpoint)) in enumerate(zip(splits.folds, fits, strict=True)):
        test = [s for s in fold_samples if s.slide_id in set(fold.test)]
        scores = _predict(MILSystem.load(checkpoint), test, cohort.paths, cohort.dim)
        per_fold.append(_fold_metrics(cfg, test, scores, k))
        final = str(cfg.out.resolve() / Path(checkpoint).relative_to(staged.out.resolve()))
        rows += [_prediction_row(cfg, cohort.classes, s, sc, k, final) for s, sc in zip(test, scores, strict=True)]
    result = {"task": cfg.task, "model": cfg.model, "classes": cohort.classes, "folds": per_fold,
              "summary": summarize_folds(per_fold), "excluded": cohort.excluded,
              "config": {k: str(v) for k, v in asdict(cfg).items()}}  # fmt: skip
    write_csv(staged.out / "predictions.csv", sorted(rows, key=lambda r: str(r["slide_id"])))
    write_json(staged.out / "metrics.json", result)
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
