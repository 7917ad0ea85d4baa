"""`pathattn demo` runs the whole workflow on a tiny cohort; re-runs make only what is missing or new."""

import csv
import os
import shutil
import zipfile

import pytest
import yaml

from pathattn.cli.main import main
from pathattn.io.manifest import read_manifest

SLIDES = ["slide_000", "slide_001", "slide_002", "slide_003"]
DOWNSTREAM = {("train", None), ("predict", None), ("report", None), ("all", None)}


@pytest.fixture
def tiny_demo(tmp_path, preset):
    """The demo preset with 2 folds of 2 epochs and a top-5 heatmap export."""
    config = preset("demo")
    config["train"]["extra"] = "--n_folds 2 --max_epochs 2 --n_boot 20"
    config["heatmap"]["top_k"] = 5
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_results(results):
    """The agreed layout of the results folder, with a row or file per slide at each stage."""
    layout = [("tiles/coords", "{}.h5"), ("tiles/qc", "{}.png"), ("tiles/tissue", "{}.geojson"),
              ("features/h5_files", "{}.h5"), ("predict/attention", "{}.h5"), ("heatmaps", "{}_heatmap.png"),
              ("heatmaps", "{}_top5.geojson"), ("logs/tile", "{}.log"), ("logs/extract", "{}.log"),
              ("logs/heatmap", "{}.log")]  # fmt: skip
    for folder, pattern in layout:
        assert all((results / folder / pattern.format(s)).is_file() for s in SLIDES), folder
    for stage in ("tiles", "features"):
        assert [(r["slide_id"], r["status"]) for r in read_manifest(results / stage / "manifest.csv")] == [
            (s, "done") for s in SLIDES
        ]
    trained = {r["slide_id"]: r for r in _rows(results / "train" / "predictions.csv")}
    predicted = {r["slide_id"]: r for r in _rows(results / "predict" / "predictions.csv")}
    assert sorted(trained) == sorted(predicted) == SLIDES
    for slide, row in predicted.items():  # out of fold: the model of the fold that tested the slide
        assert row["checkpoint"] == trained[slide]["checkpoint"] and row["prediction"] == trained[slide]["prediction"]
    assert (results / "report.html").stat().st_size > 1000


@pytest.mark.slow
def test_demo_runs_the_workflow_then_resumes(tmp_path, tiny_demo, dry_run, snakemake, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--n-slides", "4", "--width", "2048", "--height", "2048",
            "--configfile", str(tiny_demo), "--cores", "2"]  # fmt: skip
    assert main(args) == 0
    results = out / "results" / "demo"
    assert capsys.readouterr().out.strip().endswith(f"demo finished: report {results / 'report.html'}")
    _check_results(results)
    assert dry_run(out, "--configfile", tiny_demo) == []  # finished: nothing to be done
    report = snakemake(out, "--configfile", tiny_demo, "--report", tmp_path / "snakemake_report.zip")
    assert report.returncode == 0 and zipfile.is_zipfile(tmp_path / "snakemake_report.zip"), report.stdout

    # a new slide in the sample sheet: its tiles and features only, then the cohort's steps again
    sheet = out / "cohort" / "samples.csv"
    text, stat = sheet.read_text(), sheet.stat()
    shutil.copy(out / "cohort" / "slides" / "slide_000.tif", out / "cohort" / "slides" / "new.tif")
    sheet.write_text(text + "new,patient_new,1,10.0,1,slides/new.tif\n")
    jobs = set(dry_run(out, "--configfile", tiny_demo))
    heatmaps = {("heatmap", s) for s in [*SLIDES, "new"]}
    assert jobs == {("tile", "new"), ("extract", "new"), *heatmaps} | DOWNSTREAM
    sheet.write_text(text)
    os.utime(sheet, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    # a deleted feature file: that slide's extraction and what depends on it, no tiling, no other slide
    (results / "features" / "h5_files" / "slide_002.h5").unlink()
    jobs = dry_run(out, "--configfile", tiny_demo)
    assert set(jobs) == {("extract", "slide_002"), *{("heatmap", s) for s in SLIDES}} | DOWNSTREAM
    assert len(jobs) == len(set(jobs))
