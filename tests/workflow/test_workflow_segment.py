"""Segmentation networks in a volume study (`segment`), without running a job: the DAG of a study that only
segments (no tiling), the command a segment job runs, segmentation beside attention-MIL and the classifiers,
what a re-run makes, and configs or sheets that fail validation."""

import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pathattn.workflow.layout import StudyLayout

REPO = Path(__file__).resolve().parents[2]
PRESET = "volume_segmentation"
SHEET = Path("workflows") / PRESET / "samples.tsv"
RESULTS = f"results/{PRESET}"
RUNS = ("attention_unet", "unet")
SEGMENT = {"activate": True, "runs": {"attention_unet": {"config": "configs/segment/attention_unet.yaml"}}}
DEMO_VOLUMES = {"tile": 1, "extract": 1, "train": 1, "predict": 1, "explain": 1, "evaluate": 1, "classify": 3,
                "cams": 2, "evaluate_cams": 2, "report": 1, "all": 1}  # fmt: skip


def _job(output: str, rule: str, run: str) -> str:
    """The block of ``rule``'s job of ``run`` in a dry run's output (`-p`: with its shell command)."""
    return next(block for block in output.split("\n\n") if f"rule {rule}:" in block and f"run={run}\n" in block)


def _inputs(output: str, rule: str) -> list[str]:
    """The inputs of the first job of ``rule`` in a dry run's output."""
    return re.search(rf"rule {rule}:\n    input: (.*)\n", output).group(1).split(", ")


def _drop_column(sheet: Path, column: str) -> None:
    """Remove ``column`` from a TSV sample sheet."""
    rows = [line.split("\t") for line in sheet.read_text().splitlines()]
    k = rows[0].index(column)
    sheet.write_text("".join("\t".join(row[:k] + row[k + 1 :]) + "\n" for row in rows))


def test_the_preset_segments_alone_without_tiling(volume_study, preset, dry_run):
    cwd = volume_study(PRESET, n_volumes=4)
    jobs = dry_run(cwd, "--configfile", REPO / "workflows" / PRESET / "config.yaml")
    assert Counter(rule for rule, _ in jobs) == {"segment": 2, "report": 1, "all": 1}
    study = preset(PRESET)
    assert set(study) == {"study", "kind", "samples", "segment"}  # no train, extract or classify
    assert list(study["segment"]["runs"]) == list(RUNS)
    for run in RUNS:
        assert study["segment"]["runs"][run]["config"] == f"configs/segment/{run}.yaml"


def test_the_segment_job_calls_the_cli(volume_study, snakemake):
    cwd = volume_study(PRESET, n_volumes=2)
    result = snakemake(cwd, "--configfile", REPO / "workflows" / PRESET / "config.yaml", "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "rule tile:" not in out and "/tiles/" not in out and "--tiles" not in out
    for run in RUNS:
        job = _job(out, "segment", run)
        command = (
            f"pathattn segment fit --config {REPO}/configs/segment/{run}.yaml --samples {SHEET} "
            f"--out {RESULTS}/segment/{run} --overwrite  > {RESULTS}/logs/segment/{run}.log 2>&1"
        )
        assert command in job
        assert f"output: {RESULTS}/segment/{run}/metrics.json, {RESULTS}/segment/{run}/splits.json" in job
        assert "threads: 2" in job and "mem_mb=16000" in job and "runtime=480" in job  # 4 threads, capped at 2
        images = cwd / SHEET.parent  # every study's images and label volume, a DICOM folder included
        for image in ("dicom/v0_ct", "images/v0_pet.nii.gz", "images/v1_label.nii.gz"):
            assert str(images / image) in _inputs(job + "\n", "segment")
    report = _inputs(out, "report")
    assert set(report) == {f"{RESULTS}/segment/{run}/metrics.json" for run in RUNS} | {str(SHEET)}


def test_extra_options_of_a_run_and_of_every_run(volume_study, study_config, snakemake):
    cwd = volume_study(PRESET, n_volumes=2)
    runs = {"attention_unet": {"config": "configs/segment/attention_unet.yaml", "extra": "--folds '[0,1]'"},
            "unet": {"config": "configs/segment/unet.yaml"}}  # fmt: skip
    segment = {"runs": runs, "threads": 1, "extra": "--max-epochs 2 --accelerator cpu"}
    result = snakemake(cwd, "--configfile", study_config(PRESET, segment=segment), "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    gated = _job(result.stdout, "segment", "attention_unet")
    assert f"--overwrite --folds '[0,1]' --max-epochs 2 --accelerator cpu > {RESULTS}/logs" in gated
    assert "threads:" not in gated  # segment.threads: 1 (Snakemake lists more than one only)
    plain = _job(result.stdout, "segment", "unet")
    assert f"--out {RESULTS}/segment/unet --overwrite --max-epochs 2 --accelerator cpu > " in plain


def test_the_segmentation_target_makes_only_the_runs(volume_study, dry_run):
    cwd = volume_study(PRESET, n_volumes=2)
    jobs = dry_run(cwd, "segmentation", "--configfile", REPO / "workflows" / PRESET / "config.yaml")
    assert Counter(rule for rule, _ in jobs) == {"segment": 2, "segmentation": 1}


def test_a_segmentation_sheet_needs_no_class_column(volume_study, dry_run):
    cwd = volume_study(PRESET, n_volumes=4)
    _drop_column(cwd / SHEET, "label")
    jobs = dry_run(cwd, "--configfile", REPO / "workflows" / PRESET / "config.yaml")
    assert Counter(rule for rule, _ in jobs) == {"segment": 2, "report": 1, "all": 1}


def test_segmentation_beside_attention_mil_and_the_classifiers(volume_study, study_config, snakemake, dry_run):
    cwd = volume_study("demo_volumes", n_volumes=4)
    config = study_config("demo_volumes", segment=SEGMENT)
    assert Counter(rule for rule, _ in dry_run(cwd, "--configfile", config)) == DEMO_VOLUMES | {"segment": 1}
    result = snakemake(cwd, "--configfile", config, "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    results = "results/demo_volumes"
    report = set(_inputs(result.stdout, "report"))
    assert {f"{results}/segment/attention_unet/metrics.json", f"{results}/classify/medusa_pet/metrics.json",
            f"{results}/predict/attention/v0.h5", f"{results}/tiles/qc/v3.png"} <= report  # fmt: skip
    # the {run} wildcard takes the classify runs' names and the segment runs'
    assert f"--out {results}/segment/attention_unet --overwrite" in _job(result.stdout, "segment", "attention_unet")
    assert f"--out {results}/classify/resnet18_pet --overwrite" in _job(result.stdout, "classify", "resnet18_pet")
    partial = dry_run(cwd, "segmentation", "--configfile", config)
    assert Counter(rule for rule, _ in partial) == {"segment": 1, "segmentation": 1}


def test_segmentation_beside_the_classifiers_alone(volume_study, study_config, dry_run):
    cwd = volume_study("slice_classification", n_volumes=4)
    jobs = dry_run(cwd, "--configfile", study_config("slice_classification", segment=SEGMENT, batch=True))
    expected = {"tile": 1, "classify": 6, "cams": 10, "evaluate_cams": 10, "segment": 1, "report": 1, "all": 1}
    assert Counter(rule for rule, _ in jobs) == expected


def test_segment_off_keeps_the_rule_out(volume_study, study_config, snakemake):
    cwd = volume_study("demo_volumes", n_volumes=2)
    result = snakemake(cwd, "--configfile", study_config("demo_volumes"), "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    assert "rule segment:" not in result.stdout and "/segment/" not in result.stdout


def test_a_newer_image_or_config_reruns_the_segmentation(volume_study, snakemake, dry_run):
    cwd = volume_study(PRESET, n_volumes=4)
    config = REPO / "workflows" / PRESET / "config.yaml"
    layout = StudyLayout(cwd / RESULTS)
    start = max(p.stat().st_mtime for p in cwd.rglob("*")) + 5  # newer than every input, whatever the clock
    for k, path in enumerate([*(layout.segment_run(run) / name for run in RUNS for name in ("metrics.json",
                              "splits.json")), layout.report]):  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (start + k // 4, start + k // 4))
    assert dry_run(cwd, "--configfile", config) == []  # finished: nothing to be done

    image = cwd / SHEET.parent / "images" / "v2_pet.nii.gz"
    os.utime(image, (start + 10, start + 10))
    jobs = dry_run(cwd, "--configfile", config)
    assert Counter(rule for rule, _ in jobs) == {"segment": 2, "report": 1, "all": 1}

    layout.segment_metrics("unet").unlink()
    os.utime(image, (start - 10, start - 10))
    jobs = dry_run(cwd, "--configfile", config)
    assert Counter(rule for rule, _ in jobs) == {"segment": 1, "report": 1, "all": 1}
    out = snakemake(cwd, "--configfile", config, "-n").stdout
    assert "wildcards: run=unet" in out and "run=attention_unet" not in out


def test_lint_is_clean_with_the_preset_and_its_example_sheet(snakemake, tmp_path):
    shutil.copytree(REPO / "workflows" / PRESET, tmp_path / "workflows" / PRESET)
    result = snakemake(tmp_path, "--configfile", REPO / "workflows" / PRESET / "config.yaml", "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout, result.stdout


def test_lint_is_clean_with_segmentation_beside_the_other_models(volume_study, study_config, snakemake):
    cwd = volume_study("demo_volumes", n_volumes=2)
    result = snakemake(cwd, "--configfile", study_config("demo_volumes", segment=SEGMENT), "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"segment": {"activate": False}}, "config: nothing to train; give train (with extract"),
        ({"segment": {"runs": {}}}, "config key segment.runs: name at least one run, e.g. attention_unet:"),
        ({"segment": {"runs": {"r": {"config": "configs/segment/none.yaml"}}}},
         "config key segment.runs.r.config: file not found: configs/segment/none.yaml"),
        ({"segment": {"runs": {"r": {}}}}, "config key segment.runs.r: 'config' is a required property"),
        ({"segment": {"runs": {"r": {"config": "configs/segment/unet.txt"}}}},
         "config key segment.runs.r.config: 'configs/segment/unet.txt' does not match"),
        ({"segment": {"runs": {"a b": {"config": "configs/segment/unet.yaml"}}}}, "config key segment.runs: 'a b'"),
        ({"segment": {"threads": 0}}, "config key segment.threads: 0 is less than the minimum of 1"),
        ({"segment": {"activate": "yes"}}, "config key segment.activate: 'yes' is not of type 'boolean'"),
        ({"segment": {"epochs": 3}}, "config key segment: Additional properties are not allowed ('epochs'"),
    ],
)  # fmt: skip
def test_bad_segment_config_fails_naming_the_key(volume_study, study_config, snakemake, change, needle):
    cwd = volume_study(PRESET, n_volumes=2)
    result = snakemake(cwd, "--configfile", study_config(PRESET, **change), "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("label_path", ["column", "cell"])
def test_segmentation_needs_every_label_volume(volume_study, snakemake, label_path):
    cwd = volume_study(PRESET, n_volumes=4)
    sheet = cwd / SHEET
    if label_path == "column":
        _drop_column(sheet, "label_path")
    else:  # one study without its label volume
        sheet.write_text(sheet.read_text().replace("images/v2_label.nii.gz", ""))
    result = snakemake(cwd, "--configfile", REPO / "workflows" / PRESET / "config.yaml", "-n")
    assert result.returncode != 0, result.stdout
    needle = "config key segment.activate: a segmentation network learns from the label volumes; give every study's"
    assert needle in result.stdout and "Traceback" not in result.stdout
    missing = "v0, v1, v2, v3" if label_path == "column" else "v2"
    assert f"(none for {missing})" in result.stdout


@pytest.mark.parametrize("alone", [False, True], ids=["beside_mil", "alone"])
def test_segmentation_in_a_slide_study_is_refused(study, preset, snakemake, tmp_path, alone):
    cwd = study("demo", n_slides=2)
    config = preset("demo") | {"segment": SEGMENT}
    if alone:  # no attention-MIL either
        del config["train"], config["extract"]
    path = tmp_path / "slides_segment.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(cwd, "--configfile", path, "-n")
    assert result.returncode != 0, result.stdout
    needle = "config key segment.activate: the workflow's segmentation networks train on the label volumes of a volume"
    assert needle in result.stdout and "Traceback" not in result.stdout
