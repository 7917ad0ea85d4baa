"""The outputs of a ``pathattn train`` run that later stages read: the out-of-fold checkpoint of each slide."""

from __future__ import annotations

from pathlib import Path

from pathattn.errors import PathattnError
from pathattn.io.manifest import read_manifest


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
        PathattnError: the run has no ``predictions.csv``, or a checkpoint is missing.
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
        checkpoints[row["slide_id"]] = path
    return checkpoints
