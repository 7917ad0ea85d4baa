"""The results folder of a study, defined once: where every stage writes, for the workflow, the report and the demo.

The Snakemake rules (``snakemake/rules/common.smk`` builds one :class:`StudyLayout` from the config's results
folder), ``pathattn report`` (which finds the stage folders of a results folder) and ``pathattn demo`` (which
finds the report) all take their paths from here::

    DIR/tiles/        'pathattn tile': coords/{slide_id}.h5, tissue/{slide_id}.geojson (slides) or
                      foreground/{slide_id}.nii.gz (volumes), qc/{slide_id}.png, manifest.csv
    DIR/features/     'pathattn extract': h5_files/{slide_id}.h5, manifest.csv
    DIR/train/        'pathattn train': metrics.json, predictions.csv (out of fold), splits.json, fold_k/
    DIR/predict/      'pathattn predict': predictions.csv, attention/{slide_id}.h5
    DIR/heatmaps/     'pathattn heatmap': {slide_id}_heatmap.png, {slide_id}_heatmap.geojson, {slide_id}_top{k}.geojson
    DIR/explain/      'pathattn explain': summary.csv, cohort.json, slides/{slide_id}.json, figures/
    DIR/evaluate/     'pathattn evaluate wsol': metrics.json, summary.csv, pr_curves.png; of the CAMs:
                      cams/{run}/fold_{k}/metrics.json
    DIR/classify/     'pathattn classify fit': {run}/metrics.json, predictions.csv, splits.json, fold_k/
    DIR/cams/         'pathattn cams': {run}/fold_{k}/cams.json, maps/{method}/, masks/, images/, boxes.csv, ...
    DIR/segment/      'pathattn segment fit': {run}/metrics.json, splits.json, fold_k/checkpoints/, fold_k/test/
                      (masks/, attention/, qc/, predictions.csv, cases.csv, lesions.csv, metrics.json)
    DIR/report.html   'pathattn report'
    DIR/logs/<rule>/  one log per workflow job: {slide_id}.log or cohort.log

A per-slide path takes the slide's id; its default :data:`SLIDE` is the literal Snakemake wildcard
``{slide_id}``, so the same method gives a rule's file pattern and one slide's file; the image classifiers'
paths take a run name and a fold the same way (:data:`RUN`, :data:`FOLD`). In a volume study
(``kind: volumes``) the volume id stands for the slide id, as in every ``pathattn`` command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SLIDE = "{slide_id}"
RUN = "{run}"
FOLD = "{fold}"
COHORT = "cohort"
COMMANDS = {
    "tiles": "tile",
    "features": "extract",
    "train": "train",
    "predict": "predict",
    "heatmaps": "heatmap",
    "explain": "explain",
    "evaluate": "evaluate wsol",
    "classify": "classify fit",
    "cams": "cams",
    "segment": "segment fit",
}
STAGES = tuple(COMMANDS)
KINDS = ("slides", "volumes")  # what a study's items are (the config key ``kind``)


@dataclass(frozen=True)
class StudyLayout:
    """The paths of a study's results folder.

    Args:
        root: the results folder (``results/<study>`` in the workflow).
        train_at_root: ``root`` is a bare ``pathattn train`` run folder: the training files lie directly in it.
    """

    root: Path
    train_at_root: bool = False

    def stage(self, name: str) -> Path:
        """The folder of stage ``name`` (one of :data:`STAGES`).

        Raises:
            KeyError: ``name`` is not a stage.
        """
        if name not in COMMANDS:
            raise KeyError(f"unknown stage {name!r}; one of {', '.join(STAGES)}")
        return self.root if self.train_at_root and name == "train" else self.root / name

    def manifest(self, stage: str) -> Path:
        """``manifest.csv`` of a per-slide stage (``tiles``, ``features``, ``heatmaps``)."""
        return self.stage(stage) / "manifest.csv"

    @property
    def logs(self) -> Path:
        """The folder of the workflow jobs' logs."""
        return self.root / "logs"

    def log(self, rule: str, name: str = COHORT) -> Path:
        """The log of a workflow job: ``logs/<rule>/<name>.log`` (``name``: a slide id, or ``cohort``)."""
        return self.logs / rule / f"{name}.log"

    def coords(self, slide_id: str = SLIDE) -> Path:
        """The patch coordinates of a slide (``pathattn tile``)."""
        return self.stage("tiles") / "coords" / f"{slide_id}.h5"

    def tissue(self, slide_id: str = SLIDE) -> Path:
        """The tissue mask of a slide, QuPath GeoJSON (``pathattn tile``)."""
        return self.stage("tiles") / "tissue" / f"{slide_id}.geojson"

    def foreground(self, slide_id: str = SLIDE) -> Path:
        """The foreground (body) mask of a volume, NIfTI on the tiling's grid (``pathattn tile`` on volumes)."""
        return self.stage("tiles") / "foreground" / f"{slide_id}.nii.gz"

    def mask(self, kind: str, slide_id: str = SLIDE) -> Path:
        """The tiling's mask of an item of a study of ``kind``: :meth:`tissue` (slides) or :meth:`foreground` (volumes).

        Raises:
            KeyError: ``kind`` is neither ``slides`` nor ``volumes``.
        """
        if kind not in KINDS:
            raise KeyError(f"unknown study kind {kind!r}; one of {', '.join(KINDS)}")
        return self.foreground(slide_id) if kind == "volumes" else self.tissue(slide_id)

    def qc(self, slide_id: str = SLIDE) -> Path:
        """The tiling quality-control image of a slide (``pathattn tile``)."""
        return self.stage("tiles") / "qc" / f"{slide_id}.png"

    def features(self, slide_id: str = SLIDE) -> Path:
        """The patch features of a slide (``pathattn extract``)."""
        return self.stage("features") / "h5_files" / f"{slide_id}.h5"

    @property
    def train_metrics(self) -> Path:
        """Cross-validation metrics (``pathattn train``)."""
        return self.stage("train") / "metrics.json"

    @property
    def train_predictions(self) -> Path:
        """Out-of-fold predictions of the cross-validation (``pathattn train``)."""
        return self.stage("train") / "predictions.csv"

    @property
    def train_splits(self) -> Path:
        """The folds' patient splits (``pathattn train``)."""
        return self.stage("train") / "splits.json"

    @property
    def predictions(self) -> Path:
        """Predictions of ``pathattn predict``."""
        return self.stage("predict") / "predictions.csv"

    def attention(self, slide_id: str = SLIDE) -> Path:
        """The attention of every patch of a slide (``pathattn predict``)."""
        return self.stage("predict") / "attention" / f"{slide_id}.h5"

    def heatmap(self, slide_id: str = SLIDE) -> Path:
        """The attention heatmap of a slide, PNG (``pathattn heatmap``)."""
        return self.stage("heatmaps") / f"{slide_id}_heatmap.png"

    def heatmap_geojson(self, slide_id: str = SLIDE) -> Path:
        """Every patch of a slide with its attention, QuPath GeoJSON (``pathattn heatmap``)."""
        return self.stage("heatmaps") / f"{slide_id}_heatmap.geojson"

    def top_patches(self, top_k: int, slide_id: str = SLIDE) -> Path:
        """The ``top_k`` patches of highest attention of a slide, QuPath GeoJSON (``pathattn heatmap``)."""
        return self.stage("heatmaps") / f"{slide_id}_top{top_k}.geojson"

    @property
    def explain_summary(self) -> Path:
        """One row of counterfactual effects per slide (``pathattn explain``)."""
        return self.stage("explain") / "summary.csv"

    def explanation(self, slide_id: str = SLIDE) -> Path:
        """The counterfactual record of a slide (``pathattn explain``)."""
        return self.stage("explain") / "slides" / f"{slide_id}.json"

    @property
    def wsol_summary(self) -> Path:
        """Localization metrics per method and split, CSV (``pathattn evaluate wsol``)."""
        return self.stage("evaluate") / "summary.csv"

    @property
    def wsol_metrics(self) -> Path:
        """Localization metrics with the calibration, JSON (``pathattn evaluate wsol``)."""
        return self.stage("evaluate") / "metrics.json"

    @property
    def wsol_curves(self) -> Path:
        """Pixel precision-recall curves (``pathattn evaluate wsol``)."""
        return self.stage("evaluate") / "pr_curves.png"

    def classify_run(self, run: str = RUN) -> Path:
        """The folder of one image-classifier cross-validation (``pathattn classify fit --out``)."""
        return self.stage("classify") / run

    def classify_metrics(self, run: str = RUN) -> Path:
        """The metrics of an image-classifier run, per fold and pooled (``pathattn classify fit``)."""
        return self.classify_run(run) / "metrics.json"

    def cams(self, run: str = RUN, fold: int | str = FOLD) -> Path:
        """The CAMs and own maps of a run's fold on its held-out images (``pathattn cams --out``)."""
        return self.stage("cams") / run / f"fold_{fold}"

    def cams_wsol(self, run: str = RUN, fold: int | str = FOLD) -> Path:
        """The localization of those maps, every method beside the uniform baseline (``pathattn evaluate wsol``)."""
        return self.stage("evaluate") / "cams" / run / f"fold_{fold}"

    def segment_run(self, run: str = RUN) -> Path:
        """The folder of one segmentation run (``pathattn segment fit --out``)."""
        return self.stage("segment") / run

    def segment_metrics(self, run: str = RUN) -> Path:
        """The held-out metrics of a segmentation run, per fold and their mean (``pathattn segment fit``)."""
        return self.segment_run(run) / "metrics.json"

    @property
    def report(self) -> Path:
        """The study's HTML report (``pathattn report``)."""
        return self.root / "report.html"
