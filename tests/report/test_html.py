"""The report of real results folders: which sections appear, the numbers they show, self-containment."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from pathattn.io.bags import bag_shape, find_bags
from pathattn.report.html import write_report
from pathattn.report.inputs import load_inputs


class Page(HTMLParser):
    """The parts of a report page the tests look at: section ids, images, and table cells per table class."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict[str, str]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(attributes["id"])
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "table":
            self._table = attributes.get("class") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def report(run: Path, tmp_path: Path, **kwargs: object) -> tuple[str, Page]:
    out = write_report(load_inputs(run, **kwargs), tmp_path / "report.html")
    text = out.read_text(encoding="utf-8")
    return text, Page(text)


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def bag_sizes(root: Path) -> list[int]:
    return [bag_shape(path)[0] for path in find_bags(root / "features").values()]


def oof(run: Path) -> list[dict[str, str]]:
    with (run / "predictions.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_full_study(study, tmp_path):
    text, page = report(study["root"], tmp_path, annotations=study["annotations"])
    assert page.sections == ["cohort", "metrics", "curves", "heatmaps", "stages"]
    assert page.images and all(re.fullmatch(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=]+", i["src"])
                               for i in page.images)  # fmt: skip
    assert not re.search(r"(src|href)=\"(?!data:|#)", text)  # nothing outside the file
    heatmaps = [i for i in page.images if i.get("class") == "heatmap"]
    assert sorted(i["alt"] for i in heatmaps) == [f"attention heatmap of {s}" for s in ("s00", "s01", "s02")]
    assert "ground truth: 1 Tumor region" in text and "ground truth: no tumor annotated" in text
    assert "tiling QC: no annotation" in text  # s02 has no annotation file
    cohort = page.tables["cohort"]
    assert cohort[0] == ["slide", "patient", "label", "patches", "mpp", "out-of-fold prediction", "fold"]
    assert len(cohort) == 16 and cohort[1][:4] == ["s00", "p00", "normal", "10"]
    assert "of 12 patients" in text
    assert page.tables["stages"][1:] == [
        ["tiles (pathattn tile)", "3", "3 done", "30"],
        ["features (pathattn extract)", "15", "15 done", str(sum(bag_sizes(study["root"])))],
        ["heatmaps (pathattn heatmap)", "3", "3 done", "30"],
        ["predict (pathattn predict)", "3", "predicted", ""],
    ]
    assert len(text) < 3_000_000


def test_metrics_table_equals_metrics_json(study, tmp_path):
    _, page = report(study["root"] / "train", tmp_path)
    metrics = json.loads((study["root"] / "train" / "metrics.json").read_text())
    rows = {row[0]: row[1:] for row in page.tables["metrics"][1:]}
    assert set(rows) == {"auroc", "auprc", "balanced_accuracy", "macro_f1", "accuracy"}
    for name, row in rows.items():
        summary = metrics["summary"][name]
        assert row[0] == f"{number(summary['mean'])} ± {number(summary['std'])}"
        for fold, cell in zip(metrics["folds"], row[1:], strict=True):
            low, high = fold[f"{name}_ci_low"], fold[f"{name}_ci_high"]
            assert cell == f"{number(fold[name])} [{number(low)}, {number(high)}]"


def test_heatmaps_ordered_by_probability_and_capped(study, tmp_path):
    text, page = report(study["root"], tmp_path, max_slides=2)
    probability = {r["slide_id"]: float(r["prob_tumor"]) for r in oof(study["root"] / "train")}
    expected = sorted(("s00", "s01", "s02"), key=lambda s: -probability[s])[:2]
    heatmaps = [i["alt"].split()[-1] for i in page.images if i.get("class") == "heatmap"]
    assert heatmaps == expected
    assert "1 slides omitted" in text


def test_multiclass_bare_run(multiclass_run, tmp_path):
    text, page = report(multiclass_run, tmp_path)
    assert page.sections == ["cohort", "metrics", "curves"]
    rows = oof(multiclass_run)
    labels = np.array([["a", "b", "c"].index(r["label"]) for r in rows])
    probs = np.array([[float(r[f"prob_{c}"]) for c in "abc"] for r in rows])
    curves = {row[0]: row[1:] for row in page.tables["curves"][1:]}
    for k, name in enumerate("abc"):
        assert curves[name] == [number(roc_auc_score(labels == k, probs[:, k])),
                                number(average_precision_score(labels == k, probs[:, k]))]  # fmt: skip


def test_survival_run(survival_run, tmp_path):
    text, page = report(survival_run, tmp_path)
    assert page.sections == ["cohort", "metrics", "survival"]
    p = float(re.search(r'class="logrank-p">([0-9.e-]+)<', text).group(1))
    assert 0.0 <= p <= 1.0
    cohort = page.tables["cohort"]
    assert cohort[0][2:4] == ["time", "event"] and "risk group" in cohort[0] and "label" not in cohort[0]
    groups = [row[cohort[0].index("risk group")] for row in cohort[1:]]
    assert groups.count("high") == groups.count("low") == 8


def test_sections_follow_the_inputs(study, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(study["root"] / "tiles", partial / "tiles")
    _, page = report(partial, tmp_path)
    assert page.sections == ["cohort", "stages"]
    assert page.tables["cohort"][0] == ["slide", "patches", "mpp"]
    shutil.copytree(study["root"] / "heatmaps", partial / "heatmaps")
    text, page = report(partial, tmp_path)
    assert page.sections == ["cohort", "heatmaps", "stages"]
    assert text.count('class="reference"') == 3  # the QC images: no annotations given


def test_recorded_sample_sheet_missing_is_noted(multiclass_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(multiclass_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["config"]["samples"] = str(tmp_path / "moved.csv")
    (run / "metrics.json").write_text(json.dumps(metrics))
    text, page = report(run, tmp_path)
    assert "moved.csv) was not found; pass --samples" in text
    assert page.sections == ["cohort", "metrics", "curves"]  # patients and labels come from predictions.csv


@pytest.mark.parametrize("max_slides", [-1])
def test_bad_max_slides(study, max_slides):
    from pathattn.errors import PathattnError

    with pytest.raises(PathattnError, match="--max-slides"):
        load_inputs(study["root"], max_slides=max_slides)
