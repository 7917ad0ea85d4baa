"""Trained models that later stages read: a checkpoint file, or the out-of-fold checkpoint of each slide of a run."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from pathattn.batch import Batch, one_line
from pathattn.errors import PathattnError
from pathattn.io.manifest import read_manifest
from pathattn.models.checkpoint_formats import CheckpointFormat
from pathattn.models.trained import TrainedModel, load_trained


def checkpoint_file(path: str | os.PathLike[str], option: str = "--checkpoint") -> Path:
    """A checkpoint file that exists and can be read.

    Args:
        path: the file.
        option: the option (or the run) that named it, for the message.

    Raises:
        PathattnError: the file is missing, a folder, or cannot be read for lack of permission.
    """
    path = Path(path)
    if not path.exists():
        raise PathattnError(f"{option} not found: {path}")
    if path.is_dir():
        raise PathattnError(f"{option} {path} is a folder; pass a checkpoint file (RUN/fold_k/checkpoints/best.ckpt)")
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        raise PathattnError(f"{option}: cannot read {path}: permission denied; give your user read access") from None
    return path


def run_checkpoints(run: str | Path) -> dict[str, Path]:
    """The out-of-fold checkpoint of each slide of a train run: the model of the fold whose test set held it.

    A slide's checkpoint is the one recorded in ``RUN/predictions.csv``; when that path does not exist (the run
    folder moved, or was made from another working directory), the file of the same name in
    ``RUN/fold_{fold}/checkpoints/``.

    Args:
        run: the run folder of ``pathattn train``.

    Returns:
        Slide id -> checkpoint file.

    Raises:
        PathattnError: the run has no ``predictions.csv``, or a checkpoint is missing or unreadable.
    """
    run = Path(run)
    rows = read_manifest(run / "predictions.csv")
    if not rows or not {"slide_id", "fold", "checkpoint"} <= set(rows[0]):
        raise PathattnError(
            f"--run {run} has no predictions.csv with slide_id, fold and checkpoint columns; "
            "pass the output folder of a finished 'pathattn train'"
        )
    checkpoints = {}
    for row in rows:
        recorded = Path(row["checkpoint"])
        path = recorded if recorded.is_file() else run / f"fold_{row['fold']}" / "checkpoints" / recorded.name
        if not path.is_file():
            raise PathattnError(f"--run {run}: checkpoint of slide {row['slide_id']} not found: {recorded}")
        checkpoints[row["slide_id"]] = checkpoint_file(path, f"--run {run}: the checkpoint of slide {row['slide_id']}")
    return checkpoints


def models_by_checkpoint(
    batch: Batch, checkpoints: Mapping[str, Path], device: str, checkpoint_format: CheckpointFormat = "auto"
) -> Iterator[tuple[TrainedModel, Path, list[str]]]:
    """Each checkpoint's model, loaded once, with the slides it serves (in id order).

    A checkpoint that cannot be loaded fails its slides in ``batch`` (whose rows have a ``checkpoint`` column)
    and is not yielded.

    Args:
        batch: the batch the slides are recorded in.
        checkpoints: slide id -> checkpoint file.
        device: where the models go.
        checkpoint_format: ``auto`` or the format's name (:func:`~pathattn.models.trained.load_trained`).
    """
    for checkpoint in sorted(set(checkpoints.values())):
        slide_ids = sorted(s for s, c in checkpoints.items() if c == checkpoint)
        try:
            model = load_trained(checkpoint, device, checkpoint_format)
        except Exception as err:  # noqa: BLE001 - a checkpoint that cannot be used fails its slides, not the batch
            for slide_id in slide_ids:
                batch.record(batch.row_type(slide_id, "failed", checkpoint=str(checkpoint), error=one_line(err)))
            continue
        yield model, checkpoint, slide_ids
