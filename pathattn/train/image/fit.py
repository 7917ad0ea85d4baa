"""``pathattn classify fit``: cross-validate an image classifier (a timm CNN, MEDUSA) on labelled images or slices.

The run folder (made beside ``--out`` and moved there when finished, as ``pathattn train``)::

    OUT/splits.json                    the folds (image ids, each image's patient)
    OUT/fold_k/checkpoints/best.ckpt   the best epoch on the validation metric (and last.ckpt)
    OUT/fold_k/logs/, tensorboard/     the fold's training curves
    OUT/predictions.csv                one row per test image: fold, label, probability, call at the threshold
    OUT/metrics.json                   per fold and pooled out-of-fold metrics with patient-bootstrap CIs

**Operating point**: each fold's threshold on the positive-class probability maximises Youden's J on its
validation images; sensitivity, specificity and accuracy of its test images are taken there. AUROC and
AUPRC are threshold-free. Intervals are percentile bootstraps over patients (a patient's images are resampled
together: slices of one patient are not independent). With more than two classes the metrics are those of
``pathattn train`` (argmax calls).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from pathattn.errors import PathattnError
from pathattn.fitting.bootstrap import bootstrap_metrics, summarize_folds, with_ci
from pathattn.fitting.splits import Fold, Splits, save_splits
from pathattn.fitting.trainer import build_trainer, fit, is_global_zero, selected_checkpoint
from pathattn.io import rundir
from pathattn.io.image_set import ImageSet, check_classes
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.models.trained_image import load_image_classifier
from pathattn.train.image.config import ClassifyConfig
from pathattn.train.image.data import ImageDataset, centre_rows, class_weights, loader, normalisation_table
from pathattn.train.image.splits import crossing_patients, image_splits, reuse_splits
from pathattn.train.image.system import ImageSystem
from pathattn.train.metrics import binary_metrics, classification_metrics, youden_threshold
from pathattn.volumes.slice_set import UNLABELLED, SliceSetOptions, read_images


def slice_options(cfg: ClassifyConfig, with_masks: bool = False) -> SliceSetOptions:
    """How the run's slices become images."""
    channels = tuple(cfg.channels) if cfg.channels else None
    return SliceSetOptions((cfg.image_size, cfg.image_size), channels, cfg.min_lesion_fraction, with_masks)


def _labelled(images: ImageSet, where: str) -> ImageSet:
    """Refuse unlabelled slices (volumes tiled without a label volume) and a single class."""
    unlabelled = sorted({s for s, label in zip(images.sources, images.labels, strict=True) if label == UNLABELLED})
    if unlabelled:
        raise PathattnError(f"{where}: volumes {', '.join(unlabelled[:5])} were tiled without a label volume, so their "
                            "slices have no label; add label_path to the sample sheet and tile them again")  # fmt: skip
    check_classes(images.labels, images.classes, where)
    return images


def fit_cv(cfg: ClassifyConfig) -> dict[str, Any] | None:
    """Cross-validate ``cfg.model`` and write the run folder (module docstring).

    Returns:
        The contents of ``metrics.json``; None in the processes of a DDP run other than global rank 0.

    Raises:
        PathattnError: ``out`` holds a run, unreadable or unlabelled images, one class only, a splits file whose
            patients cross parts or that names other images, model arguments that do not fit.
    """
    rundir.check_out(cfg.out, cfg.overwrite)
    where = f"--tiles {cfg.tiles}" if cfg.tiles else f"--images {cfg.images}"
    images = _labelled(read_images(cfg.tiles, cfg.images, slice_options(cfg), cfg.samples, cfg.workers), where)
    if cfg.splits and cfg.split == "slice":
        raise PathattnError("--splits reuses patient-level splits; leave it out with --split slice")
    splits = reuse_splits(cfg.splits, images) if cfg.splits else image_splits(
        images, cfg.split, cfg.n_folds, cfg.val_fraction, cfg.seed, cfg.centres == "aware"
    )  # fmt: skip
    return rundir.staged_run(cfg.out, lambda staging: _cross_validate(cfg, staging, splits, images))


def _cross_validate(cfg: ClassifyConfig, staging: Path, splits: Splits, images: ImageSet) -> dict[str, Any] | None:
    """Fit the chosen folds into ``staging``; on global rank 0 predict their test images and write the files."""
    if is_global_zero():
        save_splits(staging / "splits.json", splits)
    chosen = cfg.folds if cfg.folds is not None else list(range(len(splits)))
    checkpoints = {k: _fit_fold(cfg, staging / f"fold_{k}", k, splits[k], images) for k in chosen}
    if not is_global_zero():
        return None
    rows, per_fold = [], []
    for k, checkpoint in checkpoints.items():
        final = str(cfg.out.resolve() / Path(checkpoint).relative_to(staging.resolve()))
        fold_rows, metrics = _evaluate_fold(cfg, k, splits[k], images, checkpoint, final)
        rows += fold_rows
        per_fold.append(metrics)
    result = {
        "model": cfg.model, "split": cfg.split, "centres": cfg.centres, "classes": list(images.classes),
        "folds": per_fold, "summary": summarize_folds(per_fold), "pooled": _pooled(cfg, rows, images.classes),
        "skipped": [{"volume_id": v, "error": e} for v, e in images.skipped],
        "config": {k: str(v) for k, v in asdict(cfg).items()},
    }  # fmt: skip
    write_csv(staging / "predictions.csv", sorted(rows, key=lambda r: str(r["image_id"])))
    write_json(staging / "metrics.json", result)
    return result


def _fit_fold(cfg: ClassifyConfig, folder: Path, k: int, fold: Fold, images: ImageSet) -> str:
    """Fit one fold; return its selected checkpoint."""
    train, val = images.select(fold.train), images.select(fold.val)
    names, mean, std = normalisation_table(train, cfg.centres)
    n_classes = len(images.classes)
    L.seed_everything(cfg.seed + k, workers=True, verbose=False)
    system = ImageSystem(
        {"name": cfg.model, "kwargs": {**cfg.model_args, "num_classes": n_classes}}, list(images.classes), names,
        mean.tolist(), std.tolist(), cfg.lr, cfg.weight_decay,
        class_weights(train.labels, n_classes) if cfg.balance == "weights" else None,
        {"image_size": cfg.image_size, "channels": cfg.channels, "min_lesion_fraction": cfg.min_lesion_fraction},
    )  # fmt: skip
    if cfg.weights is not None:
        _load_weights(system, cfg.weights)
    rows = centre_rows(names)
    trainer = build_trainer(cfg.trainer_settings, folder, validate=True)
    fit(
        trainer,
        system,
        loader(ImageDataset(train, rows, cfg.augment), cfg.batch_size, True, cfg.seed + k, cfg.balance, cfg.workers),
        loader(ImageDataset(val, rows), cfg.batch_size, False, cfg.seed + k, workers=cfg.workers),
    )
    return selected_checkpoint(trainer)


def _load_weights(system: ImageSystem, weights: Path) -> None:
    """Load a local state dict into the network (strict: every key and shape)."""
    from pathattn.io.weights import load_state_dict_strict, read_state_dict

    name = system.hparams.model_spec["name"]
    load_state_dict_strict(system.model, read_state_dict(weights), weights, target=f"--model {name}",
                           fix="pass --weights saved from this model (torch.save(model.state_dict()))")  # fmt: skip


def _evaluate_fold(
    cfg: ClassifyConfig, k: int, fold: Fold, images: ImageSet, checkpoint: str, final: str
) -> tuple[list[dict[str, object]], dict[str, Any]]:
    """The test images' prediction rows and the fold's metrics (threshold from the validation images)."""
    system = load_image_classifier(checkpoint)
    val, test = images.select(fold.val), images.select(fold.test)
    binary = len(images.classes) == 2
    threshold = youden_threshold(val.labels, system.probabilities(val.images, val.centres)[:, 1]) if binary else None
    probs = system.probabilities(test.images, test.centres)
    rows = [_row(test, i, probs[i], threshold, k, final) for i in range(len(test))]
    metrics = {"fold": k, "n_train": len(fold.train), "n_val": len(fold.val), "n_test": len(fold.test),
               "threshold": threshold, "test_patients_also_trained_on": crossing_patients(fold, dict(
                   zip(images.ids, images.patients, strict=True))),
               **_with_intervals(cfg, test.labels, probs, threshold, np.asarray(test.patients))}  # fmt: skip
    return rows, metrics


def _with_intervals(
    cfg: ClassifyConfig, labels: np.ndarray, probs: np.ndarray, threshold: float | None, patients: np.ndarray
) -> dict[str, float]:
    """Metrics and their patient-bootstrap intervals (``name``, ``name_ci_low``, ``name_ci_high``)."""
    if threshold is None:
        return with_ci(bootstrap_metrics(classification_metrics, labels, probs, n_boot=cfg.n_boot, seed=cfg.seed,
                                         clusters=patients))  # fmt: skip
    fn = lambda y, p: binary_metrics(y, p, threshold)  # noqa: E731
    return with_ci(bootstrap_metrics(fn, labels, probs[:, 1], n_boot=cfg.n_boot, seed=cfg.seed, clusters=patients))


def _row(images: ImageSet, i: int, probs: np.ndarray, threshold: float | None, k: int, checkpoint: str) -> dict:
    """One line of ``predictions.csv``."""
    classes = images.classes
    call = int(probs[1] >= threshold) if threshold is not None else int(np.argmax(probs))
    return {"image_id": images.ids[i], "patient_id": images.patients[i], "centre": images.centres[i],
            "source": images.sources[i], "fold": k, "label": classes[int(images.labels[i])],
            "prediction": classes[call], **{f"prob_{c}": float(p) for c, p in zip(classes, probs, strict=True)},
            "threshold": threshold if threshold is not None else "", "checkpoint": checkpoint}  # fmt: skip


def _pooled(cfg: ClassifyConfig, rows: list[dict], classes: tuple[str, ...]) -> dict[str, float]:
    """Out-of-fold metrics over every predicted image (each at its fold's threshold), with intervals."""
    labels = np.array([classes.index(str(r["label"])) for r in rows])
    probs = np.array([[r[f"prob_{c}"] for c in classes] for r in rows], np.float64)
    patients = np.array([r["patient_id"] for r in rows])
    if len(classes) != 2:
        return _with_intervals(cfg, labels, probs, None, patients)
    calls = np.array([classes.index(str(r["prediction"])) for r in rows])
    fn = lambda y, p, c: binary_metrics(y, p, calls=c)  # noqa: E731
    return with_ci(bootstrap_metrics(fn, labels, probs[:, 1], calls, n_boot=cfg.n_boot, seed=cfg.seed,
                                     clusters=patients))  # fmt: skip
