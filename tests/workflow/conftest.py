"""Running the Snakemake workflow from the tests: the venv's snakemake, in a working folder of the test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "snakemake" / "Snakefile"
_JOB = re.compile(r"^(?:local)?rule (\w+):\n((?: {4}.*\n)*)", re.MULTILINE)
_SLIDE = re.compile(r"wildcards: slide_id=(\S+)")


@pytest.fixture
def preset():
    """``preset(name)``: the study config ``workflows/<name>/config.yaml`` as a dict."""
    return lambda name: yaml.safe_load((REPO / "workflows" / name / "config.yaml").read_text())


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
        config = preset(name)
        survival = config["train"]["task"] == "survival"
        sheet = tmp_path / config["samples"]
        (sheet.parent / "slides").mkdir(parents=True, exist_ok=True)
        sep = "\t" if sheet.suffix == ".tsv" else ","
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
