"""Running the Snakemake workflow from the tests: the venv's snakemake, in a working folder of the test."""

from __future__ import annotations

import functools
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pathattn.workflow.layout import StudyLayout

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "snakemake" / "Snakefile"
_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?: {4}.*\n)*)", re.MULTILINE)
_SLIDE = re.compile(r"wildcards: slide_id=(\S+)")
RUN_FILES = ("metrics.json", "predictions.csv", "splits.json")  # of a classify run


def _sheet_of(config: dict, root: Path, data: str) -> tuple[dict, Path, str]:
    """The preset ``config``, the path of its sample sheet under ``root`` and its separator; makes ``data``."""
    sheet = root / config["samples"]
    (sheet.parent / data).mkdir(parents=True, exist_ok=True)
    return config, sheet, "\t" if sheet.suffix == ".tsv" else ","


@pytest.fixture
def preset():
    """``preset(name)``: the study config ``workflows/<name>/config.yaml`` as a dict."""
    return lambda name: yaml.safe_load((REPO / "workflows" / name / "config.yaml").read_text())


@pytest.fixture
def study_config(tmp_path, preset):
    """``study_config(name, **changes)``: a preset with top-level keys changed (dicts merged), written to a file."""

    numbers = itertools.count()

    def write(name: str, **changes: object) -> Path:
        config = preset(name)
        for key, value in changes.items():
            config[key] = config.get(key, {}) | value if isinstance(value, dict) else value
        path = tmp_path / f"{name}_{next(numbers)}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return write


def _write_results(
    layout: StudyLayout, slide_ids: list[str], top_k: int, kind: str = "slides", config: dict | None = None
) -> None:
    """Empty stand-ins for every output of a study (explain and evaluate included), each stage newer than the last.

    Without Snakemake's records of a run, only modification times decide what is out of date. A volume study
    (``kind`` volumes) has foreground masks instead of tissue masks, and no heatmaps; with the study ``config``'s
    classify and cams sections, the classifiers' runs, maps and their evaluations too.
    """

    def each(*paths):
        return [path(slide_id) for path in paths for slide_id in slide_ids]

    heatmaps = (layout.heatmap, layout.heatmap_geojson, functools.partial(layout.top_patches, top_k))
    runs = list((config or {}).get("classify", {}).get("runs", {}))
    cams = [(run, fold) for run in (config or {}).get("cams", {}).get("runs", []) for fold in config["cams"]["folds"]]
    stages = [
        each(layout.coords, functools.partial(layout.mask, kind), layout.qc),
        [layout.classify_run(run) / name for run in runs for name in RUN_FILES],
        [layout.cams(run, fold) / "cams.json" for run, fold in cams],
        [layout.cams_wsol(run, fold) / name for run, fold in cams for name in ("metrics.json", "summary.csv")],
        each(layout.features),
        [layout.train_metrics, layout.train_predictions, layout.train_splits],
        [layout.predictions, *each(layout.attention)],
        each(*heatmaps) if kind == "slides" else [],
        [layout.explain_summary, *each(layout.explanation)],
        [layout.wsol_summary, layout.wsol_metrics, layout.wsol_curves],
        [layout.report],
    ]
    study = layout.root.parent.parent
    start = max(p.stat().st_mtime for p in study.rglob("*")) + 1  # newer than every input, whatever the clock
    for k, files in enumerate(stages):
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            os.utime(path, (start + k, start + k))


@pytest.fixture
def snakemake():
    """``snakemake(cwd, *args)``: run the workflow's Snakefile with the venv's executables first on PATH.

    Its output (stdout and stderr together, as a person sees them) is the result's ``stdout``.
    """

    def run(cwd: Path, *args: object) -> subprocess.CompletedProcess:
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
        command = [str(Path(sys.executable).parent / "snakemake"), "-s", str(SNAKEFILE), *map(str, args)]
        return subprocess.run(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300
        )

    return run


@pytest.fixture
def dry_run(snakemake):
    """``dry_run(cwd, *args)``: ``(rule, slide_id or None)`` of every job that ``snakemake -n`` lists."""

    def jobs(cwd: Path, *args: object) -> list[tuple[str, str | None]]:
        result = snakemake(cwd, "-n", "--cores", 2, *args)
        assert result.returncode == 0, result.stdout
        listed = _JOB.findall(result.stdout)
        return [(rule, match.group(1) if (match := _SLIDE.search(body)) else None) for rule, body in listed]

    return jobs


@pytest.fixture
def study(tmp_path, preset):
    """``study(name, n_slides)``: a working folder for a preset with the data files it names.

    The sample sheet (at the preset's path, with the columns of its task) lists ``n_slides`` slides that are
    empty files (a dry run only checks that inputs exist); the annotations folder and the encoder weights
    are there when the preset names them.
    """

    def make(name: str, n_slides: int = 4) -> Path:
        config, sheet, sep = _sheet_of(preset(name), tmp_path, "slides")
        survival = config["train"]["task"] == "survival"
        lines = [sep.join(["slide_id", "patient_id", *(["time", "event"] if survival else ["label"]), "slide_path"])]
        for k in range(n_slides):
            (sheet.parent / "slides" / f"s{k}.tif").touch()
            task = [f"{10 + k}.5", str(k % 2)] if survival else [f"class{k % 2}"]
            lines.append(sep.join([f"s{k}", f"p{k}", *task, f"slides/s{k}.tif"]))
        sheet.write_text("\n".join(lines) + "\n")
        if config.get("annotations"):
            (tmp_path / config["annotations"]).mkdir(parents=True, exist_ok=True)
        if config["extract"].get("weights"):
            (tmp_path / config["extract"]["weights"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / config["extract"]["weights"]).touch()
        return tmp_path

    return make


@pytest.fixture
def volume_study(tmp_path, preset):
    """``volume_study(name, n_volumes)``: a working folder for a volume preset with the data files it names.

    The sample sheet (at the preset's path, with the columns of its task) lists ``n_volumes`` PET/CT studies,
    ``v0`` .. ``v{n-1}`` of patients ``p0``, ``p0``, ``p1``, ``p1``, ... (two studies each), whose images and
    label volumes are empty files (a dry run only checks that inputs exist), except ``v0``'s CT: a DICOM
    series folder. The encoder weights are there when the preset names them.
    """

    def make(name: str, n_volumes: int = 4) -> Path:
        config, sheet, sep = _sheet_of(preset(name), tmp_path, "images")
        survival = config.get("train", {}).get("task") == "survival"
        task = ["time", "event"] if survival else ["label"]
        lines = [sep.join(["volume_id", "patient_id", *task, "ct_path", "pet_path", "label_path"])]
        for k in range(n_volumes):
            files = [f"images/v{k}_{image}.nii.gz" for image in ("ct", "pet", "label")]
            if k == 0:
                files[0] = "dicom/v0_ct"
                (sheet.parent / files[0]).mkdir(parents=True, exist_ok=True)
                (sheet.parent / files[0] / "IM0001.dcm").touch()
            for file in files[1:] if k == 0 else files:
                (sheet.parent / file).touch()
            values = [f"{10 + k}.5", str(k % 2)] if survival else [f"class{k // 2 % 2}"]
            lines.append(sep.join([f"v{k}", f"p{k // 2}", *values, *files]))
        sheet.write_text("\n".join(lines) + "\n")
        if config.get("extract", {}).get("weights"):
            (tmp_path / config["extract"]["weights"]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / config["extract"]["weights"]).touch()
        return tmp_path

    return make


@pytest.fixture
def finished_study(study, study_config, preset):
    """``finished_study(batch)``: the demo study on 4 slides with every output made (explain and evaluate
    included, stand-ins each newer than its inputs); its working folder and config (``batch`` set)."""

    def make(batch: bool) -> tuple[Path, Path]:
        cwd = study("demo", n_slides=4)
        _write_results(
            StudyLayout(cwd / "results" / "demo"), [f"s{k}" for k in range(4)], preset("demo")["heatmap"]["top_k"]
        )
        return cwd, study_config("demo", batch=batch)

    return make


@pytest.fixture
def finished_volume_study(volume_study, study_config, preset):
    """``finished_volume_study(batch)``: the volume demo study on 4 volumes with every output made (stand-ins,
    each newer than its inputs); its working folder and config (``batch`` set)."""

    def make(batch: bool) -> tuple[Path, Path]:
        cwd = volume_study("demo_volumes", n_volumes=4)
        layout = StudyLayout(cwd / "results" / "demo_volumes")
        _write_results(layout, [f"v{k}" for k in range(4)], 1, "volumes", preset("demo_volumes"))
        return cwd, study_config("demo_volumes", batch=batch)

    return make
