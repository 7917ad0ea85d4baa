"""Predict with trained MIL checkpoints: one prediction per slide and the attention of every patch.

Two ways to choose the network of a slide:

* one checkpoint for every slide (:func:`predict`), e.g. a model trained on another cohort, or a HIPPO or
  CLAM-SB model (any format of :func:`pathattn.models.trained.load_trained`; their classes are named
  ``0 .. C-1``);
* the cross-validation run itself (:func:`predict_out_of_fold`): each slide is predicted by the checkpoint
  of the fold whose test set held it (the ``checkpoint`` column of ``RUN/predictions.csv``), so its
  prediction and attention come from a model that never saw it.

Outputs under ``OUT``::

    OUT/predictions.csv             slide_id, n_patches, prediction and prob_<class> (or risk), checkpoint
    OUT/attention/{slide_id}.h5     attention (N, K) float32 raw (pre-softmax) scores of K heads, aligned
                                    with coords (N, 2) copied from the feature file (with the tiling
                                    attributes), file attributes model, slide_id, checkpoint
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from pathattn.devices import resolve_device
from pathattn.errors import PathattnError
from pathattn.io.bags import find_bags, read_checked_bag
from pathattn.io.manifest import write_csv
from pathattn.io.runs import run_checkpoints
from pathattn.io.samples import select_ids
from pathattn.io.scores import write_patch_scores
from pathattn.models.trained import CheckpointFormat, TrainedModel, load_trained


def _feature_files(features: Path, slide_ids: Sequence[str] | None) -> dict[str, Path]:
    found = find_bags(features)
    if not found:
        raise PathattnError(
            f"--features {features} holds no feature files; pass the output folder of 'pathattn extract'"
        )
    return select_ids(found, slide_ids, f"--features {features}")


def _predict_slide(model: TrainedModel, slide_id: str, path: Path, checkpoint: Path, out: Path) -> dict[str, object]:
    """Predict one bag, write its attention file, and return its row of ``predictions.csv``."""
    bag = read_checked_bag(path, model.in_dim, "the checkpoint's model")
    features = bag.features
    row: dict[str, object] = {"slide_id": slide_id, "n_patches": len(features)}
    if len(features) == 0:
        return row | {"prediction": "", "checkpoint": str(checkpoint)}
    scores, attention = (t.numpy() for t in model.predict_bag(torch.from_numpy(features)))
    if model.task == "classification":
        row["prediction"] = model.class_names[int(np.argmax(scores))]
        row |= {f"prob_{name}": float(p) for name, p in zip(model.class_names, scores, strict=True)}
    else:
        row |= {"prediction": "", "risk": float(scores[0])}
    attrs = {"model": model.name, "slide_id": slide_id, "checkpoint": str(checkpoint)}
    coords_attrs = bag.attrs.get("coords", {})
    write_patch_scores(out / "attention" / f"{slide_id}.h5", attention, bag.coords, coords_attrs, attrs)
    return row | {"checkpoint": str(checkpoint)}


@torch.inference_mode()
def _predict_all(
    checkpoints: Mapping[str, Path],
    files: Mapping[str, Path],
    out: Path,
    device: str,
    checkpoint_format: CheckpointFormat,
) -> list[dict[str, object]]:
    """Predict every slide of ``files`` with its checkpoint (each checkpoint loaded once); write the CSV."""
    rows = []
    for checkpoint in sorted(set(checkpoints.values())):
        model = load_trained(checkpoint, device, checkpoint_format)
        rows += [
            _predict_slide(model, slide_id, files[slide_id], checkpoint, out)
            for slide_id in sorted(files)
            if checkpoints[slide_id] == checkpoint
        ]
    rows.sort(key=lambda row: str(row["slide_id"]))
    write_csv(out / "predictions.csv", rows)
    return rows


def predict(
    checkpoint: str | Path,
    features: str | Path,
    out: str | Path,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
    checkpoint_format: CheckpointFormat = "auto",
) -> list[dict[str, object]]:
    """Run one trained model on feature files.

    Args:
        checkpoint: a ``.ckpt`` of ``pathattn train`` (``RUN/fold_k/checkpoints/best.ckpt``), or a HIPPO or
            CLAM-SB state dict.
        features: folder of feature files (pathattn, CLAM or TRIDENT).
        out: output folder (module docstring).
        slide_ids: the slides to predict (default: every feature file).
        device: where the model runs.
        checkpoint_format: ``auto`` (detected), ``pathattn``, ``hippo`` or ``clam_sb``
            (:func:`pathattn.models.trained.load_trained`).

    Returns:
        The rows of ``predictions.csv``.

    Raises:
        PathattnError: unreadable checkpoint, missing features, or features of another size than the model's.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise PathattnError(f"--checkpoint not found: {checkpoint}")
    files = _feature_files(Path(features), slide_ids)
    return _predict_all(dict.fromkeys(files, checkpoint), files, Path(out), device, checkpoint_format)


def predict_out_of_fold(
    run: str | Path,
    features: str | Path,
    out: str | Path,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
    checkpoint_format: CheckpointFormat = "auto",
) -> list[dict[str, object]]:
    """Predict each slide of a cross-validation run with the checkpoint of the fold that tested it.

    Args:
        run: the run folder of ``pathattn train`` (its ``predictions.csv`` and ``fold_k/checkpoints``).
        features: folder of feature files.
        out: output folder (module docstring).
        slide_ids: the slides to predict (default: every slide of the run); each must be in the run.
        device: where the model runs.
        checkpoint_format: the format of the run's checkpoints (``auto``: detected).

    Returns:
        The rows of ``predictions.csv``.

    Raises:
        PathattnError: no finished run, a slide not in the run, or a slide of the run without features.
    """
    checkpoints = select_ids(run_checkpoints(run), slide_ids, f"--run {run} (the slides it was trained on)")
    files = _feature_files(Path(features), list(checkpoints))
    return _predict_all(checkpoints, files, Path(out), device, checkpoint_format)


def run_predict(
    features: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    run: str | Path | None = None,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
    checkpoint_format: CheckpointFormat = "auto",
) -> int:
    """``pathattn predict``: :func:`predict` with ``checkpoint`` or :func:`predict_out_of_fold` with ``run``.

    Returns:
        The exit code (0; problems raise).

    Raises:
        PathattnError: both or neither of ``checkpoint`` and ``run``, or the errors of the two functions.
    """
    if (checkpoint is None) == (run is None):
        raise PathattnError(
            "give either --checkpoint (one model for every slide) or --run (out of fold), not both or neither"
        )
    where = str(resolve_device(device))
    if run is not None:
        rows = predict_out_of_fold(run, features, out, slide_ids, where, checkpoint_format)
    else:
        rows = predict(checkpoint, features, out, slide_ids, where, checkpoint_format)
    print(f"predict: {len(rows)} slides; predictions: {out}/predictions.csv, attention: {out}/attention/",
          file=sys.stderr)  # fmt: skip
    return 0
