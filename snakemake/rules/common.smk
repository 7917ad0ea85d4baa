# Shared by the rules: the study's results layout, its sample sheet (validated), the stages' options and how a
# per-slide stage runs (one job per slide, or one job for the cohort with `batch: true`). The configuration
# itself is validated in the Snakefile before this file is read.
#
# `kind: volumes` makes the same rules serve CT/MRI/PET studies: the sheet lists studies (volume_id, one
# <modality>_path column per image, label_path), the volume id stands for the slide id (the wildcard
# {slide_id} holds it, as --slide-ids does in every pathattn command), tiling writes foreground/{id}.nii.gz
# instead of tissue GeoJSON, there is no heatmap job, and evaluate scores the attention against the label
# volumes (no annotations).
#
# Three kinds of models, each optional: attention-MIL over the tiles (`train`, with `extract`: features, training,
# out-of-fold attention, heatmaps, explain, evaluate), image classifiers on the slices of a volume tiling
# (`classify.activate`: named cross-validation runs, then `cams.activate`: their maps scored against the lesions)
# and segmentation networks on the label volumes (`segment.activate`: named runs of pathattn segment fit, which
# reads the volumes itself: a study that only segments needs no tiling, and its `all` makes none).

import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from pathattn.errors import PathattnError
from pathattn.io.samples import read_sample_sheet, read_table
from pathattn.workflow.layout import COHORT, FOLD, RUN, SLIDE, StudyLayout

# the columns that are not images in a volume sheet, as in pathattn.io.volume_samples (which imports torch)
NOT_IMAGE_COLUMNS = ("slide_path", "label_path")
SAMPLE_SCHEMAS = {"slides": "samples.schema.yaml", "volumes": "volume_samples.schema.yaml"}
DEFAULT_CONFIGS = {  # a stage's --config file when the study config names none, by kind
    "tile": {"slides": "configs/tile/default.yaml", "volumes": "configs/tile/volume_pet_ct_axial.yaml"},
    "evaluate": {"slides": "configs/evaluate/wsol.yaml", "volumes": "configs/evaluate/wsol_volumes.yaml"},
}

REPO = Path(workflow.basedir).parent
LAYOUT = StudyLayout(Path(config.get("results") or f"results/{config['study']}"))
KIND = config["kind"]  # slides or volumes
VOLUMES = KIND == "volumes"
MIL = "train" in config  # attention-MIL over the tiles (extract → train → predict → ...)
HEATMAPS = MIL and not VOLUMES  # a volume's attention is drawn by the report (along the slice axis)
CLASSIFY = config["classify"]["activate"]  # image classifiers on the slices (classify → cams → their WSOL)
SEGMENT = config["segment"]["activate"]  # segmentation networks on the label volumes (no tiling)
if not (MIL or CLASSIFY or SEGMENT):
    raise WorkflowError(
        "config: nothing to train; give train (with extract: attention-MIL over the tiles), "
        "classify.activate: true with classify.runs (image classifiers on the slices of a volume tiling) and/or "
        "segment.activate: true with segment.runs (segmentation networks on the label volumes)"
    )
TILING = MIL or CLASSIFY  # the tiles feed attention-MIL and the classifiers; segmentation reads the volumes
# the sheet's task columns: train.task's with MIL, a class with the classifiers, none to segment alone
TASK = config["train"]["task"] if MIL else "classification" if CLASSIFY else None
TASK_COLUMNS = {"classification": ("label",), "survival": ("time", "event"), None: ()}
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


def stage_config(stage):
    """The ``--config`` file of ``stage`` (``tile``, ``evaluate``): the study's, else the default of its kind."""
    return repo_file(config[stage].get("config") or DEFAULT_CONFIGS[stage][KIND], f"{stage}.config")


def image_columns(columns):
    """The ``<modality>_path`` columns of a volume sheet (ct_path, pet_path, ...), in order."""
    return [c for c in columns if c.endswith("_path") and c not in NOT_IMAGE_COLUMNS and len(c) > len("_path")]


def sheet_kind(columns):
    """What a sheet with these columns lists, as ``pathattn tile`` decides it (``slides`` or ``volumes``)."""
    listed = "slide_path" not in columns and (image_columns(columns) or "volume_id" in columns)
    return "volumes" if listed else "slides"


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
    """Validate one row against the schema of its kind (schemas/*samples.schema.yaml) and train.task's columns."""
    record = as_record(row)
    missing = [column for column in TASK_COLUMNS[TASK] if column not in record]
    if missing:
        raise WorkflowError(
            f"sample sheet {sheet} line {line}: train.task {TASK} needs a value in column(s) {', '.join(missing)}"
        )
    check_schema(record, SAMPLE_SCHEMAS[KIND], f"sample sheet {sheet} line {line}")


def read_volumes(sheet, rows):
    """Volume id → its images and label volume (absolute; relative paths are relative to the sheet's folder)."""
    columns = image_columns(rows[0])
    if not columns:
        raise WorkflowError(
            f"sample sheet {sheet}: no image column; name one column per modality <modality>_path (ct_path, pet_path)"
        )
    volumes = {}
    for line, row in enumerate(rows, start=2):
        if not any(row[column] for column in columns):
            raise WorkflowError(
                f"sample sheet {sheet} line {line}: every image cell ({', '.join(columns)}) is empty; give an image"
            )
        if row["volume_id"] in volumes:
            volume_id = row["volume_id"]
            raise WorkflowError(f"sample sheet {sheet} line {line}: two studies share the volume_id '{volume_id}'")
        files = [row[column] for column in [*columns, "label_path"] if row.get(column)]
        volumes[row["volume_id"]] = [str((Path(sheet).parent / file).absolute()) for file in files]
    return volumes


def read_samples(sheet):
    """Id → input files of a validated sample sheet: a slide's file, or a study's images and label volume."""
    try:
        rows = read_table(sheet)
        listed = sheet_kind(rows[0])
        if listed != KIND:
            columns = "volume_id or <modality>_path columns" if listed == "volumes" else "a slide_path column"
            raise WorkflowError(
                f"config key kind: the sample sheet {sheet} lists {listed} ({columns}); set kind: {listed}"
            )
        for line, row in enumerate(rows, start=2):
            check_row(sheet, line, row)
        if VOLUMES:
            return read_volumes(sheet, rows)
        return {entry.slide_id: [str(entry.path)] for entry in read_sample_sheet(sheet)}
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


def mask(slide_id=SLIDE):
    """The tiling's mask of an item: a slide's tissue GeoJSON, or a volume's foreground NIfTI."""
    return LAYOUT.mask(KIND, slide_id)


def top_patches(slide_id=SLIDE):
    """The GeoJSON file of a slide's heatmap.top_k patches of highest attention."""
    return LAYOUT.top_patches(TOP_K, slide_id)


def job_slides(wildcards):
    """An input function: the input files of a per-slide stage's job (its slide or volume, or every one)."""
    return [file for files in SLIDES.values() for file in files] if BATCH else SLIDES[wildcards.slide_id]


def slide_ids_arg(wildcards):
    """A params function: ``--slide-ids`` of a per-slide job's slide (nothing for a batch job: every slide)."""
    return "" if BATCH else f"--slide-ids {wildcards.slide_id}"


SAMPLE_SHEET = data_path(config["samples"], "samples")
SLIDES = read_samples(SAMPLE_SHEET)  # slide or volume id → its files
SLIDE_IDS = sorted(SLIDES)
if VOLUMES and config["annotations"]:
    raise WorkflowError(
        "config key annotations: GeoJSON annotations are for slides; a volume study takes its ground truth from "
        "the sample sheet's label_path column (remove the key, or set kind: slides)"
    )
ANNOTATIONS = config["annotations"] and data_path(config["annotations"], "annotations", "folder")
LABELLED = VOLUMES and any(row.get("label_path") for row in read_table(SAMPLE_SHEET))  # the volumes' ground truth
ANNOTATION_ARGS = f"--annotations {ANNOTATIONS}" if ANNOTATIONS else ""
TILE_CONFIG = stage_config("tile")
TILE_THREADS = config["tile"]["threads"] if BATCH else 1  # a per-slide job tiles one slide
if MIL:
    WEIGHTS = config["extract"]["weights"]  # an input of extract: Snakemake names it when missing
    EXTRACT_CONFIG = repo_file(config["extract"]["config"], "extract.config")
    TRAIN_CONFIGS = [repo_file(path, "train.configs") for path in config["train"]["configs"]]
TOP_K = config["heatmap"]["top_k"]
EXPLAIN = MIL and config["explain"]["activate"]
EVALUATE = MIL and config["evaluate"]["activate"]
EVALUABLE = MIL and (LABELLED if VOLUMES else bool(ANNOTATIONS))  # a ground truth to score the attention against
if EVALUATE and not EVALUABLE:
    raise WorkflowError(
        "config key evaluate.activate: localization on volumes is scored against their label volumes; give them "
        "in a label_path column of the sample sheet, or set evaluate.activate: false"
        if VOLUMES
        else "config key evaluate.activate: localization is scored against tumor annotations; set the config key "
        "annotations to their folder, or evaluate.activate: false"
    )
WSOL_CONFIG = stage_config("evaluate")


def classify_runs():
    """Run name → its ``classify fit`` config file, checked (an error naming the key when unusable)."""
    if not VOLUMES:
        raise WorkflowError(
            "config key classify.activate: the workflow's image classifiers train on the slices of a volume study "
            "(kind: volumes); for a folder of images run 'pathattn classify fit --images SHEET' (docs/classify.md)"
        )
    if not LABELLED:
        raise WorkflowError(
            "config key classify.activate: a slice's label comes from the label volume; give the studies' lesion "
            "masks in a label_path column of the sample sheet"
        )
    runs = config["classify"]["runs"]
    if not runs:
        raise WorkflowError("config key classify.runs: name at least one run, e.g. resnet18: {config: "
                            "configs/classify/resnet18_pet.yaml}")  # fmt: skip
    return {name: repo_file(run["config"], f"classify.runs.{name}.config") for name, run in runs.items()}


CLASSIFY_CONFIGS = classify_runs() if CLASSIFY else {}
CAMS = config["cams"]["activate"]
CAM_RUNS = config["cams"]["runs"] or list(CLASSIFY_CONFIGS)  # a list of names, or name → {extra}
CAM_FOLDS = config["cams"]["folds"]
if CAMS and not CLASSIFY:
    raise WorkflowError("config key cams.activate: the maps explain the classify runs; set classify.activate: true")
if CAMS and set(CAM_RUNS) - set(CLASSIFY_CONFIGS):
    unknown = sorted(set(CAM_RUNS) - set(CLASSIFY_CONFIGS))[0]
    raise WorkflowError(f"config key cams.runs: {unknown} is not a classify run; one of {', '.join(CLASSIFY_CONFIGS)}")


def classify_extra(wildcards):
    """A params function: the run's own extra options, then classify.extra."""
    return f"{config['classify']['runs'][wildcards.run]['extra']} {config['classify']['extra']}".strip()


def cams_extra(wildcards):
    """A params function: cams.extra, then the run's own extra options (``cams.runs`` as a mapping)."""
    own = CAM_RUNS[wildcards.run].get("extra", "") if isinstance(CAM_RUNS, dict) else ""
    return f"{config['cams']['extra']} {own}".strip()


def every_cam_evaluation():
    """The localization metrics of every explained run and fold (``cams``' WSOL)."""
    return [LAYOUT.cams_wsol(run, fold) / "metrics.json" for run in CAM_RUNS for fold in CAM_FOLDS] if CAMS else []


def every_classify_run():
    """The metrics of every classify run."""
    return [LAYOUT.classify_metrics(run) for run in CLASSIFY_CONFIGS]


def segment_runs():
    """Run name → its ``segment fit`` config file, checked (an error naming the key when unusable)."""
    if not VOLUMES:
        raise WorkflowError(
            "config key segment.activate: the workflow's segmentation networks train on the label volumes of a "
            "volume study (kind: volumes, a label_path column); slides have no label volumes"
        )
    unlabelled = [row["volume_id"] for row in read_table(SAMPLE_SHEET) if not row.get("label_path")]
    if unlabelled:
        raise WorkflowError(
            "config key segment.activate: a segmentation network learns from the label volumes; give every "
            f"study's lesion mask in a label_path column of the sample sheet (none for {', '.join(unlabelled[:5])}"
            f"{', ...' if len(unlabelled) > 5 else ''})"
        )
    runs = config["segment"]["runs"]
    if not runs:
        raise WorkflowError("config key segment.runs: name at least one run, e.g. attention_unet: {config: "
                            "configs/segment/attention_unet.yaml}")  # fmt: skip
    return {name: repo_file(run["config"], f"segment.runs.{name}.config") for name, run in runs.items()}


SEGMENT_CONFIGS = segment_runs() if SEGMENT else {}
VOLUME_FILES = [file for files in SLIDES.values() for file in files]  # every study's images and label volume


def segment_extra(wildcards):
    """A params function: the run's own extra options, then segment.extra."""
    return f"{config['segment']['runs'][wildcards.run]['extra']} {config['segment']['extra']}".strip()


def every_segment_run():
    """The metrics of every segment run."""
    return [LAYOUT.segment_metrics(run) for run in SEGMENT_CONFIGS]


RUNS = sorted(set(CLASSIFY_CONFIGS) | set(SEGMENT_CONFIGS))  # the {run} wildcard: a classify or segment run

wildcard_constraints:
    slide_id="[^/]+",
    run="|".join(re.escape(run) for run in RUNS) or "(?!)",
    fold="[0-9]+",
