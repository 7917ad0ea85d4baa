"""Predict with trained MIL checkpoints: one prediction per slide and the attention of every patch.

Two ways to choose the network of a slide:

* one checkpoint for every slide (``checkpoint``), e.g. a model trained on another cohort, or a HIPPO or
  CLAM-SB model (any format of :func:`pathattn.models.trained.load_trained`; their classes are named
  ``0 .. C-1``);
* the cross-validation run itself (``run``): each slide is predicted by the checkpoint
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


def slide_checkpoints(
    features: str | Path,
    checkpoint: str | Path | None = None,
    run: str | Path | None = None,
    slide_ids: Sequence[str] | None = None,
) -> tuple[dict[str, Path], dict[str, Path]]:
    """The checkpoint and the feature file of every slide to predict.

    Args:
        features: folder of feature files (pathattn, CLAM or TRIDENT).
        checkpoint: one model for every slide: a ``.ckpt`` of ``pathattn train``, or a HIPPO or CLAM-SB state
            dict; or
        run: a ``pathattn train`` run folder: each of its slides with the checkpoint of the fold that tested it.
        slide_ids: the slides (default: every feature file, or every slide of the run).

    Returns:
        Slide id → checkpoint, and slide id → feature file.

    Raises:
        PathattnError: both or neither of ``checkpoint`` and ``run``, a missing checkpoint or run, a slide not
            in the run, or slides without features.
    """
    if (checkpoint is None) == (run is None):
        raise PathattnError(
            "give either --checkpoint (one model for every slide) or --run (out of fold), not both or neither"
        )
    if run is not None:
        checkpoints = select_ids(run_checkpoints(run), slide_ids, f"--run {run} (the slides it was trained on)")
        return checkpoints, _feature_files(Path(features), list(checkpoints))
    if not Path(checkpoint).is_file():
        raise PathattnError(f"--checkpoint not found: {checkpoint}")
    files = _feature_files(Path(features), slide_ids)
    return dict.fromkeys(files, Path(checkpoint)), files


def predict(
    features: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    run: str | Path | None = None,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
    checkpoint_format: CheckpointFormat = "auto",
) -> list[dict[str, object]]:
    """Predict slides with one checkpoint, or each slide of a run out of fold (module docstring).

    Args:
        features: folder of feature files.
        out: output folder (module docstring).
        checkpoint: one model for every slide; or
        run: a cross-validation run (:func:`slide_checkpoints`).
        slide_ids: the slides to predict (default: all).
        device: where the model runs: ``auto``, ``cpu``, ``cuda[:i]``.
        checkpoint_format: ``auto`` (detected), ``pathattn``, ``hippo`` or ``clam_sb``
            (:func:`pathattn.models.trained.load_trained`).

    Returns:
        The rows of ``predictions.csv`` (also summarised in one line on stderr).

    Raises:
        PathattnError: the errors of :func:`slide_checkpoints`, an unknown device, an unreadable checkpoint, or
            features of another size than the model's.
    """
    checkpoints, files = slide_checkpoints(features, checkpoint, run, slide_ids)
    rows = _predict_all(checkpoints, files, Path(out), str(resolve_device(device)), checkpoint_format)
    print(f"predict: {len(rows)} slides; predictions: {out}/predictions.csv, attention: {out}/attention/",
          file=sys.stderr)  # fmt: skip
    return rows
