"""What a results folder holds for the report: the stage folders that exist and the tables they wrote.

The results folder of a study is laid out by :class:`pathattn.workflow.layout.StudyLayout` (what the workflow
writes): ``tiles/``, ``features/``, ``train/``, ``predict/``, ``heatmaps/``, ``explain/`` and ``evaluate/``.
``DIR`` may also be a bare ``pathattn train`` run folder (``metrics.json`` directly inside). Every stage is
optional; a missing one leaves its section out of the report.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.manifest import read_manifest
from pathattn.io.samples import PATH_COLUMNS, SlideEntry, read_sample_sheet, read_table
from pathattn.workflow.layout import COMMANDS, STAGES, StudyLayout

MANIFEST_STAGES = ("tiles", "features", "heatmaps")
TASKS = ("classification", "survival")
_RERUN_TRAIN = "re-run 'pathattn train' to rewrite it"


@dataclass(frozen=True)
class RunLayout:
    """The stage folders of a results folder that exist.

    Args:
        study: the layout of the folder given as ``--run``.
        stages: the stages (of :data:`STAGES`) whose folder exists.
    """

    study: StudyLayout
    stages: frozenset[str]

    @property
    def root(self) -> Path:
        """The folder given as ``--run``."""
        return self.study.root

    def path(self, stage: str, *parts: str) -> Path | None:
        """``stage``'s folder joined with ``parts``, or None when the stage has no folder."""
        return self.study.stage(stage).joinpath(*parts) if stage in self.stages else None


def find_layout(run: str | Path) -> RunLayout:
    """The stage folders of ``run``: a workflow results folder, or a bare ``pathattn train`` run folder.

    Raises:
        PathattnError: the folder does not exist, or holds neither ``metrics.json`` nor a stage folder.
    """
    root = Path(run)
    if not root.is_dir():
        raise PathattnError(f"--run folder not found: {root}; pass a study's results folder or a 'pathattn train' run")
    train_run = StudyLayout(root, train_at_root=True)
    if train_run.train_metrics.is_file():
        return RunLayout(train_run, frozenset({"train"}))
    study = StudyLayout(root)
    stages = frozenset(name for name in STAGES if study.stage(name).is_dir())
    if not stages:
        raise PathattnError(
            f"--run {root} holds neither metrics.json nor any of {', '.join(s + '/' for s in STAGES)}; "
            "pass a study's results folder or a 'pathattn train' run folder"
        )
    return RunLayout(study, stages)


def read_rows(path: Path | None, fix: str) -> dict[str, dict[str, str]]:
    """The rows of a CSV file with a ``slide_id`` column, by slide id (empty when the file does not exist).

    Args:
        path: the CSV file, or None.
        fix: what the user should do when the file is unreadable (the end of the error message).

    Raises:
        PathattnError: the file is not a readable CSV or lacks the ``slide_id`` column.
    """
    if path is None:
        return {}
    try:
        rows = read_manifest(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise PathattnError(f"{path} is not a readable CSV file ({err}); {fix}") from None
    if rows and "slide_id" not in rows[0]:
        raise PathattnError(f"{path} has no slide_id column; {fix}")
    return {row["slide_id"]: row for row in rows}


def numbers(rows: Iterable[Mapping[str, str]], column: str, source: Path, fix: str = _RERUN_TRAIN) -> np.ndarray:
    """The values of ``column`` as floats: (N,) float64.

    Raises:
        PathattnError: a value is missing or not a number (naming the file, the slide and the column).
    """
    values = []
    for row in rows:
        try:
            values.append(float(row[column]))
        except (KeyError, TypeError, ValueError):
            raise PathattnError(
                f"{source}: slide {row.get('slide_id', '?')} has {column} '{row.get(column)}', not a number; {fix}"
            ) from None
    return np.asarray(values, np.float64).reshape(-1)


def read_metrics(path: Path | None) -> dict[str, Any] | None:
    """``metrics.json`` of a training run (None when the file does not exist).

    Raises:
        PathattnError: the file is not JSON or lacks ``task``, ``folds`` or ``summary``.
    """
    if path is None or not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise PathattnError(f"{path} is not valid JSON ({err}); {_RERUN_TRAIN}") from None
    if not isinstance(metrics, dict) or metrics.get("task") not in TASKS:
        raise PathattnError(f"{path} is not a metrics.json of 'pathattn train' (no task {'/'.join(TASKS)})")
    for key, kind in (("folds", list), ("summary", dict), ("classes", list)):
        if not isinstance(metrics.get(key, []), kind):
            raise PathattnError(f"{path}: '{key}' is not a {kind.__name__}; {_RERUN_TRAIN}")
    return metrics


def required_columns(metrics: Mapping[str, Any]) -> list[str]:
    """The columns a run's ``predictions.csv`` must have."""
    if metrics["task"] == "classification":
        return ["fold", "label", "prediction", *(f"prob_{c}" for c in metrics.get("classes", []))]
    return ["fold", "time", "event", "risk"]


def read_predictions(path: Path | None, metrics: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """The out-of-fold predictions of a training run, by slide id, checked against its task.

    Raises:
        PathattnError: the file is unreadable or lacks a column of its task.
    """
    rows = read_rows(path, _RERUN_TRAIN)
    if rows and metrics is not None:
        missing = [c for c in required_columns(metrics) if c not in next(iter(rows.values()))]
        if missing:
            raise PathattnError(
                f"{path} lacks the column(s) {', '.join(missing)} of a {metrics['task']} run; {_RERUN_TRAIN}"
            )
    return rows


def _number_or_none(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


@dataclass
class ReportInputs:
    """Everything the report shows, read once.

    Args:
        layout: the stage folders.
        metrics: ``train/metrics.json`` (None without it).
        oof: ``train/predictions.csv`` rows (out-of-fold) by slide id.
        predicted: ``predict/predictions.csv`` rows by slide id.
        samples: sample-sheet rows by slide id (without the slide path and mpp columns).
        manifests: stage (``tiles``, ``features``, ``heatmaps``) to its manifest rows by slide id.
        slides: where each slide's file is (sample sheet, else the heatmap or tile manifest) and its mpp.
        annotations: folder of ground-truth ``{slide_id}.geojson`` files (None: not given).
        max_slides: most slides whose heatmaps are shown.
        notes: remarks shown at the top of the report (e.g. a recorded sample sheet that is gone).
    """

    layout: RunLayout
    metrics: dict[str, Any] | None = None
    oof: dict[str, dict[str, str]] = field(default_factory=dict)
    predicted: dict[str, dict[str, str]] = field(default_factory=dict)
    samples: dict[str, dict[str, str]] = field(default_factory=dict)
    manifests: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    slides: dict[str, SlideEntry] = field(default_factory=dict)
    annotations: Path | None = None
    max_slides: int = 50
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str | None:
        """``classification``, ``survival``, or None without a training run."""
        return self.metrics["task"] if self.metrics else None

    @property
    def classes(self) -> list[str]:
        """The class names of a classification run (empty otherwise)."""
        return list(self.metrics.get("classes") or []) if self.metrics else []

    def slide_ids(self) -> list[str]:
        """Every slide any table mentions, sorted."""
        tables = [self.samples, self.oof, self.predicted, *self.manifests.values()]
        return sorted({slide_id for table in tables for slide_id in table})


def _sample_sheet(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, SlideEntry]]:
    """Rows by slide id, and the slides of a sheet with a ``slide_path`` column (paths resolved).

    A volume sheet (``volume_id`` and ``<modality>_path`` columns) gives its rows by volume id and no slides.

    Raises:
        PathattnError: the sheet is missing or empty, or has neither a slide_id nor a slide_path column.
    """
    rows = read_table(path, aliases={"slide_id": "volume_id"})  # a volume sheet's volume_id stands for slide_id
    if any(c in rows[0] for c in PATH_COLUMNS):
        entries = read_sample_sheet(path)
        return {e.slide_id: {"slide_id": e.slide_id, **e.extra} for e in entries}, {e.slide_id: e for e in entries}
    if "slide_id" not in rows[0]:
        raise PathattnError(f"--samples {path} needs a slide_id (or slide_path) column; add it to the header")
    return {row["slide_id"]: row for row in rows}, {}


def _manifest_slides(manifests: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, SlideEntry]:
    """Slide files recorded by the tile and heatmap manifests (the heatmap's where both are), with the tiling's mpp."""
    tiles = manifests.get("tiles", {})
    slides = {}
    for stage in ("tiles", "heatmaps"):  # later stages override earlier ones
        for slide_id, row in manifests.get(stage, {}).items():
            if row.get("slide_path"):
                mpp = _number_or_none(tiles.get(slide_id, {}).get("mpp"))
                slides[slide_id] = SlideEntry(slide_id, Path(row["slide_path"]), mpp)
    return slides


def _add_sample_sheet(inputs: ReportInputs, samples: str | Path | None) -> None:
    """Read ``samples`` (default: the sheet recorded in metrics.json, noted when it is gone) into ``inputs``."""
    recorded = (inputs.metrics or {}).get("config", {}).get("samples")
    if samples is None and recorded and not Path(recorded).is_file():
        inputs.notes.append(f"The sample sheet recorded in metrics.json ({recorded}) was not found; pass --samples.")
    sheet = samples if samples is not None else (recorded if recorded and Path(recorded).is_file() else None)
    if sheet is None:
        return
    inputs.samples, sheet_slides = _sample_sheet(Path(sheet))
    for slide_id, entry in sheet_slides.items():  # the tiling's mpp where the sheet has none
        known = inputs.slides.get(slide_id)
        inputs.slides[slide_id] = entry if entry.mpp or known is None else replace(entry, mpp=known.mpp)


def load_inputs(
    run: str | Path,
    samples: str | Path | None = None,
    annotations: str | Path | None = None,
    max_slides: int = 50,
) -> ReportInputs:
    """Read every table of a results folder.

    Args:
        run: the results folder, or a bare ``pathattn train`` run folder.
        samples: the sample sheet (default: the ``samples`` entry recorded in ``metrics.json``, when it exists).
        annotations: folder of ground-truth tumor annotations ``{slide_id}.geojson`` (QuPath GeoJSON).
        max_slides: most slides whose heatmaps are shown.

    Raises:
        PathattnError: a missing folder or file the user named, or an unreadable table.
    """
    layout = find_layout(run)
    if annotations is not None and not Path(annotations).is_dir():
        raise PathattnError(f"--annotations folder not found: {annotations}; pass the folder of {{slide_id}}.geojson")
    if max_slides < 0:
        raise PathattnError(f"--max-slides must be 0 or more, got {max_slides}")
    metrics = read_metrics(layout.study.train_metrics)
    folder = Path(annotations) if annotations is not None else None
    inputs = ReportInputs(layout, metrics, annotations=folder, max_slides=max_slides)
    inputs.oof = read_predictions(layout.study.train_predictions, metrics)
    inputs.predicted = read_rows(layout.study.predictions, "re-run 'pathattn predict'")
    for stage in MANIFEST_STAGES:
        rows = read_rows(layout.study.manifest(stage), f"re-run 'pathattn {COMMANDS[stage]}'")
        if rows:
            inputs.manifests[stage] = rows
    inputs.slides = _manifest_slides(inputs.manifests)
    _add_sample_sheet(inputs, samples)
    return inputs
