"""The report's segmentation section, from a real ``segment fit`` run in a results folder with no other stage."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.report.inputs import load_inputs
from pathattn.report.segment_section import read_run, segment_section
from pathattn.workflow.layout import StudyLayout

RUN = "attention_unet"


@pytest.fixture(scope="module")
def segmented(segmentation_run: Path) -> Path:
    """A results folder holding only ``segment/attention_unet/`` (the session's tiny ``segment fit`` run)."""
    root = segmentation_run.parents[1]
    assert StudyLayout(root).segment_run(RUN) == segmentation_run
    return root


def test_the_report_shows_the_segmentation_run(segmented: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--run", str(segmented), "--out", str(out)]) == 0  # segment/ alone makes a report
    html = out.read_text()
    assert 'id="segment"' in html and html.count("<section id=") == 1
    metrics = json.loads(StudyLayout(segmented).segment_metrics(RUN).read_text())
    fold = metrics["folds"][0]
    row = (f"<tr><td>{RUN}</td><td>attention_unet</td><td>CT, PET</td><td>1</td><td>{fold['cases']}</td>"
           f"<td>{metrics['summary']['1']['dice_mean_positive']:.3f}</td>")  # fmt: skip
    assert row in html
    assert f"<td>{fold['classes']['1']['false_positive_cases']}</td>" in html
    assert f"<td>{metrics['summary']['attention_pxap']['uniform']:.3g}</td></tr>" in html
    assert "<th>&lt;1 mL</th><th>1-5 mL</th><th>5-20 mL</th><th>&gt;20 mL</th>" in html
    assert 'alt="Dice of each held-out volume with a lesion, per run"' in html
    with (StudyLayout(segmented).segment_run(RUN) / "fold_0" / "test" / "cases.csv").open() as f:
        cases = list(csv.DictReader(f))
    lesions = sorted((r for r in cases if float(r["truth_ml"]) > 0), key=lambda r: -float(r["truth_ml"]))
    assert lesions  # the synthetic cohort puts lesions in most volumes
    assert html.count('<img src="data:image/jpeg;base64,') == min(3, len(lesions))  # the QC montages, inlined
    assert f'alt="QC montage: {lesions[0]["volume_id"]} (fold 0,' in html
    run = read_run(StudyLayout(segmented).segment_run(RUN))
    assert [(c.volume_id, c.dice) for c in run.cases] == [(r["volume_id"], float(r["dice"])) for r in cases]


@pytest.mark.parametrize("text", ["{not json", '{"model": "attention_unet", "folds": []}', "[1, 2]"])
def test_a_malformed_metrics_json_is_named(segmented: Path, tmp_path: Path, capsys, text: str) -> None:
    results = tmp_path / "results"
    shutil.copytree(segmented / "segment", results / "segment")
    metrics = StudyLayout(results).segment_metrics(RUN)
    metrics.write_text(text)
    with pytest.raises(PathattnError, match="is not the metrics.json of 'pathattn segment fit'"):
        segment_section(load_inputs(results))
    capsys.readouterr()
    assert main(["report", "--run", str(results), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(metrics) in err and "\n" not in err and "re-run 'pathattn segment fit'" in err
    assert not (tmp_path / "r.html").exists()


def test_a_missing_cases_table_is_named(segmented: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(segmented / "segment", results / "segment")
    cases = StudyLayout(results).segment_run(RUN) / "fold_0" / "test" / "cases.csv"
    cases.unlink()
    with pytest.raises(PathattnError, match=f"{cases} cannot be read"):
        segment_section(load_inputs(results))


def test_no_section_without_segment_runs(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    assert segment_section(load_inputs(tmp_path)) is None  # no segment/
    (tmp_path / "segment" / "unfinished").mkdir(parents=True)
    assert segment_section(load_inputs(tmp_path)) is None  # a run folder without metrics.json is no run
