"""The whole-slide WSOL job of ``pathattn evaluate wsol``: choose on the calibration slides, score the test slides.

Outputs under ``OUT`` (each file written atomically; schema in ``docs/evaluate.md``)::

    metrics.json     settings, the two splits' slides, every variant's calibration metrics, the choice and its
                     operating thresholds, and each method's calibration and test metrics
    summary.csv      one row per method and split: PxAP, Dice and IoU at the calibrated threshold, MaxBoxAcc,
                     MaxBoxAccV2, GT-known Loc, patch AUROC and AUPRC
    per_slide.csv    one row per method, split and slide
    pr_curves.png    pixel precision-recall curves: calibration (every variant, baselines) and test (methods)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from pathattn.errors import PathattnError
from pathattn.evaluate import protocol
from pathattn.evaluate.baselines import BASELINES, few_shot_scores, fit_few_shot, read_features
from pathattn.evaluate.outputs import MODEL, MethodResult, method_rows, methods_block, write_run
from pathattn.evaluate.rasters import patch_score_map, slide_score_map, stitch_patch_maps
from pathattn.evaluate.slides import (
    PatchScores,
    SlideTruth,
    assign_splits,
    check_raster_mpp,
    find_score_files,
    patch_labels,
    read_patch_scores,
    slide_truth,
)
from pathattn.scoremaps import wsol
from pathattn.scoremaps.normalise import Normalisation, normalise


@dataclass(frozen=True)
class SlideWsolJob:
    """One whole-slide evaluation (the options of ``pathattn evaluate wsol``; docs/evaluate.md).

    Args:
        scores: per-patch scores (``pathattn predict`` output, ``pathattn explain`` output, or HDF5 files).
        annotations: folder of ``{slide_id}.geojson`` tumor annotations (level-0 pixels).
        out: output folder.
        tiles: ``pathattn tile`` output; its ``tissue/{slide_id}.geojson`` is the evaluated region.
        features: ``pathattn extract`` output, for the few-shot baseline and explain records.
        dataset: the per-patch dataset (or explain key) to evaluate.
        head: the column of (N, K) scores.
        classes: annotation classes that count as tumor (default: all).
        calibration_ids: the held-out, fully annotated slides (default: ``n_calibration`` drawn with ``seed``).
        n_calibration: how many calibration slides to draw.
        seed: the draw's seed (and the few-shot solver's).
        raster_mpp: µm per raster pixel.
        normalisations: per-slide patch-score normalisations to choose from (a heatmap hyperparameter).
        smooth_um: Gaussian sigmas (µm) of raster smoothing to choose from (another one; 0: none).
        baselines: baselines to score beside the model.
        mode: metric conventions (:mod:`pathattn.scoremaps.wsol`).
        step: threshold step.
    """

    scores: Path
    annotations: Path
    out: Path
    tiles: Path | None = None
    features: Path | None = None
    dataset: str = "attention"
    head: int = 0
    classes: tuple[str, ...] | None = None
    calibration_ids: tuple[str, ...] | None = None
    n_calibration: int = 6
    seed: int = 0
    raster_mpp: float = 16.0
    normalisations: tuple[Normalisation, ...] = ("percentile",)
    smooth_um: tuple[float, ...] = (0.0,)
    baselines: tuple[str, ...] = BASELINES
    mode: wsol.Mode = "default"
    step: float = 0.001


@dataclass
class Slide:
    """A slide's scores and ground truth."""

    patches: PatchScores
    truth: SlideTruth


@dataclass(frozen=True)
class Variant:
    """A heatmap hyperparameter setting."""

    normalisation: Normalisation
    sigma_um: float

    @property
    def name(self) -> str:
        return self.normalisation + (f", sigma {self.sigma_um:g} um" if self.sigma_um else "")


def load_slides(job: SlideWsolJob) -> tuple[dict[str, Slide], dict[str, str]]:
    """The evaluable slides (scores and an annotation file) and, for the others, why they are skipped.

    Raises:
        PathattnError: a score file cannot be read, or ``raster_mpp`` cannot work for these slides
            (:func:`~pathattn.evaluate.slides.check_raster_mpp`; checked before anything is rasterised).
    """
    scores: dict[str, PatchScores] = {}
    skipped: dict[str, str] = {}
    for slide_id, path in find_score_files(job.scores).items():
        annotation = job.annotations / f"{slide_id}.geojson"
        if annotation.is_file():
            scores[slide_id] = read_patch_scores(path, job.dataset, job.head, job.features)
        else:
            skipped[slide_id] = f"no annotation file {annotation}"
    check_raster_mpp(job.raster_mpp, scores)
    slides: dict[str, Slide] = {}
    for slide_id, patches in scores.items():
        tissue = job.tiles / "tissue" / f"{slide_id}.geojson" if job.tiles else None
        annotation = job.annotations / f"{slide_id}.geojson"
        truth = slide_truth(
            patches, annotation, tissue if tissue and tissue.is_file() else None, job.raster_mpp, job.classes
        )
        slides[slide_id] = Slide(patches, truth)
    return slides, skipped


def _patch_values(slide: Slide, normalisation: Normalisation) -> np.ndarray:
    """One score per patch for patch-level metrics: (N,), per-slide normalised (a per-patch map's mean)."""
    values = slide.patches.values
    return normalise(values, normalisation) if values.ndim == 1 else values.mean(axis=(1, 2))


def model_map(slide: Slide, variant: Variant, mode: wsol.Mode) -> np.ndarray:
    """The model's evaluated map of one slide under a variant: (H, W) in [0, 1]."""
    truth, patches = slide.truth, slide.patches
    sigma_px = variant.sigma_um / (truth.grid.level0_per_px * patches.attr("mpp_level0"))
    side = int(patches.attr("patch_size_level0"))
    if patches.values.ndim == 3:
        raster = stitch_patch_maps(patches.coords, side, patches.values, truth.grid)
        return slide_score_map(raster, truth.region, sigma_px, mode)
    return patch_score_map(
        patches.values, patches.coords, side, truth.grid, truth.region, variant.normalisation, sigma_px, mode
    )


def _score(
    maps: Mapping[str, np.ndarray], slides: Mapping[str, Slide], ids: list[str], job: SlideWsolJob
) -> protocol.SplitScores:
    samples = {s: slides[s].truth.sample for s in ids}
    return protocol.score_split(maps, samples, wsol.threshold_grid(job.step), job.mode)


def evaluate_model(
    job: SlideWsolJob, slides: Mapping[str, Slide], calibration: list[str], test: list[str]
) -> tuple[MethodResult, dict[str, protocol.SplitScores], Variant]:
    """Every variant on the calibration split, the chosen one on the test split."""
    variants = {v.name: v for v in (Variant(n, s) for n in job.normalisations for s in job.smooth_um)}
    candidates = {
        name: _score({s: model_map(slides[s], v, job.mode) for s in calibration}, slides, calibration, job)
        for name, v in variants.items()
    }
    chosen, operating = protocol.choose(candidates)
    variant = variants[chosen]
    test_scores = _score({s: model_map(slides[s], variant, job.mode) for s in test}, slides, test, job)
    patch_scores = {s: _patch_values(slides[s], variant.normalisation) for s in slides}
    return MethodResult(candidates[chosen], test_scores, operating, patch_scores), candidates, variant


def _patch_map(slide: Slide, values: np.ndarray, job: SlideWsolJob) -> np.ndarray:
    side = int(slide.patches.attr("patch_size_level0"))
    t = slide.truth
    return patch_score_map(values, slide.patches.coords, side, t.grid, t.region, "raw", mode=job.mode)


def evaluate_baseline(
    name: str, job: SlideWsolJob, slides: Mapping[str, Slide], calibration: list[str], test: list[str]
) -> MethodResult:
    """The uniform or few-shot baseline (:mod:`pathattn.evaluate.baselines`) on both splits."""
    if name == "uniform":
        patch_scores = {s: np.ones(len(slide.patches.coords)) for s, slide in slides.items()}
        maps = {s: wsol.normalize_map(slide.truth.region.astype(float)) for s, slide in slides.items()}
    else:
        if job.features is None:
            raise PathattnError("the few_shot baseline needs --features (the patch features); or leave it out")
        features = {s: read_features(job.features, s, len(slide.patches.coords)) for s, slide in slides.items()}
        model = fit_few_shot(
            [features[s] for s in calibration], [patch_labels(slides[s].truth.fractions) for s in calibration], job.seed
        )
        patch_scores = {s: few_shot_scores(model, f) for s, f in features.items()}
        maps = {s: _patch_map(slides[s], patch_scores[s], job) for s in slides}
    calibration_scores = _score(maps, slides, calibration, job)
    operating = protocol.operating_point(calibration_scores)
    return MethodResult(calibration_scores, _score(maps, slides, test, job), operating, patch_scores)


def patch_metrics(result: MethodResult, slides: Mapping[str, Slide], ids: Sequence[str]) -> dict[str, float]:
    """Patch-level AUROC and AUPRC of a split's pooled patches (labels of :func:`patch_labels`; masked patches,
    whose score is not finite, left out)."""
    labels = np.concatenate([patch_labels(slides[s].truth.fractions) for s in ids])
    scores = np.concatenate([result.patch_scores[s] for s in ids])
    keep = (labels >= 0) & np.isfinite(scores)
    if len(np.unique(labels[keep])) < 2:
        return {"patch_auroc": float("nan"), "patch_auprc": float("nan")}
    return {
        "patch_auroc": float(roc_auc_score(labels[keep], scores[keep])),
        "patch_auprc": float(average_precision_score(labels[keep], scores[keep])),
    }


def run_slide_wsol(job: SlideWsolJob) -> dict[str, Any]:
    """Run the job and write its outputs (module docstring); return the contents of ``metrics.json``.

    Raises:
        PathattnError: bad inputs, or a split without tumor slides.
    """
    unknown = sorted(set(job.baselines) - set(BASELINES))
    if unknown:
        raise PathattnError(f"unknown baseline(s) {unknown}; use {', '.join(BASELINES)}")
    slides, skipped = load_slides(job)
    if not slides:
        raise PathattnError(f"no slide has both scores in {job.scores} and an annotation file in {job.annotations}")
    calibration, test = assign_splits(
        {s: slide.truth.has_tumor for s, slide in slides.items()},
        job.calibration_ids,
        job.n_calibration,
        job.seed,
    )
    model, candidates, variant = evaluate_model(job, slides, calibration, test)
    results = {MODEL: model} | {name: evaluate_baseline(name, job, slides, calibration, test) for name in job.baselines}
    splits = {"calibration": calibration, "test": test}
    summary, per_slide = [], []

    def tumor(slide_id: str) -> dict[str, int]:
        return {"has_tumor": int(slides[slide_id].truth.has_tumor)}

    def patches(result: MethodResult, ids: Sequence[str]) -> dict[str, float]:
        return patch_metrics(result, slides, ids)

    for name, result in results.items():
        rows, slide_rows = method_rows(name, result, splits, patches, tumor, "slide_id")
        summary += rows
        per_slide += slide_rows
    metrics = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()},
        "splits": splits,
        "skipped": skipped,
        "calibration": {
            "variants": {name: protocol.summarize(s, protocol.operating_point(s)) for name, s in candidates.items()},
            "selected_by": protocol.selection_metric(model.calibration)[0],
            "chosen": asdict(variant) | {"name": variant.name},
        },
        "methods": methods_block(summary),
    }
    return write_run(job.out, metrics, summary, candidates, results, ("per_slide.csv", per_slide))
