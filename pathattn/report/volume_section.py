"""The report's volume section: per volume, attention along the slice axis beside the lesion, the slices of
highest attention with the lesion outlined (:mod:`pathattn.report.volumes`), and the localization metrics.

Its inputs are found as those of the slide heatmaps and the WSOL section: the volumes are the attention files
``predict/attention/{volume_id}.h5`` when their coordinates are voxels (the rule of
:mod:`pathattn.evaluate.volumes`: ``coord_space = voxel_ijk``); their label fractions come from the tiling,
``tiles/coords/{volume_id}.h5``; the metrics from ``evaluate/metrics.json`` when its ``kind`` is ``volumes``,
with ``per_slide.csv`` and ``pr_curves.png`` beside it. A run of slides has no volume section.
"""

from __future__ import annotations

import csv
import json
from typing import Any

from pathattn.errors import PathattnError
from pathattn.io.manifest import read_manifest
from pathattn.report.common import Section, cell, fmt, prediction_text, slide_score
from pathattn.report.figures import image_uri
from pathattn.report.inputs import ReportInputs
from pathattn.scoremaps.images import read_rgb

# The score and volume readers import torch (and MONAI to draw a volume): they are imported where a run has
# volumes, so that a report of slides starts as fast as before.

RERUN = "re-run 'pathattn evaluate wsol'"
COLUMNS = {"PxAP": "pxap", "Dice": "dice", "IoU": "iou", "threshold": "threshold", "row AUROC": "row_auroc",
           "row AUPRC": "row_auprc", "mean volume row AUROC": "mean_volume_row_auroc",
           "mean volume row AUPRC": "mean_volume_row_auprc"}  # fmt: skip

VOLUMES_HTML = """\
<p>{{ data.figures | length }} of {{ data.total }} volumes, by predicted probability (or risk), highest first.
{% if data.omitted %}<b>{{ data.omitted }} volumes omitted</b> (raise --max-slides to show them).{% endif %}
Strips: the attention weight of the slices or 3-D patches crossing each slice (softmax of the raw attention
relative to the largest weight; patches: the largest weight among them) above the slice's lesion fraction
(patches: the largest patch fraction). Images: the slices of highest attention (&#9660;), the lesion outlined
in red, in patch mode the patch of highest attention in yellow.</p>
{% from "macros" import table %}{% if data.metrics %}<h3>Localization (pathattn evaluate wsol)</h3>
<p>On {{ data.metrics.n_calibration }} held-out volumes the normalisation <b>{{ data.metrics.chosen }}</b> won by
{{ data.metrics.selected_by }}, with its threshold; the {{ data.metrics.n_test }} test volumes were scored once.</p>
{{ table(data.metrics.headers, data.metrics.rows, "volume-wsol") }}
<p class="note">PxAP: precision-recall area of the voxels, each scored by its slice or patch (the uniform map
scores the lesion prevalence); row AUROC and AUPRC: slices or patches crossing a lesion against the others,
pooled and averaged per volume; Dice and IoU at the calibrated threshold (docs/evaluate.md, "Volumes").</p>
{% if data.metrics.uri %}<img class="figure" src="{{ data.metrics.uri }}" alt="voxel precision-recall curves">
{% endif %}{% endif %}
{% for f in data.figures %}<div class="volume" id="volume-{{ f.volume_id }}">
<h3>{{ f.volume_id }} ({{ f.rows }}){% if f.truth %} &middot; label {{ f.truth }}{% endif %}
{%- if f.out_of_fold %} &middot; out of fold: {{ f.out_of_fold }}{% endif %}
{%- if f.localization %} &middot; {{ f.localization }}{% endif %}</h3>
<img class="figure" src="{{ f.pictures.strip }}" alt="attention along the slice axis of {{ f.volume_id }}">
<div class="pair">{% for p in f.pictures.planes %}<figure><img src="{{ p.uri }}" alt="{{ p.caption }} of
 {{ f.volume_id }}"><figcaption>{{ p.caption }}</figcaption></figure>{% endfor %}</div>
{% if f.pictures.note %}<p class="note">{{ f.pictures.note }}</p>{% endif %}</div>
{% endfor %}"""


def volume_ids(inputs: ReportInputs) -> list[str]:
    """The volumes of ``predict/attention/`` (empty when there is none, or when its coordinates are not voxels)."""
    predict = inputs.layout.path("predict")
    if predict is None or not (predict / "attention").is_dir():
        return []
    from pathattn.io.coords import VOXEL_IJK, coord_space

    ids = sorted(p.stem for p in (predict / "attention").glob("*.h5") if not p.name.startswith("."))
    try:
        if not ids or coord_space(predict / "attention" / f"{ids[0]}.h5", "attention file", "") != VOXEL_IJK:
            return []
    except PathattnError:
        return []  # unreadable attention: the other sections report it
    return ids


def _per_volume(inputs: ReportInputs) -> dict[str, str]:
    """The model's PxAP and row AUROC of each volume in ``evaluate/per_slide.csv``, as text."""
    path = inputs.layout.study.stage("evaluate") / "per_slide.csv"
    if not path.is_file():
        return {}
    try:
        rows = read_manifest(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise PathattnError(f"{path} is not a readable CSV file ({err}); {RERUN}") from None
    return {
        row["slide_id"]: f"{row.get('split', '')}: PxAP {fmt(row.get('pxap'))}, row AUROC {fmt(row.get('row_auroc'))}"
        for row in rows
        if row.get("method") == "model" and "slide_id" in row
    }


def localization(inputs: ReportInputs) -> dict[str, Any] | None:
    """The volume metrics of ``evaluate/metrics.json`` per method and split (None: none, or they are slides')."""
    study = inputs.layout.study
    path = study.wsol_metrics
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        if metrics.get("kind") != "volumes":
            return None
        methods, calibration = metrics["methods"], metrics["calibration"]
        rows = [[method, split, *(fmt(values.get(key)) for key in COLUMNS.values())]
                for method, splits in methods.items() for split, values in splits.items()]  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise PathattnError(f"{path} is not the output of 'pathattn evaluate wsol' ({err}); {RERUN}") from None
    curves = study.wsol_curves
    return {
        "n_calibration": len(metrics.get("splits", {}).get("calibration", [])),
        "n_test": len(metrics.get("splits", {}).get("test", [])),
        "chosen": calibration.get("chosen", {}).get("name", ""),
        "selected_by": calibration.get("selected_by", ""),
        "headers": ["method", "split", *COLUMNS],
        "rows": rows,
        "uri": image_uri(read_rgb(curves, RERUN)) if curves.is_file() else "",
    }


def _figure(inputs: ReportInputs, volume_id: str, per_volume: dict[str, str]) -> dict[str, Any]:
    """What one volume shows (its attention file must be readable: else the report stops, as for heatmaps)."""
    from pathattn.io.coords import read_coords
    from pathattn.io.scores import read_patch_scores
    from pathattn.report.volumes import volume_pictures

    study = inputs.layout.study
    scores = read_patch_scores(study.attention(volume_id))
    scores.values = scores.head(0)
    tiling_path = study.coords(volume_id)
    tiling = read_coords(tiling_path) if "tiles" in inputs.layout.stages and tiling_path.is_file() else None
    mode = str(scores.attrs.get("mode", "slices"))
    return {
        "volume_id": volume_id,
        "rows": f"{len(scores)} {mode}",
        "truth": cell(inputs, volume_id, "label"),
        "out_of_fold": prediction_text(inputs.oof.get(volume_id, {})),
        "localization": per_volume.get(volume_id, ""),
        "pictures": volume_pictures(scores, tiling),
    }


def volume_section(inputs: ReportInputs) -> Section | None:
    """Per volume (highest predicted probability first, at most ``max_slides``): the attention strip beside the
    lesion, the top-attention slices with the lesion contour; and the localization metrics on volumes."""
    ids = volume_ids(inputs)
    if not ids:
        return None
    scores = {v: slide_score(inputs, v) for v in ids}
    ordered = sorted(ids, key=lambda v: (scores[v] is None, -(scores[v] or 0.0), v))
    shown = ordered[: inputs.max_slides]
    per_volume = _per_volume(inputs)
    data = {
        "figures": [_figure(inputs, v, per_volume) for v in shown],
        "omitted": len(ordered) - len(shown),
        "total": len(ordered),
        "metrics": localization(inputs),
    }
    return Section("volumes", "Volumes: attention along the slice axis", VOLUMES_HTML, data)
