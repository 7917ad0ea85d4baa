"""The Snakemake workflow without running a job: lint, every preset's whole DAG, and configs that fail validation."""

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRESETS = ("demo", "wsi_classification", "wsi_survival")
PER_SLIDE = ("tile", "extract", "heatmap")
COHORT = {"train": 1, "predict": 1, "report": 1, "all": 1}
ACTIVATED = {"demo": {"explain": 1, "evaluate": 1}}  # the optional stages each preset runs in `all`
MODES = pytest.mark.parametrize("batch", [False, True], ids=["per_slide", "batch"])


@MODES
@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_resolves_the_whole_dag(study, study_config, dry_run, name, batch):
    cwd = study(name, n_slides=4)
    jobs = dry_run(cwd, "--configfile", study_config(name, batch=batch))
    per_slide = {rule: 1 if batch else 4 for rule in PER_SLIDE}
    assert Counter(rule for rule, _ in jobs) == per_slide | COHORT | ACTIVATED.get(name, {})
    slides = {slide for rule, slide in jobs if rule in PER_SLIDE}
    assert slides == ({None} if batch else {"s0", "s1", "s2", "s3"})


def test_activated_explain_and_evaluate_feed_the_report(study, snakemake):
    cwd = study("demo", n_slides=2)
    result = snakemake(cwd, "--configfile", REPO / "workflows" / "demo" / "config.yaml", "-n", "--cores", 2)
    assert result.returncode == 0, result.stdout
    report = re.search(r"rule report:\n    input: (.*)\n", result.stdout).group(1).split(", ")
    assert {"results/demo/explain/summary.csv", "results/demo/evaluate/metrics.json"} <= set(report)


@pytest.mark.parametrize(
    ("target", "rules"),
    [
        ("explain", {"tile", "extract", "train", "explain"}),
        ("evaluate", {"tile", "extract", "train", "predict", "evaluate"}),
    ],
)
def test_explain_and_evaluate_stay_targets_when_not_activated(study, study_config, dry_run, target, rules):
    cwd = study("demo", n_slides=2)
    config = study_config("demo", explain={"activate": False}, evaluate={"activate": False})
    assert {rule for rule, _ in dry_run(cwd, target, "--configfile", config)} == rules


def test_partial_target_and_slurm_profile(study, snakemake):
    cwd = study("wsi_classification", n_slides=2)
    config = REPO / "workflows" / "wsi_classification" / "config.yaml"
    profile = REPO / "snakemake" / "profiles" / "slurm"
    result = snakemake(cwd, "--configfile", config, "--workflow-profile", profile, "-n", "features")
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "rule train:" not in out and out.count("rule extract:") == out.count("rule tile:") == 2
    extract = out[out.index("rule extract:") :].split("\n\n")[0]
    assert "gpu=1" in extract and "cpus_per_gpu=8" in extract and "--weights weights/uni/pytorch_model.bin" in extract


@MODES
def test_lint_is_clean_with_every_preset_and_its_example_sheet(study, volume_study, study_config, snakemake, batch):
    cwd = study("demo")
    assert volume_study("demo_volumes") == cwd
    shutil.copytree(REPO / "workflows", cwd / "workflows")  # the example sheets, where the presets name them
    for name in (*PRESETS, "demo_volumes", "volume_classification"):
        result = snakemake(cwd, "--configfile", study_config(name, batch=batch), "--lint")
        assert result.returncode == 0 and "Congratulations" in result.stdout, (name, result.stdout)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"epochs": 3}, "config: Additional properties are not allowed ('epochs' was unexpected)"),
        ({"train": {"max_epochs": 3}}, "config key train: Additional properties are not allowed ('max_epochs'"),
        ({"extract": {"threads": "two"}}, "config key extract.threads: 'two' is not of type 'integer'"),
        ({"train": {"task": "regression"}}, "config key train.task: 'regression' is not one of"),
        ({"heatmap": {"top_k": 0}}, "config key heatmap.top_k: 0 is less than the minimum of 1"),
        ({"samples": "missing.csv"}, "config key samples: file not found: missing.csv"),
        ({"train": {"configs": ["configs/model/none.yaml"]}}, "config key train.configs: file not found"),
        ({"train": {"task": "survival"}}, "line 2: train.task survival needs a value in column(s) time, event"),
        ({"study": None}, "config key study: None is not of type 'string'"),
        ({"batch": "yes"}, "config key batch: 'yes' is not of type 'boolean'"),
        ({"tile": {"threads": 0}}, "config key tile.threads: 0 is less than the minimum of 1"),
        ({"explain": {"activate": "yes"}}, "config key explain.activate: 'yes' is not of type 'boolean'"),
        ({"evaluate": {"activate": 1}}, "config key evaluate.activate: 1 is not of type 'boolean'"),
        ({"evaluate": {"config": "configs/evaluate/none.yaml"}}, "config key evaluate.config: file not found"),
        ({"annotations": None}, "config key evaluate.activate: localization is scored against tumor annotations"),
    ],
)
def test_bad_config_fails_at_validation_naming_the_key(study, snakemake, study_config, change, needle):
    cwd = study("demo", n_slides=2)
    result = snakemake(cwd, "--configfile", study_config("demo", **change), "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize(
    ("name", "row", "needle"),
    [
        ("demo", "s9,,class0,slides/s0.tif", "line 4: 'patient_id' is a required property"),
        ("demo", "s9,p9,,slides/s0.tif", "line 4: train.task classification needs a value in column(s) label"),
        ("demo", "s 9,p9,class0,slides/s0.tif", "line 4 key slide_id: 's 9' does not match"),
        ("demo", "s0,p9,class0,slides/other.tif", "two slides share the id 's0'"),
        ("wsi_survival", "s9\tp9\tsoon\t1\tslides/s0.tif", "line 4 key time: 'soon' is not of type 'number'"),
        ("wsi_survival", "s9\tp9\t3.5\t2\tslides/s0.tif", "line 4 key event: 2.0 is not one of [0, 1]"),
    ],
)
def test_bad_sample_sheet_fails_naming_line_and_column(study, snakemake, preset, name, row, needle):
    cwd = study(name, n_slides=2)
    sheet = cwd / preset(name)["samples"]
    sheet.write_text(sheet.read_text() + row + "\n")
    result = snakemake(cwd, "--configfile", REPO / "workflows" / name / "config.yaml", "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout


def test_no_config_is_an_error(snakemake, tmp_path):
    result = snakemake(tmp_path, "-n")
    assert result.returncode != 0 and "pass --configfile workflows/<study>/config.yaml" in result.stdout
