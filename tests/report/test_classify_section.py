"""The report's image-classifier sections, from a real ``classify fit`` run, its CAMs and their WSOL evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.report.classify_section import ClassifierRun, classify_section, read_run, split_pairs
from pathattn.report.inputs import load_inputs
from pathattn.workflow.layout import StudyLayout


@pytest.fixture(scope="module")
def classified_study(trained_slice_run: Path, slice_tiling, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder with one classify run, its CAMs of fold 0 and their evaluation (as the workflow lays out)."""
    layout = StudyLayout(tmp_path_factory.mktemp("classified") / "results")
    shutil.copytree(trained_slice_run, layout.classify_run("resnet18"))
    cams = ["cams", "--run", layout.classify_run("resnet18"), "--fold", 0, "--tiles", slice_tiling.tiles,
            "--samples", slice_tiling.samples, "--out", layout.cams("resnet18", 0), "--methods",
            "[gradcam,eigencam]", "--calibration-fraction", 0.5]  # fmt: skip
    assert main([str(a) for a in cams]) == 0
    wsol = ["evaluate", "wsol", "--maps", layout.cams("resnet18", 0), "--out", layout.cams_wsol("resnet18", 0)]
    assert main([str(a) for a in wsol]) == 0
    return layout.root


def test_the_report_shows_the_classifiers_and_their_maps(classified_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", "--run", str(classified_study), "--out", str(out)]) == 0
    html = out.read_text()
    assert 'id="classifiers"' in html and 'id="cams"' in html
    assert "ROC and precision-recall curves of the classifiers" in html
    run = read_run(StudyLayout(classified_study).classify_run("resnet18"))
    assert run.interval("auroc") in html  # the pooled AUROC with its patient-bootstrap interval
    evaluation = json.loads((StudyLayout(classified_study).cams_wsol("resnet18", 0) / "metrics.json").read_text())
    for method in ("gradcam", "eigencam", "uniform"):  # the WSOL table, the uniform baseline included
        pxap = evaluation["methods"][method]["test"]["pxap"]
        assert f"<td>{method}</td><td>1</td><td>{pxap:.3f}</td>" in html
    assert html.count('alt="maps of resnet18, fold 0 with the lesion outlined"') == 1


def test_runs_that_differ_only_in_split_are_paired(classified_study: Path) -> None:
    patient = read_run(StudyLayout(classified_study).classify_run("resnet18"))
    config = {**patient.metrics["config"], "split": "slice", "out": "elsewhere"}
    pooled = {**patient.metrics["pooled"], "auroc": 0.99, "auroc_ci_low": 0.97, "auroc_ci_high": 1.0}
    sliced = ClassifierRun("by_slice", {**patient.metrics, "split": "slice", "config": config, "pooled": pooled},
                           patient.labels, patient.scores)  # fmt: skip
    other = ClassifierRun("other", {**sliced.metrics, "config": {**config, "channels": "['CT']"}},
                          patient.labels, patient.scores)  # fmt: skip
    rows = split_pairs([patient, sliced, other])
    assert len(rows) == 1 and rows[0][3] == "0.990 [0.970, 1.000]" and rows[0][5:] == ["resnet18", "by_slice"]
    gain = 0.99 - patient.metrics["pooled"]["auroc"]
    assert rows[0][4] == f"{gain:+.3f}"


def test_a_broken_run_is_named(classified_study: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(classified_study / "classify", results / "classify")
    (results / "classify" / "resnet18" / "metrics.json").write_text('{"classes": ["a"]}')
    with pytest.raises(PathattnError, match="is not a binary 'pathattn classify fit' run"):
        classify_section(load_inputs(results))
    assert main(["report", "--run", str(results), "--out", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()
    assert np.isfinite(read_run(classified_study / "classify" / "resnet18").scores).all()
