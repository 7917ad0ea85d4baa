"""Volume studies (`kind: volumes`) through the same rules, without running a job: the DAG, the commands the
rules run, what a re-run makes, and configs or sheets that fail validation."""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pathattn.workflow.layout import StudyLayout

REPO = Path(__file__).resolve().parents[2]
PRESETS = ("demo_volumes", "volume_classification")
PER_VOLUME = ("tile", "extract")  # no heatmap job for volumes
COHORT = {"train": 1, "predict": 1, "evaluate": 1, "report": 1, "all": 1}  # both presets activate evaluate
ACTIVATED = {"demo_volumes": {"explain": 1, "classify": 3, "cams": 2, "evaluate_cams": 2}}
MODES = pytest.mark.parametrize("batch", [False, True], ids=["per_volume", "batch"])
VOLUMES = ["v0", "v1", "v2", "v3"]
RERUN_COHORT = {("train", None), ("predict", None), ("explain", None), ("evaluate", None), ("report", None),
                ("all", None)}  # fmt: skip


def _job(output: str, rule: str) -> str:
    """The block of the first job of ``rule`` in a dry run's output (`-p`: with its shell command)."""
    start = output.index(f"rule {rule}:")
    return output[start : output.index("\n\n", start)]


@MODES
@pytest.mark.parametrize("name", PRESETS)
def test_every_volume_preset_resolves_the_whole_dag(volume_study, study_config, dry_run, name, batch):
    cwd = volume_study(name, n_volumes=4)
    jobs = dry_run(cwd, "--configfile", study_config(name, batch=batch))
    per_volume = {rule: 1 if batch else 4 for rule in PER_VOLUME}
    assert Counter(rule for rule, _ in jobs) == per_volume | COHORT | ACTIVATED.get(name, {})
    volumes = {volume for rule, volume in jobs if rule in PER_VOLUME}
    assert volumes == ({None} if batch else set(VOLUMES))


def test_the_dag_lists_the_volume_outputs_and_commands(volume_study, snakemake):
    cwd = volume_study("demo_volumes", n_volumes=2)
    config = REPO / "workflows" / "demo_volumes" / "config.yaml"
    result = snakemake(cwd, "--configfile", config, "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    results = "results/demo_volumes"
    tile = _job(out, "tile")
    for volume in ("v0", "v1"):  # foreground NIfTI where a slide has tissue GeoJSON
        assert f"{results}/tiles/foreground/{volume}.nii.gz" in tile and f"{results}/tiles/qc/{volume}.png" in tile
    assert "tissue/" not in out and "rule heatmap:" not in out and "heatmaps/" not in out
    inputs = re.search(r"    input: (.*)\n", tile).group(1).split(", ")
    sheet = cwd / "volume_cohort"  # every image of a study and its label volume, a DICOM folder included
    images = [sheet / "dicom" / "v0_ct", sheet / "images" / "v0_pet.nii.gz", sheet / "images" / "v1_label.nii.gz"]
    assert set(map(str, images)) <= set(inputs)
    assert f"--config {REPO}/configs/tile/volume_pet_ct_axial.yaml --samples volume_cohort/samples.csv" in tile
    assert "--annotations" not in out
    evaluate = _job(out, "evaluate")
    wsol = REPO / "configs" / "evaluate" / "wsol_volumes.yaml"
    assert f"pathattn evaluate wsol --config {wsol} --scores {results}/predict " in evaluate
    assert f"--tiles {results}/tiles --features {results}/features" in evaluate
    assert f"{results}/tiles/coords/v1.h5" in evaluate  # the label fractions
    report = re.search(r"rule report:\n    input: (.*)\n", out).group(1).split(", ")
    assert {f"{results}/predict/attention/v0.h5", f"{results}/evaluate/metrics.json"} <= set(report)


def test_per_volume_jobs_take_one_study_each(volume_study, study_config, snakemake):
    cwd = volume_study("volume_classification", n_volumes=2)
    result = snakemake(cwd, "--configfile", study_config("volume_classification"), "-n", "-p", "features")
    assert result.returncode == 0, result.stdout
    tiles = [block for block in result.stdout.split("\n\n") if "rule tile:" in block]
    assert len(tiles) == 2 and all("--slide-ids v" in block for block in tiles)
    v1 = next(block for block in tiles if "slide_id=v1" in block)
    assert "v1_ct.nii.gz" in v1 and "v0_" not in v1 and "results/volume_classification/logs/tile/v1.log" in v1


def test_defaults_of_the_stage_configs_follow_the_kind(volume_study, preset, snakemake, tmp_path):
    cwd = volume_study("demo_volumes", n_volumes=2)
    study = preset("demo_volumes")
    del study["tile"]["config"], study["evaluate"]["config"]
    config = tmp_path / "defaults.yaml"
    config.write_text(yaml.safe_dump(study))
    result = snakemake(cwd, "--configfile", config, "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    assert "configs/tile/volume_pet_ct_axial.yaml" in _job(result.stdout, "tile")
    assert "configs/evaluate/wsol_volumes.yaml" in _job(result.stdout, "evaluate")


def test_a_changed_volume_reruns_only_its_jobs(finished_volume_study, dry_run):
    cwd, config = finished_volume_study(batch=False)
    assert dry_run(cwd, "--configfile", config) == []  # finished: nothing to be done
    StudyLayout(cwd / "results" / "demo_volumes").features("v2").unlink()
    jobs = dry_run(cwd, "--configfile", config)
    assert set(jobs) == {("extract", "v2")} | RERUN_COHORT and len(jobs) == len(set(jobs))

    (cwd / "volume_cohort" / "images" / "v1_pet.nii.gz").touch()  # a newer image: that study is tiled again
    assert {("tile", "v1"), ("extract", "v1"), ("extract", "v2")} <= set(dry_run(cwd, "--configfile", config))


def test_batch_reruns_the_whole_stage(finished_volume_study, dry_run):
    cwd, config = finished_volume_study(batch=True)
    assert dry_run(cwd, "--configfile", config) == []
    StudyLayout(cwd / "results" / "demo_volumes").features("v2").unlink()
    assert set(dry_run(cwd, "--configfile", config)) == {("extract", None)} | RERUN_COHORT


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"kind": "ct"}, "config key kind: 'ct' is not one of ['slides', 'volumes']"),
        ({"kind": "slides"}, "config key kind: the sample sheet volume_cohort/samples.csv lists volumes"),
        ({"annotations": "volume_cohort"}, "config key annotations: GeoJSON annotations are for slides"),
        ({"tile": {"config": "configs/tile/none.yaml"}}, "config key tile.config: file not found"),
        ({"evaluate": {"config": "configs/evaluate/none.yaml"}}, "config key evaluate.config: file not found"),
        ({"train": {"task": "survival"}}, "line 2: train.task survival needs a value in column(s) time, event"),
    ],
)
def test_bad_volume_config_fails_at_validation_naming_the_key(volume_study, study_config, snakemake, change, needle):
    cwd = volume_study("demo_volumes", n_volumes=2)
    result = snakemake(cwd, "--configfile", study_config("demo_volumes", **change), "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout
    assert "Traceback" not in result.stdout


def test_a_slide_sheet_with_kind_volumes_is_refused(study, study_config, snakemake):
    cwd = study("demo", n_slides=2)
    result = snakemake(cwd, "--configfile", study_config("demo", kind="volumes", annotations=None), "-n")
    assert result.returncode != 0, result.stdout
    needle = "config key kind: the sample sheet cohort/samples.csv lists slides (a slide_path column); set kind: slides"
    assert needle in result.stdout


def test_evaluate_needs_label_volumes(volume_study, snakemake):
    cwd = volume_study("demo_volumes", n_volumes=2)
    sheet = cwd / "volume_cohort" / "samples.csv"
    sheet.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in sheet.read_text().splitlines()))
    result = snakemake(cwd, "--configfile", REPO / "workflows" / "demo_volumes" / "config.yaml", "-n")
    assert result.returncode != 0, result.stdout
    needle = "config key evaluate.activate: localization on volumes is scored against their label volumes"
    assert needle in result.stdout


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("v9,,class0,images/v1_ct.nii.gz,,", "line 4: 'patient_id' is a required property"),
        (",p9,class0,images/v1_ct.nii.gz,,", "line 4: 'volume_id' is a required property"),
        ("v9,p9,,images/v1_ct.nii.gz,,", "line 4: train.task classification needs a value in column(s) label"),
        ("v 9,p9,class0,images/v1_ct.nii.gz,,", "line 4 key volume_id: 'v 9' does not match"),
        ("v9,p9,class0,,,images/v1_label.nii.gz", "line 4: every image cell (ct_path, pet_path) is empty"),
        ("v0,p9,class0,images/v1_ct.nii.gz,,", "line 4: two studies share the volume_id 'v0'"),
    ],
)
def test_bad_volume_sheet_fails_naming_line_and_column(volume_study, snakemake, row, needle):
    cwd = volume_study("demo_volumes", n_volumes=2)
    sheet = cwd / "volume_cohort" / "samples.csv"
    sheet.write_text(sheet.read_text() + row + "\n")
    result = snakemake(cwd, "--configfile", REPO / "workflows" / "demo_volumes" / "config.yaml", "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout


@MODES
def test_the_slice_classification_preset_trains_classifiers_alone(volume_study, study_config, dry_run, batch):
    cwd = volume_study("slice_classification", n_volumes=4)
    jobs = dry_run(cwd, "--configfile", study_config("slice_classification", batch=batch))
    # 6 runs; ResNet-18 and MEDUSA on PET explained on 5 folds each; no attention-MIL job
    expected = {"tile": 1 if batch else 4, "classify": 6, "cams": 10, "evaluate_cams": 10, "report": 1, "all": 1}
    assert Counter(rule for rule, _ in jobs) == expected


def test_the_classifier_rules_call_the_cli(volume_study, snakemake):
    cwd = volume_study("slice_classification", n_volumes=2)
    config = REPO / "workflows" / "slice_classification" / "config.yaml"
    result = snakemake(cwd, "--configfile", config, "-n", "-p", "--cores", 2)
    assert result.returncode == 0, result.stdout
    out, results = result.stdout, "results/slice_classification"
    fits = [block for block in out.split("\n\n") if "rule classify:" in block]
    sliced = next(block for block in fits if "run=resnet18_pet_slice_split" in block)
    assert (f"pathattn classify fit --config {REPO}/configs/classify/resnet18_pet.yaml --tiles {results}/tiles "
            f"--samples workflows/slice_classification/samples.tsv --out {results}/classify/resnet18_pet_slice_split "
            "--overwrite --split slice") in sliced  # fmt: skip
    assert f"{results}/tiles/coords/v1.h5" in sliced
    cams = next(block for block in out.split("\n\n") if "rule cams:" in block and "run=medusa_pet, fold=3" in block)
    assert (
        f"pathattn cams --run {results}/classify/medusa_pet --fold 3 --tiles {results}/tiles --samples "
        f"workflows/slice_classification/samples.tsv --out {results}/cams/medusa_pet/fold_3 --overwrite"
    ) in cams
    wsol = next(b for b in out.split("\n\n") if "rule evaluate_cams:" in b and "run=resnet18_pet, fold=0" in b)
    assert (f"pathattn evaluate wsol --maps {results}/cams/resnet18_pet/fold_0 --out "
            f"{results}/evaluate/cams/resnet18_pet/fold_0") in wsol  # fmt: skip
    report = re.search(r"rule report:\n    input: (.*)\n", out).group(1).split(", ")
    needed = {
        f"{results}/classify/medusa_isolated_pet/metrics.json",
        f"{results}/evaluate/cams/medusa_pet/fold_4/metrics.json",
    }
    assert needed <= set(report)
    assert not any("/predict/" in path or "/train/" in path for path in report)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"classify": {"activate": False}}, "config: nothing to train; give train (with extract"),
        ({"cams": {"runs": ["resnet50"]}}, "config key cams.runs: resnet50 is not a classify run; one of medusa_iso"),
        ({"classify": {"runs": {}}}, "config key classify.runs: name at least one run"),
        ({"classify": {"runs": {"r": {"config": "configs/classify/none.yaml"}}}},
         "config key classify.runs.r.config: file not found"),
        ({"classify": {"runs": {"r": {}}}}, "config key classify.runs.r: 'config' is a required property"),
        ({"train": {"configs": ["configs/model/abmil.yaml"]}}, "'extract' is a dependency of 'train'"),
    ],
)  # fmt: skip
def test_bad_classifier_config_fails_naming_the_key(volume_study, study_config, snakemake, change, needle):
    cwd = volume_study("slice_classification", n_volumes=2)
    config = study_config("slice_classification", **change)
    if change.get("classify", {}).get("activate") is False:  # cams explain the classifiers: off with them
        config.write_text(config.read_text().replace("activate: true", "activate: false"))
    result = snakemake(cwd, "--configfile", config, "-n")
    assert result.returncode != 0 and needle in result.stdout, result.stdout
    assert "Traceback" not in result.stdout


def test_classifiers_need_label_volumes(volume_study, snakemake):
    cwd = volume_study("slice_classification", n_volumes=2)
    sheet = cwd / "workflows" / "slice_classification" / "samples.tsv"
    sheet.write_text("".join(line.rsplit("\t", 1)[0] + "\n" for line in sheet.read_text().splitlines()))
    result = snakemake(cwd, "--configfile", REPO / "workflows" / "slice_classification" / "config.yaml", "-n")
    assert result.returncode != 0, result.stdout
    assert "config key classify.activate: a slice's label comes from the label volume" in result.stdout
