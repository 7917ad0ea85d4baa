"""The demo: generate the synthetic cohorts and run the whole Snakemake workflow on each.

Studies, each a cohort and a study config run by the same workflow: **slides** (``pathattn synth wsi`` into
``OUT/cohort``, ``workflows/demo/config.yaml``) and **volumes** (``pathattn synth volume`` into
``OUT/volume_cohort``, ``workflows/demo_volumes/config.yaml``: PET/CT axial slices, ``kind: volumes``, with
attention-MIL over each study's slices and, beside it, slice classifiers (ResNet-18 by patient and by slice,
MEDUSA) whose CAMs and maps are scored against the lesions) run by default (``make demo``);
**volume_segmentation** (the same PET/CT cohort, ``workflows/demo_segmentation/config.yaml``: Attention U-Net
beside the parameter-matched U-Net, their masks, gate maps and metrics) runs when asked for
(``--study volume_segmentation``): its training does not fit in the default demo's time on two cores.
The workflow (``snakemake/Snakefile`` with the study's config and the local profile) runs with ``OUT`` as its
working directory, so the results land in ``OUT/results/<study>`` and Snakemake's state in ``OUT/.snakemake``.
Every step is a command (``pathattn synth``, ``snakemake``) run beside this Python, and every step resumes: run
the demo again and only what is missing or out of date is made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from pathattn.batch import print_error
from pathattn.errors import PathattnError
from pathattn.workflow.layout import StudyLayout

StudyName = Literal["slides", "volumes", "volume_segmentation"]
STUDY_CHOICES = ("slides", "volumes", "volume_segmentation", "all")
ALL = ("slides", "volumes")  # what --study all (make demo) runs
COHORT_FOLDERS: dict[str, str] = {"slides": "cohort", "volumes": "volume_cohort",
                                  "volume_segmentation": "volume_cohort"}  # fmt: skip
CONFIGS: dict[str, str] = {"slides": "workflows/demo/config.yaml", "volumes": "workflows/demo_volumes/config.yaml",
                           "volume_segmentation": "workflows/demo_segmentation/config.yaml"}  # fmt: skip
CONFIG_OPTIONS = {"slides": "--configfile", "volumes": "--volume-configfile",
                  "volume_segmentation": "--segmentation-configfile"}  # fmt: skip


@dataclass(frozen=True)
class DemoCohort:
    """The synthetic slide cohort of the demo (``pathattn synth wsi``).

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


@dataclass(frozen=True)
class VolumeCohort:
    """The synthetic PET/CT cohort of the demo (``pathattn synth volume``; about 1.3 studies per patient).

    Args:
        n_patients: patients in the cohort (half with lesions).
        seed: seed of the cohort.
        shape: voxels (I, J, K) of every CT volume.
    """

    n_patients: int
    seed: int
    shape: tuple[int, int, int] = (96, 96, 40)

    def command(self, folder: Path) -> list[str]:
        """The ``pathattn synth volume`` command line that writes the cohort into ``folder``."""
        return [
            executable("pathattn"), "synth", "volume", "--out", str(folder), "--n-patients", str(self.n_patients),
            "--seed", str(self.seed), "--shape", "[" + ",".join(str(n) for n in self.shape) + "]",
        ]  # fmt: skip


@dataclass(frozen=True)
class DemoStudy:
    """One study of the demo: a synthetic cohort and the study config the workflow runs on it.

    Args:
        name: ``slides``, ``volumes`` or ``volume_segmentation``; the cohort goes to ``OUT/<COHORT_FOLDERS[name]>``.
        cohort: the generator of the cohort.
        configfile: the study config (None: the repository's ``CONFIGS[name]``).
    """

    name: StudyName
    cohort: DemoCohort | VolumeCohort
    configfile: str | Path | None = None

    @property
    def option(self) -> str:
        """The ``pathattn demo`` option that gives this study's config."""
        return CONFIG_OPTIONS[self.name]

    def config(self, repo: Path) -> Path:
        """The study config, absolute."""
        return Path(self.configfile).resolve() if self.configfile else repo / CONFIGS[self.name]


def demo_studies(
    study: str, slides: DemoCohort, volumes: VolumeCohort, configfiles: Mapping[str, str | Path | None] | None = None
) -> list[DemoStudy]:
    """The studies ``--study`` asks for, in the order they run (slides first; ``all``: :data:`ALL`).

    Args:
        study: one of :data:`STUDY_CHOICES`.
        slides: the slide cohort.
        volumes: the PET/CT cohort (of the volume and segmentation studies).
        configfiles: study name → its config file, where not the repository's.

    Raises:
        PathattnError: ``study`` is not one of :data:`STUDY_CHOICES`.
    """
    if study not in STUDY_CHOICES:
        raise PathattnError(f"--study must be one of {', '.join(STUDY_CHOICES)} (got {study!r})")
    names = ALL if study == "all" else (study,)
    files = configfiles or {}
    return [DemoStudy(name, slides if name == "slides" else volumes, files.get(name)) for name in names]


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


def study_layout(configfile: Path, option: str = "--configfile") -> StudyLayout:
    """The results layout of a study config (``results``, or ``results/<study>``), relative to the run folder.

    Args:
        configfile: the study config.
        option: the option that named it, for the error message.

    Raises:
        PathattnError: the file is missing or is not a study config.
    """
    try:
        study = yaml.safe_load(configfile.read_text(encoding="utf-8"))
        return StudyLayout(Path(study.get("results") or f"results/{study['study']}"))
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        raise PathattnError(
            f"{option} {configfile} is not a study config with a 'study' key; see workflows/demo/config.yaml"
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


def _run_study(repo: Path, out: Path, study: DemoStudy, layout: StudyLayout, cores: int | None) -> int:
    """Generate one study's cohort and run the workflow on it; 0, the exit code of ``pathattn synth``, or 1."""
    started = time.monotonic()
    code = _run(study.cohort.command(out / COHORT_FOLDERS[study.name]))
    if code:
        return code
    code = _run(snakemake_command(repo, out, study.config(repo), cores))
    if code:
        print_error("demo", f"the workflow failed (snakemake exit {code}); each job's log is under "
                    f"{out / layout.logs}, and running the demo again resumes")  # fmt: skip
        return 1
    print(f"demo: the {study.name} study took {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(f"demo finished: report {out / layout.report}", flush=True)
    return 0


def run_demo(out: str | Path, studies: Sequence[DemoStudy], cores: int | None = None) -> int:
    """Generate each study's cohort (resumable), run the workflow on it, and print where its report is.

    The studies run one after the other; the first that fails stops the demo.

    Args:
        out: the working folder: the cohorts, the results folders and Snakemake's state.
        studies: the studies, in order (:func:`demo_studies`).
        cores: cores for Snakemake (None: all).

    Returns:
        0 when every workflow finished; the exit code of ``pathattn synth`` when it failed (2 for bad options);
        1 when a workflow failed.

    Raises:
        PathattnError: bad options, a config that is not a study config, or no repository beside pathattn.
    """
    if cores is not None and cores < 1:
        raise PathattnError("--cores must be at least 1 (or left out: all cores)")
    repo = repository()
    layouts = [
        study_layout(study.config(repo), study.option) for study in studies
    ]  # every config checked before any work
    out = Path(out).resolve()
    for study, layout in zip(studies, layouts, strict=True):
        code = _run_study(repo, out, study, layout, cores)
        if code:
            return code
    return 0
