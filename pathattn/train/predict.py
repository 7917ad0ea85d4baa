"""Predict with trained MIL checkpoints: one prediction per slide and the attention of every patch.

Two ways to choose the network of a slide:

* one checkpoint for every slide (:func:`predict`), e.g. a model trained on another cohort;
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

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.io.bags import find_bags, read_bag, write_features
from pathattn.io.manifest import read_manifest, write_csv
from pathattn.io.samples import select_ids
from pathattn.train.data import load_features
from pathattn.train.system import MILSystem


def _feature_files(features: Path, slide_ids: Sequence[str] | None) -> dict[str, Path]:
    found = find_bags(features)
    if not found:
        raise PathattnError(
            f"--features {features} holds no feature files; pass the output folder of 'pathattn extract'"
        )
    return select_ids(found, slide_ids, f"--features {features}")


def run_checkpoints(run: str | Path) -> dict[str, Path]:
    """The out-of-fold checkpoint of each slide of a cross-validation run.

    A slide's checkpoint is the one recorded in ``RUN/predictions.csv``; when that path does not exist (the run
    folder moved, or was made from another working directory), the file of the same name in
    ``RUN/fold_{fold}/checkpoints/``.

    Args:
        run: the run folder of ``pathattn train``.

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


def _predict_slide(system: MILSystem, slide_id: str, path: Path, checkpoint: Path, out: Path) -> dict[str, object]:
    """Predict one bag, write its attention file, and return its row of ``predictions.csv``."""
    classes = system.hparams.get("class_names") or []
    bag = read_bag(path)
    features = load_features(path, int(system.model.in_dim))
    row: dict[str, object] = {"slide_id": slide_id, "n_patches": len(features)}
    if len(features) == 0:
        return row | {"prediction": "", "checkpoint": str(checkpoint)}
    device = next(system.parameters()).device
    output = system(torch.from_numpy(features)[None].to(device), None)
    scores = system.scores(output.logits)[0].cpu().numpy()
    if classes:
        row["prediction"] = classes[int(np.argmax(scores))]
        row |= {f"prob_{name}": float(p) for name, p in zip(classes, scores, strict=True)}
    else:
        row |= {"prediction": "", "risk": float(scores[0])}
    attention = output.attention[0].float().cpu().numpy()
    attrs = {"model": system.hparams["model_spec"]["name"], "slide_id": slide_id, "checkpoint": str(checkpoint)}
    coords_attrs = bag.attrs.get("coords", {})
    write_features(out / "attention" / f"{slide_id}.h5", attention, bag.coords, coords_attrs, attrs, "attention")
    return row | {"checkpoint": str(checkpoint)}


@torch.inference_mode()
def _predict_all(
    checkpoints: Mapping[str, Path], files: Mapping[str, Path], out: Path, device: str
) -> list[dict[str, object]]:
    """Predict every slide of ``files`` with its checkpoint (each checkpoint loaded once); write the CSV."""
    rows = []
    for checkpoint in sorted(set(checkpoints.values())):
        system = MILSystem.load(checkpoint, map_location=device).eval()
        rows += [
            _predict_slide(system, slide_id, files[slide_id], checkpoint, out)
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
) -> list[dict[str, object]]:
    """Run one checkpoint of ``pathattn train`` on feature files.

    Args:
        checkpoint: a ``.ckpt`` written by cross-validation (``RUN/fold_k/checkpoints/best.ckpt``).
        features: folder of feature files (pathattn, CLAM or TRIDENT).
        out: output folder (module docstring).
        slide_ids: the slides to predict (default: every feature file).
        device: where the model runs.

    Returns:
        The rows of ``predictions.csv``.

    Raises:
        PathattnError: unreadable checkpoint, missing features, or features of another size than the model's.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise PathattnError(f"--checkpoint not found: {checkpoint}")
    files = _feature_files(Path(features), slide_ids)
    return _predict_all(dict.fromkeys(files, checkpoint), files, Path(out), device)


def predict_out_of_fold(
    run: str | Path,
    features: str | Path,
    out: str | Path,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, object]]:
    """Predict each slide of a cross-validation run with the checkpoint of the fold that tested it.

    Args:
        run: the run folder of ``pathattn train`` (its ``predictions.csv`` and ``fold_k/checkpoints``).
        features: folder of feature files.
        out: output folder (module docstring).
        slide_ids: the slides to predict (default: every slide of the run); each must be in the run.
        device: where the model runs.

    Returns:
        The rows of ``predictions.csv``.

    Raises:
        PathattnError: no finished run, a slide not in the run, or a slide of the run without features.
    """
    checkpoints = select_ids(run_checkpoints(run), slide_ids, f"--run {run} (the slides it was trained on)")
    files = _feature_files(Path(features), list(checkpoints))
    return _predict_all(checkpoints, files, Path(out), device)
