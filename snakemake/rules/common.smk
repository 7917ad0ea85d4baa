# Shared by the rules: the study's folders, its sample sheet (validated) and the options of each stage.
# The configuration itself is validated in the Snakefile before this file is read.

import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from pathattn.errors import PathattnError
from pathattn.io.samples import read_sample_sheet, read_table

REPO = Path(workflow.basedir).parent
RESULTS = config.get("results") or f"results/{config['study']}"
TASK = config["train"]["task"]
TASK_COLUMNS = {"classification": ("label",), "survival": ("time", "event")}
NUMERIC_COLUMNS = ("time", "event", "mpp")

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


def folder_of(kind, name, up=1):
    """A params function: the folder ``up`` levels above the rule's input or output ``name`` (its first file)."""

    def folder(wildcards, input, output):
        files = getattr(input if kind == "input" else output, name)
        return str(Path(files if isinstance(files, str) else files[0]).parents[up - 1])

    return folder


def config_args(files):
    """``--config FILE`` for each file, in order (later files override earlier ones)."""
    return " ".join(f"--config {file}" for file in files)


SAMPLE_SHEET = data_path(config["samples"], "samples")
SLIDES = read_samples(SAMPLE_SHEET)
SLIDE_IDS = sorted(SLIDES)
ANNOTATIONS = config["annotations"] and data_path(config["annotations"], "annotations", "folder")
ANNOTATION_ARGS = f"--annotations {ANNOTATIONS}" if ANNOTATIONS else ""
WEIGHTS = config["extract"]["weights"]  # an input of extract: Snakemake names it when missing
TILE_CONFIG = repo_file(config["tile"]["config"], "tile.config")
EXTRACT_CONFIG = repo_file(config["extract"]["config"], "extract.config")
TRAIN_CONFIGS = [repo_file(path, "train.configs") for path in config["train"]["configs"]]
TOP_K = config["heatmap"]["top_k"]

wildcard_constraints:
    slide_id="[^/]+",
