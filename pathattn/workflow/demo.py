"""The demo: generate the synthetic cohort and run the whole Snakemake workflow on it.

The cohort goes to ``OUT/cohort`` and the workflow (``snakemake/Snakefile`` with the study config
``workflows/demo/config.yaml`` and the local profile) runs with ``OUT`` as its working directory, so the
results land in ``OUT/results/demo`` and Snakemake's state in ``OUT/.snakemake``. Both steps are commands
(``pathattn synth wsi``, ``snakemake``) run beside this Python, and both resume: run the demo again and only
what is missing or out of date is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pathattn.batch import print_error
from pathattn.errors import PathattnError
from pathattn.workflow.layout import StudyLayout


@dataclass(frozen=True)
class DemoCohort:
    """The synthetic cohort of the demo (``pathattn synth wsi``).

    Args:
        n_slides: slides in the cohort.
        seed: seed of the cohort.
        width: level-0 width of the slides, pixels.
        height: level-0 height of the slides, pixels.
    """

    n_slides: int
    seed: int
    width: int
    height: int

    def command(self, folder: Path) -> list[str]:
        """The ``pathattn synth wsi`` command line that writes the cohort into ``folder``."""
        return [
            executable("pathattn"), "synth", "wsi", "--out", str(folder), "--n-slides", str(self.n_slides),
            "--seed", str(self.seed), "--width", str(self.width), "--height", str(self.height),
        ]  # fmt: skip


def repository() -> Path:
    """The checkout pathattn runs from, which holds the workflow (``snakemake/``), ``configs/`` and ``workflows/``.

    Raises:
        PathattnError: pathattn is installed without its repository (not ``pip install -e``).
    """
    root = Path(__file__).resolve().parents[2]
    if not (root / "snakemake" / "Snakefile").is_file():
        raise PathattnError(
            f"the workflow (snakemake/Snakefile) is not beside the installed pathattn ({root}); run the demo from a "
            "checkout of the repository installed with 'pip install -e .' (what 'make demo' does)"
        )
    return root


def study_layout(configfile: Path) -> StudyLayout:
    """The results layout of a study config (``results``, or ``results/<study>``), relative to the run folder.

    Raises:
        PathattnError: the file is missing or is not a study config.
    """
    try:
        study = yaml.safe_load(configfile.read_text(encoding="utf-8"))
        return StudyLayout(Path(study.get("results") or f"results/{study['study']}"))
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        raise PathattnError(
            f"--configfile {configfile} is not a study config with a 'study' key; see workflows/demo/config.yaml"
        ) from None


def executable(name: str) -> str:
    """The script ``name`` of this Python's environment (else the one on PATH).

    Raises:
        PathattnError: no such executable.
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise PathattnError(f"{name} is not installed; install pathattn with its dependencies (make install)")
    return found


def snakemake_command(repo: Path, out: Path, configfile: Path, cores: int | None) -> list[str]:
    """The Snakemake command line of the demo: the workflow, its config and the local profile, run in ``out``.

    Raises:
        PathattnError: no ``snakemake`` executable beside this Python or on PATH.
    """
    return [
        executable("snakemake"), "-s", str(repo / "snakemake" / "Snakefile"), "--configfile", str(configfile),
        "--directory", str(out), "--workflow-profile", str(repo / "snakemake" / "profiles" / "local"),
        "--cores", str(cores) if cores else "all",
    ]  # fmt: skip


def _run(command: list[str]) -> int:
    """Echo ``command`` to stderr and run it with this Python's scripts first on PATH; its exit code."""
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run(command, env=env, check=False).returncode


def run_demo(
    out: str | Path, cohort: DemoCohort, cores: int | None = None, configfile: str | Path | None = None
) -> int:
    """Generate the cohort (resumable), run the workflow, and print where the report is.

    Args:
        out: the working folder: ``cohort/``, the results folder and Snakemake's state.
        cohort: the synthetic cohort.
        cores: cores for Snakemake (None: all).
        configfile: the study config (default: the repository's ``workflows/demo/config.yaml``).

    Returns:
        0 when the workflow finished; the exit code of ``pathattn synth`` when it failed (2 for bad options);
        1 when the workflow failed.

    Raises:
        PathattnError: bad options, a config that is not a study config, or no repository beside pathattn.
    """
    if cores is not None and cores < 1:
        raise PathattnError("--cores must be at least 1 (or left out: all cores)")
    repo = repository()
    configfile = Path(configfile).resolve() if configfile else repo / "workflows" / "demo" / "config.yaml"
    layout = study_layout(configfile)
    out = Path(out).resolve()
    workflow = snakemake_command(repo, out, configfile, cores)
    code = _run(cohort.command(out / "cohort"))
    if code:
        return code
    code = _run(workflow)
    if code:
        print_error("demo", f"the workflow failed (snakemake exit {code}); each job's log is under "
                    f"{out / layout.logs}, and running the demo again resumes")  # fmt: skip
        return 1
    print(f"demo finished: report {out / layout.report}")
    return 0
