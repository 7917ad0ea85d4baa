"""`pathattn demo --study slides` runs the whole workflow (batch mode, explain and evaluate) on a tiny cohort, then
resumes (the volume study: test_demo_volumes.py).

What a re-run makes per slide is checked on stand-in outputs in test_incremental.py.
"""

import csv
import zipfile

import pytest
import yaml

from pathattn.cli.main import main
from pathattn.io.manifest import read_manifest
from pathattn.workflow.layout import StudyLayout

SLIDES = ["slide_000", "slide_001", "slide_002", "slide_003"]
RULES = ("tile", "extract", "train", "predict", "heatmap", "explain", "evaluate", "report")


@pytest.fixture
def tiny_demo(tmp_path, preset):
    """The demo preset with 2 folds of 2 epochs and a top-5 heatmap export (evaluate calibrates on 2 of 4 slides)."""
    config = preset("demo")
    config["train"]["extra"] = "--n-folds 2 --max-epochs 2 --n-boot 20"
    config["heatmap"]["top_k"] = 5
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_results(layout):
    """A file per slide at each stage, one log per (batch) job, out-of-fold predictions, and the report's sections."""
    per_slide = [layout.coords, layout.qc, layout.tissue, layout.features, layout.attention, layout.heatmap,
                 lambda s: layout.top_patches(5, s), layout.explanation]  # fmt: skip
    for path in per_slide:
        assert all(path(s).is_file() for s in SLIDES), path(SLIDES[0])
    assert all(layout.log(rule).is_file() for rule in RULES)
    for stage in ("tiles", "features"):
        assert [(r["slide_id"], r["status"]) for r in read_manifest(layout.manifest(stage))] == [
            (s, "done") for s in SLIDES
        ]
    trained = {r["slide_id"]: r for r in _rows(layout.train_predictions)}
    predicted = {r["slide_id"]: r for r in _rows(layout.predictions)}
    assert sorted(trained) == sorted(predicted) == SLIDES
    for slide, row in predicted.items():  # out of fold: the model of the fold that tested the slide
        assert row["checkpoint"] == trained[slide]["checkpoint"] and row["prediction"] == trained[slide]["prediction"]
    assert layout.wsol_metrics.is_file() and layout.wsol_curves.is_file()
    html = layout.report.read_text()
    assert all(f'id="{section}"' in html for section in ("metrics", "heatmaps", "explain", "wsol")), html[:2000]


@pytest.mark.slow
def test_demo_runs_the_workflow_then_resumes(tmp_path, tiny_demo, dry_run, snakemake, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--study", "slides", "--n-slides", "4", "--width", "2048", "--height", "2048",
            "--configfile", str(tiny_demo), "--cores", "2"]  # fmt: skip
    assert main(args) == 0
    layout = StudyLayout(out / "results" / "demo")
    assert capsys.readouterr().out.strip().endswith(f"demo finished: report {layout.report}")
    _check_results(layout)
    assert dry_run(out, "--configfile", tiny_demo) == []  # finished: nothing to be done
    report = snakemake(out, "--configfile", tiny_demo, "--report", tmp_path / "snakemake_report.zip")
    assert report.returncode == 0 and zipfile.is_zipfile(tmp_path / "snakemake_report.zip"), report.stdout

    # batch mode: a deleted feature file makes the whole extraction again, and everything after it
    layout.features("slide_002").unlink()
    jobs = dry_run(out, "--configfile", tiny_demo)
    assert sorted(jobs) == sorted([(rule, None) for rule in RULES if rule != "tile"] + [("all", None)])
