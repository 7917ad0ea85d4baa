"""The volume WSOL job of ``pathattn evaluate wsol``: per-slice or per-patch scores against the label fractions.

The protocol, the outputs and the baselines are those of whole slides (:mod:`pathattn.evaluate.run`), with
the metrics of :mod:`pathattn.evaluate.volumes`: the calibration split chooses the normalisation (by PxAP)
and the Dice threshold, the test split is scored once. Outputs under ``OUT`` (each written atomically)::

    metrics.json     "kind": "volumes", settings, splits, skipped volumes, every variant's calibration metrics,
                     the choice, and each method's calibration and test metrics
    summary.csv      one row per method and split: PxAP, Dice, IoU at the calibrated threshold (voxels),
                     row AUROC and AUPRC pooled and mean per volume
    per_slide.csv    one row per method, split and volume (column ``slide_id``: the volume id)
    pr_curves.png    voxel precision-recall curves: calibration (every variant, baselines) and test (methods)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from pathattn.errors import PathattnError
from pathattn.evaluate import protocol
from pathattn.evaluate.baselines import BASELINES, few_shot_scores, fit_few_shot, read_features
from pathattn.evaluate.outputs import MODEL, MethodResult, method_rows, methods_block, write_run
from pathattn.evaluate.slides import assign_splits
from pathattn.evaluate.volumes import VolumeRows, load_volumes, row_map, row_metrics, score_split, volume_columns
from pathattn.scoremaps import wsol
from pathattn.scoremaps.normalise import Normalisation, normalise


@dataclass(frozen=True)
class VolumeWsolJob:
    """One volume evaluation (the options of ``pathattn evaluate wsol`` on volumes; docs/evaluate.md).

    Args:
        scores: per-row scores (``pathattn predict`` output, ``pathattn explain`` output, or HDF5 files).
        tiles: the volume tiling (``pathattn tile`` output): ``coords/{volume_id}.h5`` with the label fractions.
        out: output folder.
        features: ``pathattn extract`` output, for the few-shot baseline and explain records.
        dataset: the per-row dataset (or explain key) to evaluate.
        head: the column of (N, K) scores.
        classes: label classes that count as lesion (default: all).
        positive_fraction: a row is positive when its lesion fraction exceeds this, in [0, 1).
        calibration_ids: the held-out volumes (default: ``n_calibration`` drawn with ``seed``).
        n_calibration: how many calibration volumes to draw.
        seed: the draw's seed (and the few-shot solver's).
        normalisations: per-volume normalisations to choose from on the calibration split.
        baselines: baselines to score beside the model.
        mode: metric conventions (:mod:`pathattn.scoremaps.wsol`; without boxes they only differ on
            non-finite maps, which volumes never give).
        step: threshold step.
    """

    scores: Path
    tiles: Path
    out: Path
    features: Path | None = None
    dataset: str = "attention"
    head: int = 0
    classes: tuple[str, ...] | None = None
    positive_fraction: float = 0.0
    calibration_ids: tuple[str, ...] | None = None
    n_calibration: int = 6
    seed: int = 0
    normalisations: tuple[Normalisation, ...] = ("percentile",)
    baselines: tuple[str, ...] = BASELINES
    mode: wsol.Mode = "default"
    step: float = 0.001

    def __post_init__(self) -> None:
        if not 0 <= self.positive_fraction < 1:
            raise PathattnError(
                f"--positive-fraction must be in [0, 1) (0: a row is positive when it crosses a lesion); "
                f"got {self.positive_fraction}"
            )
        if not self.normalisations:
            raise PathattnError("--normalise needs at least one normalisation (percentile, minmax, softmax, raw)")


def _maps(
    volumes: Mapping[str, VolumeRows], ids: Sequence[str], normalisation: Normalisation, job: VolumeWsolJob
) -> dict[str, np.ndarray]:
    """The evaluated maps of the volumes ``ids``: (N,) per volume (:func:`~pathattn.evaluate.volumes.row_map`)."""
    return {v: row_map(volumes[v].scores, normalisation, job.mode) for v in ids}


def evaluate_model(
    job: VolumeWsolJob, volumes: Mapping[str, VolumeRows], calibration: list[str], test: list[str]
) -> tuple[MethodResult, dict[str, protocol.SplitScores], Normalisation]:
    """Every normalisation on the calibration split, the chosen one on the test split."""
    thresholds = wsol.threshold_grid(job.step)
    split = calibration
    candidates = {n: score_split(_maps(volumes, split, n, job), volumes, split, thresholds) for n in job.normalisations}
    try:
        name, operating = protocol.choose(candidates)
    except ValueError as err:
        raise PathattnError(f"calibration volumes: {err}") from None
    chosen = cast(Normalisation, name)
    test_scores = score_split(_maps(volumes, test, chosen, job), volumes, test, thresholds)
    row_scores = {v: normalise(volume.scores, chosen) for v, volume in volumes.items()}
    return MethodResult(candidates[chosen], test_scores, operating, row_scores), candidates, chosen


def evaluate_baseline(
    name: str, job: VolumeWsolJob, volumes: Mapping[str, VolumeRows], calibration: list[str], test: list[str]
) -> MethodResult:
    """The uniform or few-shot baseline (:mod:`pathattn.evaluate.baselines`) on both splits.

    ``uniform`` gives every row the same score (PxAP: the lesion prevalence of the split's foreground voxels;
    row AUROC 0.5); ``few_shot`` is trained on the calibration volumes' row labels and features.
    """
    if name == "uniform":
        row_scores = {v: np.ones(len(volume.scores)) for v, volume in volumes.items()}
    else:
        if job.features is None:
            raise PathattnError("the few_shot baseline needs --features (the row features); or leave it out")
        features = {v: read_features(job.features, v, len(volume.scores)) for v, volume in volumes.items()}
        labels = [volumes[v].labels(job.positive_fraction) for v in calibration]
        model = fit_few_shot([features[v] for v in calibration], labels, job.seed)
        row_scores = {v: few_shot_scores(model, f) for v, f in features.items()}
    thresholds = wsol.threshold_grid(job.step)
    maps = {v: row_map(s, "raw", job.mode) for v, s in row_scores.items()}
    calibration_scores = score_split(maps, volumes, calibration, thresholds)
    operating = protocol.operating_point(calibration_scores)
    return MethodResult(calibration_scores, score_split(maps, volumes, test, thresholds), operating, row_scores)


def _tables(
    job: VolumeWsolJob,
    results: Mapping[str, MethodResult],
    volumes: Mapping[str, VolumeRows],
    splits: Mapping[str, list[str]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``summary.csv`` and ``per_slide.csv``."""
    summary, per_volume = [], []

    def rows(result: MethodResult, ids: Sequence[str]) -> dict[str, float | int]:
        return row_metrics(result.patch_scores, volumes, ids, job.positive_fraction)

    for name, result in results.items():
        method_summary, volume_rows = method_rows(name, result, splits, rows, None, "slide_id")
        summary += method_summary
        for row in volume_rows:
            v = row["slide_id"]
            row |= volume_columns(volumes[v], result.patch_scores[v], job.positive_fraction)
        per_volume += volume_rows
    return summary, per_volume


def run_volume_wsol(job: VolumeWsolJob) -> dict[str, Any]:
    """Run the job and write its outputs (module docstring); return the contents of ``metrics.json``.

    Raises:
        PathattnError: bad inputs, or a split without a lesion volume.
    """
    unknown = sorted(set(job.baselines) - set(BASELINES))
    if unknown:
        raise PathattnError(f"unknown baseline(s) {unknown}; use {', '.join(BASELINES)}")
    volumes, skipped = load_volumes(job.scores, job.tiles, job.dataset, job.head, job.features, job.classes)
    if not volumes:
        raise PathattnError(
            f"no volume has both scores in {job.scores} and a tiling with a label volume in {job.tiles}/coords; "
            "tile the volumes with their label_path"
        )
    lesion = {v: volume.has_lesion for v, volume in volumes.items()}
    calibration, test = assign_splits(
        lesion, job.calibration_ids, job.n_calibration, job.seed, ("volume", "lesion", "label volume")
    )
    model, candidates, chosen = evaluate_model(job, volumes, calibration, test)
    baselines = {name: evaluate_baseline(name, job, volumes, calibration, test) for name in job.baselines}
    results = {MODEL: model} | baselines
    splits = {"calibration": calibration, "test": test}
    summary, per_volume = _tables(job, results, volumes, splits)
    metrics = {
        "kind": "volumes",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()},
        "splits": splits,
        "skipped": skipped,
        "calibration": {
            "variants": {name: protocol.summarize(s, protocol.operating_point(s)) for name, s in candidates.items()},
            "selected_by": protocol.selection_metric(model.calibration)[0],
            "chosen": {"normalisation": chosen, "name": chosen},
        },
        "methods": methods_block(summary),
    }
    return write_run(job.out, metrics, summary, candidates, results, ("per_slide.csv", per_volume))
