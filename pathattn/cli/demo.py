"""``pathattn demo``: generate the synthetic cohort and run the whole Snakemake workflow on it.

The cohort goes to ``OUT/cohort`` and the workflow (``snakemake/Snakefile`` with the study config
``workflows/demo/config.yaml`` and the local profile) runs with ``OUT`` as its working directory, so the
results land in ``OUT/results/demo`` and Snakemake's state in ``OUT/.snakemake``. Everything resumes:
run it again and only what is missing or out of date is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser, Namespace

from pathattn.errors import PathattnError

HELP = "generate the synthetic cohort and run the whole workflow on it, with a report (what 'make demo' runs)"


def register(subcommands) -> None:  # noqa: ANN001 - jsonargparse's subcommands action
    """Add the ``demo`` parser."""
    p = ArgumentParser(description=HELP, exit_on_error=False)
    p.add_argument("--out", type=str, default="demo_out",
                   help="working folder: cohort/, results/<study>/ and Snakemake's state")  # fmt: skip
    p.add_argument("--n-slides", type=int, default=40, help="slides in the synthetic cohort")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic cohort")
    p.add_argument("--width", type=int, default=6144, help="level-0 width of the synthetic slides, pixels")
    p.add_argument("--height", type=int, default=4608, help="level-0 height of the synthetic slides, pixels")
    p.add_argument("--cores", type=int | None, default=None, help="cores for Snakemake (default: all)")
    p.add_argument("--configfile", type=str | None, default=None,
                   help="study config (default: the repository's workflows/demo/config.yaml)")  # fmt: skip
    subcommands.add_subcommand("demo", p, help=HELP)


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


def results_folder(configfile: Path) -> Path:
    """The results folder a study config names (``results``, or ``results/<study>``), relative to the run folder.

    Raises:
        PathattnError: the file is missing or is not a study config.
    """
    try:
        study = yaml.safe_load(configfile.read_text(encoding="utf-8"))
        return Path(study.get("results") or f"results/{study['study']}")
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        raise PathattnError(
            f"--configfile {configfile} is not a study config with a 'study' key; see workflows/demo/config.yaml"
        ) from None


def snakemake_command(repo: Path, out: Path, configfile: Path, cores: int | None) -> list[str]:
    """The Snakemake command line of the demo: the workflow, its config and the local profile, run in ``out``.

    Raises:
        PathattnError: no ``snakemake`` executable beside this Python or on PATH.
    """
    beside = Path(sys.executable).parent / "snakemake"
    executable = str(beside) if beside.is_file() else shutil.which("snakemake")
    if executable is None:
        raise PathattnError("snakemake is not installed; install pathattn with its dependencies (make install)")
    return [
        executable, "-s", str(repo / "snakemake" / "Snakefile"), "--configfile", str(configfile),
        "--directory", str(out), "--workflow-profile", str(repo / "snakemake" / "profiles" / "local"),
        "--cores", str(cores) if cores else "all",
    ]  # fmt: skip


def _environment() -> dict[str, str]:
    """This process's environment with this Python's scripts (``pathattn``, ``snakemake``) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(cfg: Namespace) -> int:
    """Generate the cohort (resumable), run the workflow, and print where the report is; exit 1 if it failed."""
    from pathattn.cli.main import main
    from pathattn.cli.summary import error

    if cfg.cores is not None and cfg.cores < 1:
        raise PathattnError("--cores must be at least 1 (or left out: all cores)")
    repo = repository()
    configfile = Path(cfg.configfile).resolve() if cfg.configfile else repo / "workflows" / "demo" / "config.yaml"
    report = results_folder(configfile) / "report.html"
    out = Path(cfg.out).resolve()
    command = snakemake_command(repo, out, configfile, cfg.cores)
    synth = ["synth", "wsi", "--out", str(out / "cohort"), "--n-slides", str(cfg.n_slides), "--seed", str(cfg.seed),
             "--width", str(cfg.width), "--height", str(cfg.height)]  # fmt: skip
    print(f"$ pathattn {' '.join(synth)}", file=sys.stderr)
    code = main(synth)
    if code:
        return code
    print(f"$ {' '.join(command)}", file=sys.stderr, flush=True)
    code = subprocess.run(command, env=_environment(), check=False).returncode
    if code:
        error("demo", f"the workflow failed (snakemake exit {code}); each job's log is under "
              f"{out / report.parent / 'logs'}, and running the demo again resumes")  # fmt: skip
        return 1
    print(f"demo finished: report {out / report}")
    return 0
