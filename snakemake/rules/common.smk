# Shared by the rules: the study's results layout, its sample sheet (validated), the stages' options and how a
# per-slide stage runs (one job per slide, or one job for the cohort with `batch: true`). The configuration
# itself is validated in the Snakefile before this file is read.

import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from pathattn.errors import PathattnError
from pathattn.io.samples import read_sample_sheet, read_table
from pathattn.workflow.layout import COHORT, SLIDE, StudyLayout

REPO = Path(workflow.basedir).parent
LAYOUT = StudyLayout(Path(config.get("results") or f"results/{config['study']}"))
TASK = config["train"]["task"]
TASK_COLUMNS = {"classification": ("label",), "survival": ("time", "event")}
NUMERIC_COLUMNS = ("time", "event", "mpp")
BATCH = config["batch"]  # tile, extract and heatmap: one job for the cohort instead of one per slide
JOB = COHORT if BATCH else SLIDE  # the name of a per-slide stage's job: its log is logs/<rule>/<JOB>.log

# the conda environment of the rules (envs/pathattn.yaml) installs pathattn from this repository
os.environ.setdefault("PATHATTN_REPO", str(REPO))


def repo_file(path, key):
    """A file of the repository (``configs/...``), absolute; an error naming the config key when missing."""
    resolved = Path(path) if Path(path).is_absolute() else REPO / path
    if not resolved.is_file():
        raise WorkflowError(f"config key {key}: file not found: {path} (paths into configs/ are relative to {REPO})")
    return str(resolved)


def data_path(path, key, kind="file"):
    """A data path of the config, relative to the working directory; an error naming the key when missing."""
    exists = Path(path).is_file() if kind == "file" else Path(path).is_dir()
    if not exists:
        raise WorkflowError(
            f"config key {key}: {kind} not found: {path} (data paths are relative to the working directory "
            f"{Path.cwd()}; run snakemake with --directory, or fix the path)"
        )
    return path


def as_record(row):
    """A sample-sheet row as the schema sees it: empty cells left out, numeric columns as numbers."""
    record = {}
    for column, text in row.items():
        if text == "":
            continue
        try:
            record[column] = float(text) if column in NUMERIC_COLUMNS else text
        except ValueError:
            record[column] = text  # the schema names the column and its bad value
    return record


def check_row(sheet, line, row):
    """Validate one row against schemas/samples.schema.yaml and the columns train.task needs."""
    record = as_record(row)
    missing = [column for column in TASK_COLUMNS[TASK] if column not in record]
    if missing:
        raise WorkflowError(
            f"sample sheet {sheet} line {line}: train.task {TASK} needs a value in column(s) {', '.join(missing)}"
        )
    check_schema(record, "samples.schema.yaml", f"sample sheet {sheet} line {line}")


def read_samples(sheet):
    """Slide id → slide file of a validated sample sheet (paths relative to the sheet's folder)."""
    try:
        rows = read_table(sheet)
        for line, row in enumerate(rows, start=2):
            check_row(sheet, line, row)
        return {entry.slide_id: str(entry.path) for entry in read_sample_sheet(sheet)}
    except PathattnError as err:
        raise WorkflowError(f"config key samples: {err}") from None


def config_args(files):
    """``--config FILE`` for each file, in order (later files override earlier ones)."""
    return " ".join(f"--config {file}" for file in files)


def every_slide(path):
    """The files of every slide of the sample sheet: ``path`` is a per-slide method of LAYOUT."""
    return [path(slide_id) for slide_id in SLIDE_IDS]


def job_files(path):
    """The files one job of a per-slide stage makes or reads: the ``{slide_id}`` pattern, or every slide's (batch)."""
    return every_slide(path) if BATCH else path()


def slide_reports(path, caption, category):
    """``job_files(path)`` flagged for ``snakemake --report``, each labelled with its slide."""
    if BATCH:
        return [report(path(s), caption=caption, category=category, labels={"slide": s}) for s in SLIDE_IDS]
    return report(path(), caption=caption, category=category, labels={"slide": SLIDE})


def top_patches(slide_id=SLIDE):
    """The GeoJSON file of a slide's heatmap.top_k patches of highest attention."""
    return LAYOUT.top_patches(TOP_K, slide_id)


def job_slides(wildcards):
    """An input function: the slide files of a per-slide stage's job (its slide, or every slide)."""
    return list(SLIDES.values()) if BATCH else SLIDES[wildcards.slide_id]


def slide_ids_arg(wildcards):
    """A params function: ``--slide-ids`` of a per-slide job's slide (nothing for a batch job: every slide)."""
    return "" if BATCH else f"--slide-ids {wildcards.slide_id}"


SAMPLE_SHEET = data_path(config["samples"], "samples")
SLIDES = read_samples(SAMPLE_SHEET)
SLIDE_IDS = sorted(SLIDES)
ANNOTATIONS = config["annotations"] and data_path(config["annotations"], "annotations", "folder")
ANNOTATION_ARGS = f"--annotations {ANNOTATIONS}" if ANNOTATIONS else ""
WEIGHTS = config["extract"]["weights"]  # an input of extract: Snakemake names it when missing
TILE_CONFIG = repo_file(config["tile"]["config"], "tile.config")
TILE_THREADS = config["tile"]["threads"] if BATCH else 1  # a per-slide job tiles one slide
EXTRACT_CONFIG = repo_file(config["extract"]["config"], "extract.config")
TRAIN_CONFIGS = [repo_file(path, "train.configs") for path in config["train"]["configs"]]
TOP_K = config["heatmap"]["top_k"]
EXPLAIN = config["explain"]["activate"]
EVALUATE = config["evaluate"]["activate"]
if EVALUATE and not ANNOTATIONS:
    raise WorkflowError(
        "config key evaluate.activate: localization is scored against tumor annotations; set the config key "
        "annotations to their folder, or evaluate.activate: false"
    )
WSOL_CONFIG = repo_file(config["evaluate"]["config"], "evaluate.config")

wildcard_constraints:
    slide_id="[^/]+",
