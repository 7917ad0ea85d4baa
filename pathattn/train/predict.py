"""Predict with trained MIL checkpoints: one prediction per slide and the attention of every patch.

Two ways to choose the network of a slide:

* one checkpoint for every slide (``checkpoint``), e.g. a model trained on another cohort, or a HIPPO or
  CLAM-SB model (any format of :func:`pathattn.models.trained.load_trained`; their classes are named
  ``0 .. C-1``);
* the cross-validation run itself (``run``): each slide is predicted by the checkpoint
  of the fold whose test set held it (the ``checkpoint`` column of ``RUN/predictions.csv``), so its
  prediction and attention come from a model that never saw it.

Outputs under ``OUT``::

    OUT/predictions.csv             slide_id, n_patches, prediction and prob_<class> (or risk), checkpoint:
                                    one row per predicted slide
    OUT/attention/{slide_id}.h5     attention (N, K) float32 raw (pre-softmax) scores of K heads, aligned
                                    with coords (N, 2) (slides) or (N, 3) (volumes) copied from the feature
                                    file (with the tiling attributes), file attributes model, slide_id,
                                    checkpoint
    OUT/manifest.csv                one row per slide: done, empty (no patch: no prediction) or failed, with
                                    the reason (unreadable features, NaN features, another feature size)

The slides run through a :class:`~pathattn.batch.Batch`: a slide that fails is recorded and the others are
predicted, and the temporary files of a killed run are removed from ``OUT/attention/``. A slide that fails
or is empty keeps no attention file of an earlier run.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathattn.batch import Batch, BatchOutcome, BatchRow
from pathattn.devices import resolve_device
from pathattn.errors import PathattnError
from pathattn.io.bags import find_bags, read_checked_bag
from pathattn.io.ids import check_id, output_path
from pathattn.io.manifest import write_csv
from pathattn.io.runs import checkpoint_file, models_by_checkpoint, run_checkpoints
from pathattn.io.samples import select_ids
from pathattn.io.scores import write_patch_scores
from pathattn.models.trained import CheckpointFormat, TrainedModel


@dataclass(kw_only=True)
class PredictRow(BatchRow):
    """One row of ``OUT/manifest.csv``."""

    n_patches: int = 0
    checkpoint: str = ""


def _feature_files(features: Path, slide_ids: Sequence[str] | None) -> dict[str, Path]:
    found = find_bags(features)
    if not found:
        raise PathattnError(
            f"--features {features} holds no feature files; pass the output folder of 'pathattn extract'"
        )
    return select_ids(found, slide_ids, f"--features {features}")


def _predict_slide(
    item: tuple[str, Path], model: TrainedModel, checkpoint: Path, out: Path, predictions: dict[str, dict[str, object]]
) -> PredictRow:
    """Predict one bag, write its attention file and keep its row of ``predictions.csv``; errors propagate."""
    slide_id, path = item
    target = output_path(out, "attention", f"{check_id(slide_id)}.h5")
    target.unlink(missing_ok=True)  # a slide that fails now keeps no attention of an earlier run
    bag = read_checked_bag(path, model.in_dim, f"the model of {checkpoint} takes")
    row = PredictRow(slide_id, n_patches=len(bag), checkpoint=str(checkpoint))
    if len(bag) == 0:
        row.status = "empty"
        return row
    scores, attention = (t.numpy() for t in model.predict_bag(torch.from_numpy(bag.features)))
    if not np.isfinite(scores).all():
        raise PathattnError(f"the model of {checkpoint} gives non-finite outputs on {path}; check the checkpoint")
    prediction: dict[str, object] = {"slide_id": slide_id, "n_patches": len(bag)}
    if model.task == "classification":
        prediction["prediction"] = model.class_names[int(np.argmax(scores))]
        prediction |= {f"prob_{name}": float(p) for name, p in zip(model.class_names, scores, strict=True)}
    else:
        prediction |= {"prediction": "", "risk": float(scores[0])}
    attrs = {"model": model.name, "slide_id": slide_id, "checkpoint": str(checkpoint)}
    write_patch_scores(target, attention, bag.coords, bag.attrs.get("coords", {}), attrs)
    predictions[slide_id] = prediction | {"checkpoint": str(checkpoint)}
    return row


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
    checkpoint = checkpoint_file(checkpoint)
    files = _feature_files(Path(features), slide_ids)
    return dict.fromkeys(files, checkpoint), files


@torch.inference_mode()
def predict(
    features: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    run: str | Path | None = None,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
    checkpoint_format: CheckpointFormat = "auto",
) -> BatchOutcome[PredictRow]:
    """Predict slides with one checkpoint, or each slide of a run out of fold (module docstring).

    Each checkpoint is loaded once; one that cannot be loaded fails its slides.

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
        The manifest rows of the slides, in slide id order (:meth:`~pathattn.batch.BatchOutcome.report` prints
        the summary and gives the exit code).

    Raises:
        PathattnError: the errors of :func:`slide_checkpoints`, an unknown device, or ``out`` naming a file.
    """
    checkpoints, files = slide_checkpoints(features, checkpoint, run, slide_ids)
    device, out = str(resolve_device(device)), Path(out)
    predictions: dict[str, dict[str, object]] = {}
    with Batch("predict", out, PredictRow, [out / "attention"], total=len(files)) as batch:
        for model, used, ids in models_by_checkpoint(batch, checkpoints, device, checkpoint_format):
            work = functools.partial(_predict_slide, model=model, checkpoint=used, out=out, predictions=predictions)
            batch.run([(s, files[s]) for s in ids], work, lambda item: item[0])
    if predictions:
        write_csv(out / "predictions.csv", [predictions[s] for s in sorted(predictions)])
    else:
        (out / "predictions.csv").unlink(missing_ok=True)  # no slide predicted: no table of an earlier run
    return batch.outcome(sorted(files))
