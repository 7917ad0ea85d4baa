"""The batch job of ``pathattn explain``: every slide of a feature folder under a checkpoint or a run.

Outputs under ``OUT`` (schema in docs/explain.md)::

    slides/{slide_id}.json       the slide's record (:func:`pathattn.explain.slide.explain_slide`), with
                                 HIPPO's keys optimized_class_index, model_outputs, ablated_patches
    figures/{slide_id}_*.png     curves, attention against effect, the thumbnail with the found patches
    summary.csv                  one row per slide: prediction, effects, correlation, flags
    cohort.csv, cohort.json      paired tests across slides, correlation summary, flag counts
    manifest.csv                 status per slide (done, skipped, failed with the error)

Every file is written atomically. A slide whose record exists with the same checkpoint and settings is
skipped (re-running resumes); a failing slide is recorded in the manifest and the others go on.
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.batch import Batch, BatchOutcome, BatchRow
from pathattn.errors import PathattnError
from pathattn.explain.cohort import cohort_tests, correlation_summary
from pathattn.explain.engine import BackendFallbackWarning, Explainer
from pathattn.explain.figures import write_slide_figures
from pathattn.explain.options import BackendName
from pathattn.explain.regions import patches_in_annotations
from pathattn.explain.slide import SlideInputs, SlideSettings, explain_slide
from pathattn.io.bags import find_bags, read_checked_bag
from pathattn.io.ids import check_id, output_path
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.io.runs import checkpoint_file, models_by_checkpoint, run_checkpoints
from pathattn.io.samples import read_sample_sheet, read_table, select_ids
from pathattn.models.trained import CheckpointFormat, TrainedModel


@dataclass(frozen=True)
class ExplainJob:
    """One ``pathattn explain`` run.

    Args:
        features: folder of feature files (``pathattn extract`` output).
        out: output folder (module docstring).
        checkpoint: one checkpoint for every slide (``pathattn train``, HIPPO or CLAM-SB); or
        run: a ``pathattn train`` run: each slide with its out-of-fold checkpoint.
        samples: sample sheet (labels for the summary; ``slide_path`` for thumbnails of moved slides).
        slide_ids: the slides to explain (default: all).
        annotations: folder of ``{slide_id}.geojson`` regions (QuPath GeoJSON, level-0 pixels); a slide
            without tumor needs a file without regions.
        annotation_classes: the region classes that count (default: every class).
        min_overlap: share of a patch inside a region to count as in it (0: any overlap).
        donors: slides whose patches (their annotated region, with annotations) are offered for insertion.
        backend: ``auto``, ``cached`` or ``generic``.
        device: where the model runs.
        checkpoint_format: the format of the checkpoints: ``auto`` (detected), ``pathattn``, ``hippo`` or
            ``clam_sb`` (:func:`pathattn.models.trained.load_trained`).
        figures: draw the figures.
        overwrite: redo slides whose records exist.
        settings: what to compute per slide.
    """

    features: Path
    out: Path
    checkpoint: Path | None = None
    run: Path | None = None
    samples: Path | None = None
    slide_ids: Sequence[str] | None = None
    annotations: Path | None = None
    annotation_classes: Sequence[str] | None = None
    min_overlap: float = 0.0
    donors: Sequence[str] = ()
    backend: BackendName = "auto"
    device: str = "cpu"
    checkpoint_format: CheckpointFormat = "auto"
    figures: bool = True
    overwrite: bool = False
    settings: SlideSettings = field(default_factory=SlideSettings)


@dataclass(kw_only=True)
class ExplainRow(BatchRow):
    """One row of the manifest."""

    n_patches: int = 0
    backend: str = ""
    checkpoint: str = ""
    record: str = ""


def _check(job: ExplainJob) -> None:
    if (job.checkpoint is None) == (job.run is None):
        raise PathattnError("give either --checkpoint (one model for every slide) or --run (out of fold), not both")
    if job.checkpoint is not None:
        checkpoint_file(job.checkpoint)
    if not Path(job.features).is_dir():
        raise PathattnError(f"--features folder not found: {job.features}; pass the output of 'pathattn extract'")
    if job.annotations is not None and not Path(job.annotations).is_dir():
        raise PathattnError(f"--annotations folder not found: {job.annotations}")
    if not 0.0 <= job.min_overlap <= 1.0:
        raise PathattnError(f"--min-overlap must be in [0, 1] (a share of a patch; 0: any), got {job.min_overlap}")
    if "region" in job.settings.methods and job.annotations is None:
        raise PathattnError("--method region needs --annotations DIR (a {slide_id}.geojson per slide)")
    if "insertion" in job.settings.methods and not job.donors:
        raise PathattnError("--method insertion needs --donors SLIDE_ID (the slides whose patches are inserted)")


def _checkpoints(job: ExplainJob, files: Mapping[str, Path]) -> dict[str, Path]:
    if job.run is not None:
        return select_ids(run_checkpoints(job.run), job.slide_ids, f"--run {job.run} (the slides it was trained on)")
    return dict.fromkeys(select_ids(files, job.slide_ids, f"--features {job.features}"), Path(job.checkpoint))


@dataclass
class _Slide:
    """A slide's bag and region, read once."""

    features: np.ndarray
    coords: np.ndarray | None
    patch_size: int | None
    recorded_slide: str | None
    region: np.ndarray | None = None
    geometry: Any = None


def _read(job: ExplainJob, slide_id: str, path: Path, dim: int, donor: bool = False) -> _Slide:
    """The bag of a feature file (finite, ``dim``-d features) and, with annotations, the patches of its region.

    Raises:
        PathattnError: unreadable, non-finite or ``dim``-mismatched features, a slide (not a donor) without an
            annotation file, or annotations without coordinates.
    """
    bag = read_checked_bag(path, dim, "the model takes")
    tiling = bag.attrs.get("coords", {})
    patch_size = tiling.get("patch_size_level0") or bag.attrs.get("patch_size_level0")
    slide = _Slide(bag.features, bag.coords, patch_size, tiling.get("slide_path"))
    annotation = Path(job.annotations) / f"{slide_id}.geojson" if job.annotations is not None else None
    if annotation is None or len(slide.features) == 0 or (donor and not annotation.is_file()):
        return slide
    if not annotation.is_file():
        raise PathattnError(f"no annotation file {annotation}; add one (without regions for a slide without tumor)")
    if bag.coords is None or not patch_size:
        raise PathattnError(f"{path} has no patch coordinates to place the annotations on; re-extract it")
    slide.region, slide.geometry = patches_in_annotations(
        bag.coords, int(patch_size), annotation, job.annotation_classes, job.min_overlap, allow_none=True
    )
    return slide


def _slide_path(slide_id: str, slide: _Slide, paths: Mapping[str, Path]) -> Path | None:
    """The slide file for the thumbnail: the sample sheet's, else the one recorded at tiling (if it exists)."""
    if slide_id in paths:
        return paths[slide_id]
    recorded = slide.recorded_slide
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def _donor(
    job: ExplainJob, slide_id: str, files: Mapping[str, Path], dim: int
) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The first donor that is not the slide itself: its id, the offered patches' indices and their features.

    The offered patches are the donor's annotated region when it has one, else all its patches.
    """
    donor_id = next((d for d in job.donors if d != slide_id), None)
    if donor_id is None or "insertion" not in job.settings.methods:
        return None
    if donor_id not in files:
        raise PathattnError(f"--donors {donor_id} has no feature file in {job.features}")
    donor = _read(job, donor_id, files[donor_id], dim, donor=True)
    offered = donor.region if donor.region is not None and len(donor.region) else np.arange(len(donor.features))
    return donor_id, offered, donor.features[offered]


def _is_current(path: Path, checkpoint: Path, settings: SlideSettings) -> bool:
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("checkpoint") == str(checkpoint) and record.get("settings") == settings.as_dict()


def explain_one(job: ExplainJob, model: TrainedModel, slide_id: str, checkpoint: Path,
                files: Mapping[str, Path], paths: Mapping[str, Path]) -> ExplainRow:  # fmt: skip
    """Explain one slide and write its record and figures (skipped when its record is current); errors propagate."""
    target = output_path(job.out, "slides", f"{check_id(slide_id)}.json")
    row = ExplainRow(slide_id, checkpoint=str(checkpoint), record=str(target))
    if not job.overwrite and _is_current(target, checkpoint, job.settings):
        row.status = "skipped"
        return row
    slide = _read(job, slide_id, files[slide_id], model.in_dim)
    if len(slide.features) == 0:
        row.status = "empty"
        return row
    donor = _donor(job, slide_id, files, model.in_dim)
    explainer = Explainer(model, slide.features, donors=None if donor is None else donor[2], backend=job.backend)
    inputs = SlideInputs(slide_id, slide.coords, slide.region, None if donor is None else donor[:2])
    record = explain_slide(explainer, inputs, job.settings)
    record["checkpoint"] = str(checkpoint)
    if job.figures:
        record["figures"] = write_slide_figures(
            record, Path(job.out) / "figures", slide_path=_slide_path(slide_id, slide, paths),
            coords=slide.coords, patch_size_level0=slide.patch_size, region=slide.geometry,
        )  # fmt: skip
    write_json(target, record)
    row.n_patches, row.backend = record["n_patches"], record["backend"]
    return row


EFFECTS = ("top_attention", "top_effect", "random")


def summary_row(record: Mapping[str, Any], label: str = "") -> dict[str, Any]:
    """The numbers of one record that ``summary.csv`` lists (empty where a method was not run)."""
    compare, region = record.get("compare", {}), record.get("region", {})
    prediction, classes = record["prediction"], record["classes"]
    decision = prediction.get("decision")
    row = {
        "slide_id": record["slide_id"], "label": label, "n_patches": record["n_patches"],
        "backend": record["backend"], "target": record["target"]["class"],
        "objective": record["target"]["objective"], "value": prediction["objective"],
        "decision": classes[decision] if classes and decision is not None else decision,
        "k": compare.get("k", ""),
        **{f"effect_{name}": compare.get("effects", {}).get(name, "") for name in EFFECTS},
        "spearman_attention_effect": compare.get("spearman", {}).get("rho", ""),
        "search_flipped_at": record.get("search", {}).get("flipped_at", ""),
        "region_share": region.get("share", ""),
        "effect_region": region.get("remove", {}).get("effect", ""),
        **{name: region.get("flags", {}).get(name, "") for name in ("overlooked_small_tumor", "driven_by_non_tumor")},
        "insertion_flipped_at": record.get("insertion", {}).get("flipped_at", ""),
    }  # fmt: skip
    return {key: "" if value is None else value for key, value in row.items()}


def _number(value: Any) -> float:
    return float("nan") if value == "" else float(value)


def write_cohort(out: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``cohort.json`` and ``cohort.csv`` from the summary rows with a comparison (None: fewer than 2 slides)."""
    compared = [row for row in rows if row["effect_top_attention"] != ""]
    if len(compared) < 2:
        return None
    tests = cohort_tests(compared)
    flags = {name: sum(row[name] is True for row in rows) for name in ("overlooked_small_tumor", "driven_by_non_tumor")}
    cohort = {
        "n_slides": len(compared),
        "tests": tests,
        "spearman_attention_effect": correlation_summary([_number(r["spearman_attention_effect"]) for r in compared]),
        "flags": flags if any(row["region_share"] != "" for row in rows) else {},
    }  # fmt: skip
    write_json(out / "cohort.json", cohort)
    write_csv(out / "cohort.csv", tests)
    return cohort


def _labels(samples: Path | None) -> tuple[dict[str, str], dict[str, Path]]:
    """Labels and slide files by slide id from a sample sheet (empty without one)."""
    if samples is None:
        return {}, {}
    rows = read_table(samples, aliases={"slide_id": "volume_id"})  # a volume sheet's volume_id stands for slide_id
    labels = {row["slide_id"]: row.get("label", "") for row in rows if row.get("slide_id")}
    has_paths = any(column in rows[0] for column in ("slide_path", "path"))
    return labels, {e.slide_id: e.path for e in read_sample_sheet(samples)} if has_paths else {}


def explain_cohort(job: ExplainJob) -> BatchOutcome[ExplainRow]:
    """Explain every slide of the job and write the outputs (module docstring).

    Returns:
        The manifest rows of this run.

    Raises:
        PathattnError: bad options, missing folders or checkpoints, or slides not in the features or run.
    """
    _check(job)
    out = Path(job.out)
    files = find_bags(job.features)
    checkpoints = _checkpoints(job, files)
    missing = sorted(set(checkpoints) - set(files))
    if missing:
        raise PathattnError(f"{len(missing)} slides have no feature file in {job.features}: {', '.join(missing[:10])}")
    labels, paths = _labels(job.samples)
    folders = [out / "slides", out / "figures"]
    with Batch("explain", out, ExplainRow, folders, total=len(checkpoints)) as batch:
        for model, checkpoint, slide_ids in models_by_checkpoint(batch, checkpoints, job.device, job.checkpoint_format):
            work = functools.partial(explain_one, job, model, checkpoint=checkpoint, files=files, paths=paths)
            batch.run(slide_ids, work, str)
    records = [json.loads((out / "slides" / f"{s}.json").read_text()) for s in sorted(checkpoints)
               if (out / "slides" / f"{s}.json").is_file()]  # fmt: skip
    rows = [summary_row(record, labels.get(record["slide_id"], "")) for record in records]
    if rows:
        write_csv(out / "summary.csv", rows)
        write_cohort(out, rows)
    return batch.outcome(sorted(checkpoints))


def run_explain(job: ExplainJob) -> int:
    """``pathattn explain``: :func:`explain_cohort`, the back-end notes and the summary; return the exit code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BackendFallbackWarning)
        outcome = explain_cohort(job)
    for note in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, BackendFallbackWarning)):
        print(f"note: {note}", file=sys.stderr)
    return outcome.report()
