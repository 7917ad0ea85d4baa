"""The report's image-classifier sections: the runs of ``pathattn classify fit`` and the localization of their maps.

Inputs, as the workflow lays them out (:class:`pathattn.workflow.layout.StudyLayout`):

* ``classify/{run}/metrics.json`` and ``predictions.csv`` of each run: a table of the pooled out-of-fold slice
  metrics with their patient-bootstrap intervals, the ROC and precision-recall curves of every run on one pair
  of axes, and the **slice-vs-patient table**: runs whose settings differ only in ``split`` side by side;
* ``cams/{run}/fold_{k}/`` (``pathattn cams``) and ``evaluate/cams/{run}/fold_{k}/metrics.json``
  (``pathattn evaluate wsol``): a gallery of the same held-out lesion slices under every method, the lesion
  outlined, and the WSOL table per run and method (test split, mean over the folds explained) beside the
  uniform baseline.

A results folder without ``classify/`` has neither section.
"""

from __future__ import annotations

import ast
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pathattn.errors import PathattnError
from pathattn.report.common import Section, fmt
from pathattn.report.figures import map_gallery_figure, runs_roc_pr_figure
from pathattn.report.inputs import ReportInputs
from pathattn.scoremaps.images import read_rgb

RERUN_FIT = "re-run 'pathattn classify fit'"
GALLERY_IMAGES = 4
NOT_SETTINGS = ("out", "split", "overwrite", "splits", "folds")  # what may differ between a slice/patient pair
WSOL_COLUMNS = {"PxAP": "pxap", "Dice": "dice", "MaxBoxAccV2": "max_box_acc_v2", "GT-known Loc": "gt_known_loc"}


@dataclass(frozen=True)
class ClassifierRun:
    """One ``classify fit`` run as the report needs it.

    Args:
        name: the run's folder name.
        metrics: its ``metrics.json``.
        labels: (N,) 1 for the positive (last) class, out of fold.
        scores: (N,) probability of the positive class.
    """

    name: str
    metrics: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray

    def interval(self, key: str) -> str:
        """``0.937 [0.885, 0.981]``: the pooled metric with its 95% interval."""
        pooled = self.metrics.get("pooled", {})
        low, high = pooled.get(f"{key}_ci_low"), pooled.get(f"{key}_ci_high")
        bounds = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
        return f"{fmt(pooled.get(key))}{bounds}"

    @property
    def model(self) -> str:
        """The model with its backbone when one is named: ``timm_classifier (resnet18)``."""
        args = _literal(self.metrics.get("config", {}).get("model_args", "{}"))
        backbone = args.get("backbone") if isinstance(args, dict) else None
        name = str(self.metrics.get("model", ""))
        return f"{name} ({backbone})" if backbone else name

    @property
    def channels(self) -> str:
        """The modalities the network saw (``PET``, ``PET, CT``; empty: the tiling's)."""
        channels = _literal(self.metrics.get("config", {}).get("channels", "None"))
        return ", ".join(map(str, channels)) if isinstance(channels, list | tuple) else ""

    @property
    def crossing_patients(self) -> int:
        """Test patients of any fold that the fold also trained on (0 under the patient-level split)."""
        return sum(int(fold.get("test_patients_also_trained_on", 0)) for fold in self.metrics.get("folds", []))

    def settings(self) -> dict[str, str]:
        """Everything the run was asked for except its split (and where it was written)."""
        return {k: v for k, v in self.metrics.get("config", {}).items() if k not in NOT_SETTINGS}


def _literal(text: str) -> Any:  # noqa: ANN401 - a Python literal recorded as text in metrics.json's config
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def _load_json(path: Path, fix: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PathattnError(f"{path} is not readable JSON ({err}); {fix}") from None
    if not isinstance(value, dict):
        raise PathattnError(f"{path} is not a JSON object; {fix}")
    return value


def read_run(folder: Path) -> ClassifierRun:
    """A run folder's metrics and out-of-fold positive-class scores.

    Raises:
        PathattnError: the files are unreadable or not those of ``classify fit`` (naming the file).
    """
    metrics = _load_json(folder / "metrics.json", RERUN_FIT)
    classes = metrics.get("classes") or []
    if len(classes) != 2 or "pooled" not in metrics:
        raise PathattnError(f"{folder / 'metrics.json'} is not a binary 'pathattn classify fit' run; {RERUN_FIT}")
    try:
        with (folder / "predictions.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        labels = np.array([row["label"] == classes[1] for row in rows], np.int64)
        scores = np.array([float(row[f"prob_{classes[1]}"]) for row in rows], np.float64)
    except (OSError, KeyError, ValueError) as err:
        raise PathattnError(f"{folder / 'predictions.csv'} cannot be read ({err}); {RERUN_FIT}") from None
    return ClassifierRun(folder.name, metrics, labels, scores)


def classifier_runs(inputs: ReportInputs) -> list[ClassifierRun]:
    """Every run under ``classify/`` (sorted by name); none when the folder is absent."""
    folder = inputs.layout.path("classify")
    if folder is None:
        return []
    return [read_run(p) for p in sorted(folder.iterdir()) if (p / "metrics.json").is_file()]


def split_pairs(runs: list[ClassifierRun]) -> list[list[str]]:
    """Rows of the slice-vs-patient table: runs with the same settings under a patient and a slice split."""
    rows = []
    for patient in (r for r in runs if r.metrics.get("split") == "patient"):
        for sliced in (r for r in runs if r.metrics.get("split") == "slice" and r.settings() == patient.settings()):
            gain = float(sliced.metrics["pooled"]["auroc"]) - float(patient.metrics["pooled"]["auroc"])
            rows.append([patient.model, patient.channels, patient.interval("auroc"),
                         sliced.interval("auroc"), f"{gain:+.3f}", patient.name, sliced.name])  # fmt: skip
    return rows


CLASSIFY_HTML = """\
<p>Image classifiers on the studies' slices (pathattn classify fit): a slice is positive when it crosses a
lesion. Pooled out-of-fold metrics over every fold trained, with 95% intervals from a bootstrap over patients;
sensitivity and specificity at each fold's operating point (Youden's J on its validation patients).</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "classifiers") }}
<img class="figure" src="{{ data.uri }}" alt="ROC and precision-recall curves of the classifiers">
{% if data.pairs %}<h3>Slice-level against patient-level split</h3>
<p>The same settings cross-validated with a patient-level split (every slice of a patient in one part) and a
slice-level split (a patient's neighbouring slices in training and test): each on its own test slices.</p>
{{ table(["model", "channels", "AUROC, patient split", "AUROC, slice split", "slice - patient", "patient run",
          "slice run"], data.pairs, "pairs") }}{% endif %}
"""


def classify_section(inputs: ReportInputs) -> Section | None:
    """The runs' metrics table, their curves and the slice-vs-patient table."""
    runs = classifier_runs(inputs)
    if not runs:
        return None
    rows = [[r.name, r.model, r.channels, r.metrics.get("split", ""), len(r.labels), r.interval("auroc"),
             r.interval("auprc"), r.interval("sensitivity"), r.interval("specificity"), r.crossing_patients]
            for r in runs]  # fmt: skip
    headers = ["run", "model", "channels", "split", "test slices", "AUROC", "AUPRC", "sensitivity", "specificity",
               "test patients also trained on"]  # fmt: skip
    uri = runs_roc_pr_figure({r.name: (r.labels, r.scores) for r in runs})
    data = {"headers": headers, "rows": rows, "uri": uri, "pairs": split_pairs(runs)}
    return Section("classifiers", "Image classifiers", CLASSIFY_HTML, data)


def _gallery(cams: Path) -> str:
    """The gallery of one ``pathattn cams`` folder: its test images of largest lesion, under every method."""
    summary = _load_json(cams / "cams.json", "re-run 'pathattn cams'")
    with (cams / "split.csv").open(newline="", encoding="utf-8") as f:
        test = {row["image_id"]: row.get("patient_id", row["image_id"]) for row in csv.DictReader(f)
                if row["split"] == "test"}  # fmt: skip
    masks = {i: cv2.imread(str(cams / "masks" / f"{i}.png"), cv2.IMREAD_GRAYSCALE) for i in test}
    masks = {i: m > 0 for i, m in masks.items() if m is not None}
    largest: dict[str, str] = {}  # per patient, its image of largest lesion: the gallery shows several patients
    for image_id in sorted(masks, key=lambda i: -int(masks[i].sum())):
        largest.setdefault(test[image_id], image_id)
    chosen = list(largest.values())[:GALLERY_IMAGES]
    images = [read_rgb(cams / "images" / f"{i}.png", "re-run 'pathattn cams'") for i in chosen]
    maps = {m: [np.load(cams / "maps" / m / f"{i}.npy") for i in chosen] for m in summary["methods"]}
    return map_gallery_figure(images, [masks[i] for i in chosen], maps) if chosen else ""


def _wsol_rows(evaluations: list[Path], run: str) -> list[list[str]]:
    """Per method of one run: the test-split metrics averaged over its folds' evaluations."""
    values: dict[str, dict[str, list[float]]] = {}
    for path in evaluations:
        methods = _load_json(path, "re-run 'pathattn evaluate wsol'").get("methods", {})
        for method, splits in methods.items():
            for key in WSOL_COLUMNS.values():
                value = splits.get("test", {}).get(key)
                values.setdefault(method, {}).setdefault(key, []).append(np.nan if value is None else float(value))
    return [[run, method, len(evaluations), *(fmt(np.nanmean(v[k]) if not np.isnan(v[k]).all() else None)
                                              for k in WSOL_COLUMNS.values())]
            for method, v in values.items()]  # fmt: skip


CAMS_HTML = """\
<p>Maps of the classifiers on the lesion slices of held-out patients (pathattn cams: Grad-CAM, Grad-CAM++,
sign-corrected Eigen-CAM, Score-CAM, and MEDUSA's own attention), scored against the lesion masks (pathattn
evaluate wsol): thresholds calibrated on a draw of those patients, the others scored once; the test split,
averaged over the folds explained. The uniform map scores the lesion prevalence: a method below it localizes
nothing.</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "cams") }}
{% for g in data.galleries %}<h3>{{ g.title }}</h3>
<img class="figure" src="{{ g.uri }}" alt="maps of {{ g.title }} with the lesion outlined">
{% endfor %}<p class="note">Gallery: per held-out test patient its slice with the largest lesion (the patients
with the largest lesions first), the lesion outlined in white, each map over the slice as the network saw it.</p>
"""


def cams_section(inputs: ReportInputs) -> Section | None:
    """The WSOL table per run and method, and a gallery of the first explained fold of each run."""
    study = inputs.layout.study
    if inputs.layout.path("cams") is None:
        return None
    rows, galleries = [], []
    for run_folder in sorted(p for p in study.stage("cams").iterdir() if p.is_dir()):
        folds = sorted(p for p in run_folder.glob("fold_*") if (p / "cams.json").is_file())
        evaluations = [study.cams_wsol(run_folder.name, f.name[5:]) / "metrics.json" for f in folds]
        rows += _wsol_rows([e for e in evaluations if e.is_file()], run_folder.name)
        if folds and (uri := _gallery(folds[0])):
            galleries.append({"title": f"{run_folder.name}, {folds[0].name.replace('_', ' ')}", "uri": uri})
    if not rows and not galleries:
        return None
    data = {"headers": ["run", "method", "folds", *WSOL_COLUMNS], "rows": rows, "galleries": galleries}
    return Section("cams", "Localization of the classifiers' maps", CAMS_HTML, data)
