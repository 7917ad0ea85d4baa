"""The sections of the report: one builder per section, each returning None when its inputs are missing.

A builder takes the :class:`~pathattn.report.inputs.ReportInputs` and returns a :class:`Section`: a title,
the Jinja2 source of its body and the data that body shows (the body may import the ``table`` macro of
:mod:`pathattn.report.html`). :data:`SECTIONS` lists the builders in page order; a later stage adds its
section by adding a builder there.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable

import numpy as np

from pathattn.errors import PathattnError
from pathattn.report.classify_section import cams_section, classify_section
from pathattn.report.common import Section, cell, fmt, prediction_text, slide_score
from pathattn.report.figures import image_uri, km_figure, roc_pr_figure
from pathattn.report.inputs import COMMANDS, ReportInputs, numbers, read_rows
from pathattn.report.segment_section import segment_section
from pathattn.report.slides import heatmap_ids, slide_images
from pathattn.report.stats import logrank_test
from pathattn.report.volume_section import volume_section
from pathattn.scoremaps.images import read_rgb

CI_SUFFIXES = ("_ci_low", "_ci_high")


def _oof_labels(inputs: ReportInputs) -> np.ndarray:
    """Class index of each out-of-fold row: (N,) int64, in the order of ``inputs.oof``."""
    index = {name: i for i, name in enumerate(inputs.classes)}
    unknown = sorted({row["label"] for row in inputs.oof.values()} - set(index))
    if unknown:
        raise PathattnError(
            f"{inputs.layout.path('train', 'predictions.csv')} has labels {unknown} that are not among the classes "
            f"{inputs.classes} of metrics.json; the files come from different runs, re-run 'pathattn train'"
        )
    return np.array([index[row["label"]] for row in inputs.oof.values()], np.int64)


def risk_groups(inputs: ReportInputs) -> dict[str, str]:
    """``high`` or ``low`` per slide of a survival run: out-of-fold risk above the median or not."""
    risk = numbers(inputs.oof.values(), "risk", inputs.layout.path("train", "predictions.csv"))
    high = risk > np.median(risk)
    return {slide_id: "high" if h else "low" for slide_id, h in zip(inputs.oof, high, strict=True)}


def _cohort_columns(inputs: ReportInputs) -> list[tuple[str, Callable[[str], str]]]:
    tiles, features = inputs.manifests.get("tiles", {}), inputs.manifests.get("features", {})
    groups = risk_groups(inputs) if inputs.task == "survival" and inputs.oof else {}
    columns: list[tuple[str, Callable[[str], str]]] = [
        ("patient", lambda s: cell(inputs, s, "patient_id")),
        ("label", lambda s: cell(inputs, s, "label")),
        ("time", lambda s: cell(inputs, s, "time")),
        ("event", lambda s: cell(inputs, s, "event")),
        ("patches", lambda s: tiles.get(s, {}).get("n_patches") or features.get(s, {}).get("n_patches", "")),
        ("mpp", lambda s: fmt(tiles[s]["mpp"]) if tiles.get(s, {}).get("mpp") else ""),
        ("out-of-fold prediction", lambda s: prediction_text(inputs.oof.get(s, {}))),
        ("risk group", lambda s: groups.get(s, "")),
        ("fold", lambda s: inputs.oof.get(s, {}).get("fold", "")),
    ]
    if inputs.task is not None:  # a run's task decides between label and time/event
        drop = ("time", "event") if inputs.task == "classification" else ("label",)
        columns = [c for c in columns if c[0] not in drop]
    return columns


COHORT_HTML = """\
<p>{{ data.rows | length }} slides{% if data.n_patients %} of {{ data.n_patients }} patients{% endif %}.</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "cohort") }}
"""


def cohort_section(inputs: ReportInputs) -> Section | None:
    """Every slide: patient, label (or time and event), patches and mpp of the tiling, out-of-fold prediction."""
    slide_ids = inputs.slide_ids()
    if not slide_ids:
        return None
    columns = _cohort_columns(inputs)
    cells = [[get(s) for _, get in columns] for s in slide_ids]
    kept = [i for i in range(len(columns)) if any(row[i] for row in cells)]
    rows = [[slide_id, *(row[i] for i in kept)] for slide_id, row in zip(slide_ids, cells, strict=True)]
    patients = {cell(inputs, s, "patient_id") for s in slide_ids} - {""}
    data = {"headers": ["slide", *(columns[i][0] for i in kept)], "rows": rows, "n_patients": len(patients)}
    return Section("cohort", "Cohort", COHORT_HTML, data)


METRICS_HTML = """\
<p>{% for key, value in data.run.items() if value %}<b>{{ key }}</b>: {{ value }}{% if not loop.last %}
 &middot; {% endif %}{% endfor %}</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "metrics") }}
<p class="note">Mean ± sample standard deviation across folds; per fold the value on its test set and the
percentile bootstrap 95% CI in brackets.</p>
{% if data.config %}<details><summary>Training configuration</summary>
{{ table(["option", "value"], data.config, "config") }}</details>{% endif %}
"""


def metrics_section(inputs: ReportInputs) -> Section | None:
    """Each metric's mean ± std across folds, and its value with the bootstrap 95% CI in every fold."""
    if inputs.metrics is None:
        return None
    summary, folds = inputs.metrics.get("summary", {}), inputs.metrics.get("folds", [])
    names = [n for n in summary if not n.endswith(CI_SUFFIXES)]
    rows = []
    for name in names:
        mean, std = summary[name].get("mean"), summary[name].get("std")
        per_fold = [
            f"{fmt(f.get(name))} [{fmt(f.get(name + '_ci_low'))}, {fmt(f.get(name + '_ci_high'))}]" for f in folds
        ]
        rows.append([name, f"{fmt(mean)} ± {fmt(std)}", *per_fold])
    config = inputs.metrics.get("config", {})
    data = {
        "headers": ["metric", "mean ± std", *(f"fold {k}" for k in range(len(folds)))],
        "rows": rows,
        "run": {
            "task": inputs.task,
            "model": inputs.metrics.get("model", ""),
            "classes": ", ".join(inputs.classes),
            "folds": len(folds),
            "slides (out of fold)": len(inputs.oof),
        },
        "config": sorted(config.items()),
    }
    return Section("metrics", "Cross-validated metrics", METRICS_HTML, data)


CURVES_HTML = """\
<img class="figure" src="{{ data.uri }}" alt="ROC and precision-recall curves">
{% from "macros" import table %}{{ table(["class (one vs rest)", "pooled AUROC", "pooled AP"], data.rows, "curves") }}
<p class="note">Bold: all out-of-fold predictions pooled; faint: each fold's test set.</p>
"""


def curves_section(inputs: ReportInputs) -> Section | None:
    """ROC and precision-recall curves of the out-of-fold predictions of a classification run."""
    if inputs.task != "classification" or not inputs.oof:
        return None
    source = inputs.layout.path("train", "predictions.csv")
    probs = np.stack([numbers(inputs.oof.values(), f"prob_{c}", source) for c in inputs.classes], axis=1)
    folds = numbers(inputs.oof.values(), "fold", source)
    uri, pooled = roc_pr_figure(_oof_labels(inputs), probs, folds, inputs.classes)
    rows = [[name, fmt(v["auroc"]), fmt(v["auprc"])] for name, v in pooled.items()]
    return Section("curves", "ROC and precision-recall curves", CURVES_HTML, {"uri": uri, "rows": rows})


SURVIVAL_HTML = """\
<img class="figure" src="{{ data.uri }}" alt="Kaplan-Meier curves of the low- and high-risk groups">
<p>High risk: out-of-fold risk above the median ({{ data.n_high }} slides); low risk: the rest
({{ data.n_low }}). Log-rank test: χ² = {{ data.statistic }}, p = <span class="logrank-p">{{ data.p }}</span>.</p>
"""


def survival_section(inputs: ReportInputs) -> Section | None:
    """Kaplan-Meier curves of the groups above and below the median out-of-fold risk, with the log-rank test."""
    if inputs.task != "survival" or not inputs.oof:
        return None
    source = inputs.layout.path("train", "predictions.csv")
    time, event = numbers(inputs.oof.values(), "time", source), numbers(inputs.oof.values(), "event", source)
    groups = risk_groups(inputs)
    high = np.array([groups[s] == "high" for s in inputs.oof])
    statistic, p_value = logrank_test(time, event.astype(np.int64), high)
    data = {
        "uri": km_figure(time, event.astype(np.int64), high, p_value),
        "p": f"{p_value:.3g}" if math.isfinite(p_value) else "n/a",
        "statistic": fmt(statistic),
        "n_high": int(high.sum()),
        "n_low": int((~high).sum()),
    }
    return Section("survival", "Kaplan-Meier curves by predicted risk group", SURVIVAL_HTML, data)


HEATMAPS_HTML = """\
<p>{{ data.figures | length }} of {{ data.total }} slides, by predicted probability (or risk), highest first.
{% if data.omitted %}<b>{{ data.omitted }} slides omitted</b> (raise --max-slides to show them).{% endif %}
Each heatmap's banner shows the prediction of the checkpoint 'pathattn predict' ran (the out-of-fold one with
'pathattn predict --run'); the heading shows the slide's out-of-fold prediction of cross-validation.</p>
{% for f in data.figures %}<div class="slide" id="slide-{{ f.images.slide_id }}">
<h3>{{ f.images.slide_id }}{% if f.truth %} &middot; label {{ f.truth }}{% endif %}{% if f.out_of_fold %}
 &middot; out of fold: {{ f.out_of_fold }}{% endif %}</h3>
<div class="pair"><figure><img class="heatmap" src="{{ f.images.heatmap }}"
 alt="attention heatmap of {{ f.images.slide_id }}"><figcaption>attention</figcaption></figure>
{% if f.images.reference %}<figure><img class="reference" src="{{ f.images.reference }}"
 alt="{{ f.images.reference_kind }} of {{ f.images.slide_id }}"><figcaption>{{ f.images.reference_kind }}
{%- if f.images.note %}: {{ f.images.note }}{% endif %}</figcaption></figure>
{% elif f.images.note %}<p class="note">{{ f.images.note }}</p>{% endif %}</div></div>
{% endfor %}"""


def heatmaps_section(inputs: ReportInputs) -> Section | None:
    """Attention heatmaps beside the ground truth (else the tiling QC image), highest score first."""
    folder = inputs.layout.path("heatmaps")
    slide_ids = heatmap_ids(folder)
    if folder is None or not slide_ids:
        return None
    scores = {s: slide_score(inputs, s) for s in slide_ids}
    ordered = sorted(slide_ids, key=lambda s: (scores[s] is None, -(scores[s] or 0.0), s))
    shown = ordered[: inputs.max_slides]
    figures = []
    for slide_id in shown:
        images = slide_images(
            slide_id, folder, inputs.annotations, inputs.layout.path("tiles"), inputs.slides.get(slide_id)
        )
        truth = cell(inputs, slide_id, "label")
        out_of_fold = prediction_text(inputs.oof.get(slide_id, {}))
        figures.append({"images": images, "truth": truth, "out_of_fold": out_of_fold})
    data = {"figures": figures, "omitted": len(ordered) - len(shown), "total": len(ordered)}
    return Section("heatmaps", "Attention heatmaps", HEATMAPS_HTML, data)


STAGES_HTML = """\
{% from "macros" import table %}{{ table(["stage", "slides", "status", "patches"], data.rows, "stages") }}
{% if data.failures %}<h3>Failed slides</h3>
{{ table(["stage", "slide", "error"], data.failures, "failures") }}{% endif %}
"""


def stages_section(inputs: ReportInputs) -> Section | None:
    """Per stage with a manifest or predictions: slides, status counts, patches, and the failed slides."""
    rows, failures = [], []
    for stage, manifest in inputs.manifests.items():
        counts = Counter(row.get("status", "") for row in manifest.values())
        patches = sum(int(float(r.get("n_patches") or 0)) for r in manifest.values())
        status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        rows.append([f"{stage} (pathattn {COMMANDS[stage]})", len(manifest), status, patches])
        failures += [[stage, s, r.get("error", "")] for s, r in manifest.items() if r.get("status") == "failed"]
    if inputs.predicted:
        rows.append(["predict (pathattn predict)", len(inputs.predicted), "predicted", ""])
    if not rows:
        return None
    return Section("stages", "Pipeline stages", STAGES_HTML, {"rows": rows, "failures": failures})


EXPLAIN_HTML = """\
<p>{{ data.n_slides }} slides explained by counterfactuals (pathattn explain): the effect of removing a slide's
top-attention patches, the patches HIPPO's greedy search removes first, and random patches (sets of the same
size; effect = objective before minus after).</p>
{% from "macros" import table %}{% if data.tests %}{{ table(data.test_headers, data.tests, "explain-tests") }}
<p class="note">Paired Wilcoxon signed-rank tests across slides; r: matched-pairs rank-biserial correlation (1: the
first set has the larger effect on every slide). Spearman correlation of attention with single-patch effect:
{{ data.correlation }}.</p>{% endif %}
{% if data.flagged %}<h3>Flagged slides</h3>{{ table(["slide", "flag"], data.flagged, "explain-flags") }}{% endif %}
<details><summary>Per slide</summary>{{ table(data.headers, data.rows, "explain-slides") }}</details>
<div class="pair">{% for f in data.figures %}<figure><img src="{{ f.uri }}" alt="removal curves of {{ f.slide_id }}">
<figcaption>{{ f.slide_id }}</figcaption></figure>{% endfor %}</div>
"""
EXPLAIN_COLUMNS = (
    "slide_id",
    "label",
    "decision",
    "k",
    "effect_top_attention",
    "effect_top_effect",
    "effect_random",
    "spearman_attention_effect",
    "region_share",
    "overlooked_small_tumor",
    "driven_by_non_tumor",
)
EXPLAIN_FLAGS = ("overlooked_small_tumor", "driven_by_non_tumor")
EXPLAIN_FIGURES = 6


def explain_section(inputs: ReportInputs) -> Section | None:
    """Counterfactual evidence of ``explain/``: paired tests across slides, flags, per-slide effects, curves."""
    study = inputs.layout.study
    folder = study.stage("explain")
    summary = read_rows(study.explain_summary, "re-run 'pathattn explain'")
    if not summary:
        return None
    cohort_file = folder / "cohort.json"
    cohort = json.loads(cohort_file.read_text(encoding="utf-8")) if cohort_file.is_file() else {}
    tests = [[f"{t['first']} vs {t['second']}", t["n"], fmt(t["median_first"]), fmt(t["median_second"]),
              fmt(t["median_difference"]), fmt(t["p_value"], 4), fmt(t["rank_biserial"])]
             for t in cohort.get("tests", [])]  # fmt: skip
    rho = cohort.get("spearman_attention_effect", {})
    flagged = [[s, f] for s, row in summary.items() for f in EXPLAIN_FLAGS if row.get(f) == "True"]
    order = sorted(summary, key=lambda s: (not any(s == f[0] for f in flagged), s))
    curves = [(s, folder / "figures" / f"{s}_curves.png") for s in order]
    data = {
        "n_slides": len(summary),
        "test_headers": ["comparison", "slides", "median first", "median second", "median difference", "p", "r"],
        "tests": tests,
        "correlation": f"median {fmt(rho.get('median'))}, positive on {fmt(rho.get('share_positive'), 2)} of slides",
        "flagged": flagged,
        "headers": list(EXPLAIN_COLUMNS),
        "rows": [[row.get(c, "") for c in EXPLAIN_COLUMNS] for row in summary.values()],
        "figures": [
            {"slide_id": s, "uri": image_uri(read_rgb(p, "re-run 'pathattn explain'"))}
            for s, p in curves
            if p.is_file()
        ][:EXPLAIN_FIGURES],  # fmt: skip
    }
    return Section("explain", "Counterfactual explanations", EXPLAIN_HTML, data)


WSOL_HTML = """\
<p>Weakly supervised localization (pathattn evaluate wsol, the protocol of Choe et al.): on
{{ data.n_calibration }} held-out annotated slides the settings <b>{{ data.chosen }}</b> won by {{ data.selected_by }},
with their thresholds; the {{ data.n_test }} test slides were scored once with them.</p>
{% from "macros" import table %}{{ table(data.headers, data.rows, "wsol") }}
<p class="note">PxAP: pooled pixel precision-recall area inside the tissue (the uniform map scores the prevalence);
Dice, IoU and GT-known Loc at the calibrated thresholds; MaxBoxAcc(V2) maximise the threshold on each split.</p>
{% if data.uri %}<img class="figure" src="{{ data.uri }}" alt="pixel precision-recall curves">{% endif %}
"""
WSOL_COLUMNS = {"PxAP": "pxap", "Dice": "dice", "IoU": "iou", "threshold": "threshold", "patch AUROC": "patch_auroc",
                "patch AUPRC": "patch_auprc", "MaxBoxAcc": "max_box_acc", "MaxBoxAccV2": "max_box_acc_v2",
                "GT-known Loc": "gt_known_loc"}  # fmt: skip


def wsol_section(inputs: ReportInputs) -> Section | None:
    """Localization metrics of ``evaluate/metrics.json`` per method and split, and the precision-recall curves."""
    study = inputs.layout.study
    path = study.wsol_metrics
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        methods, calibration = metrics["methods"], metrics["calibration"]
    except (ValueError, KeyError, TypeError) as err:
        raise PathattnError(f"{path} is not the output of 'pathattn evaluate wsol' ({err}); run it again") from None
    if metrics.get("kind") == "volumes":
        return None  # shown by the volume section (pathattn.report.volume_section)
    rows = [[method, split, *(fmt(values.get(key)) for key in WSOL_COLUMNS.values())]
            for method, splits in methods.items() for split, values in splits.items()]  # fmt: skip
    curves = study.wsol_curves
    data = {
        "n_calibration": len(metrics.get("splits", {}).get("calibration", [])),
        "n_test": len(metrics.get("splits", {}).get("test", [])),
        "chosen": calibration.get("chosen", {}).get("name", ""),
        "selected_by": calibration.get("selected_by", ""),
        "headers": ["method", "split", *WSOL_COLUMNS],
        "rows": rows,
        "uri": image_uri(read_rgb(curves, "re-run 'pathattn evaluate wsol'")) if curves.is_file() else "",
    }
    return Section("wsol", "Weakly supervised localization", WSOL_HTML, data)


SECTIONS: list[Callable[[ReportInputs], Section | None]] = [
    cohort_section,
    metrics_section,
    curves_section,
    survival_section,
    heatmaps_section,
    volume_section,
    explain_section,
    wsol_section,
    classify_section,
    cams_section,
    segment_section,
    stages_section,
]


def build_sections(inputs: ReportInputs) -> list[Section]:
    """The sections whose inputs exist, in page order."""
    return [section for build in SECTIONS if (section := build(inputs)) is not None]
