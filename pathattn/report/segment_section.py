"""The report's segmentation section: the runs of ``pathattn segment fit``.

Inputs, as the workflow lays them out (:class:`pathattn.workflow.layout.StudyLayout`): every subfolder of
``segment/`` with a ``metrics.json`` is a run (sorted by name); each fold ``k`` of its ``metrics.json`` has its
held-out volumes in ``fold_k/test/``: ``cases.csv`` (Dice, HD95, NSD, volumes per case and class) and
``predictions.csv`` (its ``qc`` montage: axial planes, prediction and truth outlined, the finest gate's map
beside them). The section shows

* one row per run (and class, when a run has several foreground classes): the means over the folds of
  ``summary``, counts summed over the folds, the gates' PxAP beside the uniform map's;
* lesion recall by lesion volume, counts summed over the folds;
* the Dice of every held-out volume with a lesion, a strip per run;
* per run, the QC montages of its held-out volumes with the largest lesion volume.

A results folder without ``segment/`` has no such section.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pathattn.errors import PathattnError
from pathattn.report.common import Section, fmt
from pathattn.report.figures import case_dice_figure, image_uri
from pathattn.report.inputs import ReportInputs
from pathattn.scoremaps.images import read_rgb

RERUN = "re-run 'pathattn segment fit'"
OVERLAYS = 3  # QC montages per run
SUMMARY_COLUMNS = {"Dice (volumes with lesions)": "dice_mean_positive", "Dice": "dice_mean", "HD95 (mm)": "hd95_mean"}
DETECTION_COLUMNS = {"lesion-wise Dice": "lesion_dice", "lesion recall": "lesion_recall",
                     "lesion precision": "lesion_precision"}  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One held-out volume and class of a run: a row of a fold's ``test/cases.csv``.

    Args:
        volume_id: the volume.
        fold: the fold that held it out.
        label: the foreground class (``1``, ``2``, ...).
        dice: its Dice (None: not recorded).
        truth_ml: the class's true volume in mL (0: no lesion).
        qc: its QC montage (None: not written).
    """

    volume_id: str
    fold: str
    label: str
    dice: float | None
    truth_ml: float
    qc: Path | None


@dataclass(frozen=True)
class ClassResult:
    """One foreground class of a run.

    Args:
        summary: ``summary[class]`` of ``metrics.json``: each metric's mean over the folds (None: undefined).
        false_positives: held-out volumes without the class where it was predicted, summed over the folds.
        by_size: size bin to (lesions detected, lesions), summed over the folds.
    """

    summary: dict[str, float | None]
    false_positives: int
    by_size: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class SegmentRun:
    """One ``segment fit`` run as the report needs it.

    Args:
        name: the run's folder name.
        model: the network's name.
        channels: the modalities it saw, comma-separated.
        tolerance: the NSD tolerance(s), ``2 mm``.
        n_folds: the folds fitted.
        held_out: held-out volumes, summed over the folds.
        classes: foreground class to its results.
        pxap: gate level (``level2``, ...) and ``uniform`` to its PxAP, mean over the folds.
        cases: every held-out volume and class of every fold.
    """

    name: str
    model: str
    channels: str
    tolerance: str
    n_folds: int
    held_out: int
    classes: dict[str, ClassResult]
    pxap: dict[str, float | None]
    cases: list[Case]


def _number(value: Any) -> float | None:  # noqa: ANN401 - a JSON or CSV value
    return None if value is None or value == "" else float(value)


def _significant(value: float | None) -> str:
    """A PxAP to 3 significant digits: near the lesion prevalence it is often below 0.001."""
    return fmt(value) if value is None else f"{value:.3g}"


def _class_result(folds: list[dict[str, Any]], label: str, summary: dict[str, Any]) -> ClassResult:
    by_size: dict[str, tuple[int, int]] = {}
    for fold in folds:
        for name, counts in fold["classes"][label]["recall_by_size"].items():
            detected, lesions = by_size.get(name, (0, 0))
            by_size[name] = (detected + int(counts["detected"]), lesions + int(counts["lesions"]))
    false_positives = sum(int(fold["classes"][label]["false_positive_cases"]) for fold in folds)
    return ClassResult({k: _number(v) for k, v in summary.items()}, false_positives, by_size)


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PathattnError(f"{path} cannot be read ({err}); {RERUN}") from None


def _fold_cases(test: Path, fold: str) -> list[Case]:
    """The cases of one fold's ``test/`` folder, each with its QC montage."""
    predictions = _read_csv(test / "predictions.csv")
    if predictions and "volume_id" not in predictions[0]:
        raise PathattnError(f"{test / 'predictions.csv'} has no volume_id column; {RERUN}")
    qc = {row["volume_id"]: row.get("qc") for row in predictions}
    try:
        return [Case(row["volume_id"], fold, row["class"], _number(row["dice"]), float(row["truth_ml"]),
                     test / qc[row["volume_id"]] if qc.get(row["volume_id"]) else None)
                for row in _read_csv(test / "cases.csv")]  # fmt: skip
    except (KeyError, ValueError) as err:
        raise PathattnError(f"{test / 'cases.csv'} is not that of 'pathattn segment fit' ({err!r}); {RERUN}") from None


def read_run(folder: Path) -> SegmentRun:
    """A run folder's metrics and its held-out cases.

    Raises:
        PathattnError: a file is unreadable or not that of ``segment fit`` (naming the file).
    """
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        folds, summary = metrics["folds"], metrics["summary"]
        labels = [k for k in summary if k != "attention_pxap"]
        run = SegmentRun(
            name=folder.name,
            model=str(metrics["model"]),
            channels=", ".join(map(str, metrics.get("channels") or [])),
            tolerance=", ".join(sorted({f"{float(f['nsd_tolerance_mm']):g} mm" for f in folds})),
            n_folds=len(folds),
            held_out=sum(int(f["cases"]) for f in folds),
            classes={label: _class_result(folds, label, summary[label]) for label in labels},
            pxap={k: _number(v) for k, v in summary.get("attention_pxap", {}).items()},
            cases=[],
        )
        tests = [(str(f["fold"]), folder / f"fold_{f['fold']}" / "test") for f in folds]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise PathattnError(f"{path} is not the metrics.json of 'pathattn segment fit' ({err!r}); {RERUN}") from None
    return replace(run, cases=[case for fold, test in tests for case in _fold_cases(test, fold)])


def segment_runs(inputs: ReportInputs) -> list[SegmentRun]:
    """Every run under ``segment/`` (sorted by name); none when the folder is absent."""
    folder = inputs.layout.path("segment")
    if folder is None:
        return []
    return [read_run(p.parent) for p in sorted(folder.glob("*/metrics.json"))]


def _row_names(runs: list[SegmentRun]) -> list[tuple[SegmentRun, str, str]]:
    """(run, class, row label) per row: a row per run, or per run and class where a run has several classes."""
    several = any(len(run.classes) > 1 for run in runs)
    return [(run, label, f"{run.name}, class {label}" if several else run.name)
            for run in runs for label in run.classes]  # fmt: skip


def _metric_table(runs: list[SegmentRun]) -> tuple[list[str], list[list[Any]]]:
    levels = list(dict.fromkeys(k for run in runs for k in run.pxap if k != "uniform"))
    headers = ["run", "model", "channels", "folds", "held-out volumes", *SUMMARY_COLUMNS, "NSD (tolerance)",
               *DETECTION_COLUMNS, "false-positive volumes", *(f"PxAP {k}" for k in [*levels, "uniform"])]  # fmt: skip
    rows = []
    for run, label, name in _row_names(runs):
        result = run.classes[label]
        summary = [fmt(result.summary.get(k), 1 if k == "hd95_mean" else 3) for k in SUMMARY_COLUMNS.values()]
        nsd = f"{fmt(result.summary.get('nsd_mean'))} ({run.tolerance})"
        detection = [fmt(result.summary.get(k)) for k in DETECTION_COLUMNS.values()]
        pxap = [_significant(run.pxap.get(k)) for k in [*levels, "uniform"]]
        rows.append([name, run.model, run.channels, run.n_folds, run.held_out, *summary, nsd, *detection,
                     result.false_positives, *pxap])  # fmt: skip
    return headers, rows


def _size_table(runs: list[SegmentRun]) -> tuple[list[str], list[list[str]]]:
    bins = list(dict.fromkeys(b for run in runs for result in run.classes.values() for b in result.by_size))
    rows = []
    for run, label, name in _row_names(runs):
        counts = [run.classes[label].by_size.get(b, (0, 0)) for b in bins]
        rows.append([name, *(f"{d}/{n} ({fmt(d / n if n else None)})" for d, n in counts)])
    return ["run", *bins], rows


def _overlays(run: SegmentRun) -> list[dict[str, str]]:
    """The QC montages of the run's held-out volumes with the largest lesion volume (all classes together)."""
    volumes: dict[tuple[str, str], list[Case]] = {}
    for case in run.cases:
        volumes.setdefault((case.fold, case.volume_id), []).append(case)
    shown = sorted((v for v in volumes.values() if v[0].qc and sum(c.truth_ml for c in v) > 0),
                   key=lambda v: -sum(c.truth_ml for c in v))[:OVERLAYS]  # fmt: skip
    figures = []
    for cases in shown:
        dice = ", ".join(fmt(c.dice) if len(cases) == 1 else f"class {c.label} {fmt(c.dice)}" for c in cases)
        lesion_ml = fmt(sum(c.truth_ml for c in cases), 1)
        caption = (f"{cases[0].volume_id} (fold {cases[0].fold}, {lesion_ml} mL of lesion): Dice {dice}. "
                   "Red: prediction, green: truth; right: the finest attention gate's map.")  # fmt: skip
        figures.append({"caption": caption, "uri": image_uri(read_rgb(cases[0].qc, RERUN))})
    return figures


SEGMENT_HTML = """\
<p>Segmentation networks (pathattn segment fit), each scored on the held-out volumes of its folds (patient-level
split): the mean over the folds, counts summed over them.</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "segment") }}
<h3>Lesion recall by lesion volume</h3>
{{ table(data.size_headers, data.size_rows, "segment-sizes") }}
<p class="note">Dice (volumes with lesions): mean over the held-out volumes with a lesion; Dice: over every held-out
volume (1 where truth and prediction are both empty); lesion-wise Dice: mean over every true lesion of its Dice with
the predicted components touching it (0 when missed) and over every false-positive component (0 each). HD95: 95th
percentile of the surface distances, undefined where only one of truth and prediction is empty (left out of the
mean); NSD: normalised surface Dice at the tolerance given. A lesion (a connected component) is detected when the
prediction touches it; precision counts the predicted components touching a lesion; false-positive volumes: volumes
without lesion where one was predicted. PxAP: voxel precision-recall area of each attention gate's map against the
lesions; the uniform map's PxAP is the lesion prevalence, so a gate at or below it localizes nothing. Recall by
volume: detected/lesions (recall).</p>
<img class="figure" src="{{ data.uri }}" alt="Dice of each held-out volume with a lesion, per run">
{% for g in data.overlays %}<h3>{{ g.run }}: held-out volumes with the largest lesions</h3>
<div class="pair">{% for f in g.figures %}<figure><img src="{{ f.uri }}" alt="QC montage: {{ f.caption }}">
<figcaption>{{ f.caption }}</figcaption></figure>{% endfor %}</div>
{% endfor %}"""


def segment_section(inputs: ReportInputs) -> Section | None:
    """The runs' metrics table, recall by lesion volume, the per-volume Dice and overlays of the largest lesions."""
    runs = segment_runs(inputs)
    if not runs:
        return None
    headers, rows = _metric_table(runs)
    size_headers, size_rows = _size_table(runs)
    dice = {name: [c.dice for c in run.cases if c.label == label and c.truth_ml > 0 and c.dice is not None]
            for run, label, name in _row_names(runs)}  # fmt: skip
    overlays = [{"run": run.name, "figures": figures} for run in runs if (figures := _overlays(run))]
    data = {"headers": headers, "rows": rows, "size_headers": size_headers, "size_rows": size_rows,
            "uri": case_dice_figure(dice), "overlays": overlays}  # fmt: skip
    return Section("segment", "Segmentation", SEGMENT_HTML, data)
