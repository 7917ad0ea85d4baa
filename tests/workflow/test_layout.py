"""The results layout of a study: one definition for the rules (``{slide_id}`` patterns) and for real slides."""

from pathlib import Path

import pytest

from pathattn.workflow.layout import SLIDE, STAGES, StudyLayout


def test_per_slide_paths_are_snakemake_patterns_and_real_files():
    layout = StudyLayout(Path("results/demo"))
    assert layout.coords() == Path("results/demo/tiles/coords/{slide_id}.h5")
    assert layout.coords("s1") == Path("results/demo/tiles/coords/s1.h5")
    assert layout.top_patches(20) == Path("results/demo/heatmaps/{slide_id}_top20.geojson")
    assert str(layout.explanation()).format(slide_id="s1") == str(layout.explanation("s1"))
    assert layout.log("tile", SLIDE) == Path("results/demo/logs/tile/{slide_id}.log")
    assert layout.log("train") == Path("results/demo/logs/train/cohort.log")
    assert layout.report == Path("results/demo/report.html")
    assert [layout.stage(s) for s in STAGES] == [Path("results/demo", s) for s in STAGES]


def test_a_bare_training_run_holds_the_training_files_itself():
    run = StudyLayout(Path("runs/abmil"), train_at_root=True)
    assert run.train_metrics == Path("runs/abmil/metrics.json")
    assert run.stage("predict") == Path("runs/abmil/predict")
    with pytest.raises(KeyError, match="unknown stage 'heatmap'"):
        run.stage("heatmap")


def test_the_mask_of_a_tiling_follows_the_kind_of_study():
    layout = StudyLayout(Path("results/ct"))
    assert layout.mask("slides", "s1") == layout.tissue("s1") == Path("results/ct/tiles/tissue/s1.geojson")
    assert layout.mask("volumes") == layout.foreground() == Path("results/ct/tiles/foreground/{slide_id}.nii.gz")
    with pytest.raises(KeyError, match="unknown study kind 'ct'"):
        layout.mask("ct")
