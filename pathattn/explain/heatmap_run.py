"""The batch job of ``pathattn heatmap``: every slide of a predict run, or of a feature folder under a checkpoint.

Two sources of per-patch attention:

* :class:`PredictedScores`: the attention files of ``pathattn predict`` (``PRED/attention/{slide_id}.h5``), with
  the predictions of ``PRED/predictions.csv`` in the captions;
* :class:`CheckpointScores`: a trained model (``pathattn train``, HIPPO or CLAM-SB, see
  :func:`pathattn.models.trained.load_trained`) run on the feature files (``pathattn extract`` output), for
  heatmaps straight from a checkpoint without a predict run.

Each slide is drawn by :func:`pathattn.explain.heatmap.heatmap_slide` inside a :class:`~pathattn.batch.Batch`:
a slide whose three outputs exist is skipped, a slide without patches is ``empty``, a failing slide (an
unreadable file, no finite attention) is recorded in ``OUT/manifest.csv`` and the others go on.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pathattn.batch import Batch, BatchRow
from pathattn.errors import PathattnError
from pathattn.explain.heatmap import HeatmapStyle, heatmap_slide, output_paths
from pathattn.io.bags import find_bags, read_checked_bag
from pathattn.io.coords import is_volume_attrs
from pathattn.io.manifest import read_manifest, run_files
from pathattn.io.runs import checkpoint_file
from pathattn.io.samples import select_ids, slide_paths
from pathattn.io.scores import PatchScores, read_patch_scores
from pathattn.models.checkpoint_formats import CheckpointFormat
from pathattn.models.trained import TrainedModel, load_trained


def _number(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def caption(prediction: str, probability: float | None, risk: float | None) -> str:
    """``prediction P (p=0.93)`` for a classifier, ``risk 0.531`` for a survival model, else empty."""
    if prediction:
        return f"prediction {prediction}" + (f" (p={probability:.2f})" if probability is not None else "")
    return f"risk {risk:.3g}" if risk is not None else ""


def read_captions(path: Path) -> dict[str, str]:
    """Caption text per slide from ``predictions.csv`` (empty without the file), by :func:`caption`."""
    captions = {}
    for row in read_manifest(path):
        prediction = (row.get("prediction") or "").strip()
        text = caption(prediction, _number(row.get(f"prob_{prediction}")), _number(row.get("risk")))
        if row.get("slide_id") and text:
            captions[row["slide_id"]] = text
    return captions


@dataclass(frozen=True)
class PredictedScores:
    """The attention files of a ``pathattn predict`` run.

    Args:
        predictions: its output folder (``attention/{slide_id}.h5``, ``predictions.csv``).
    """

    predictions: Path

    def files(self, slide_ids: Sequence[str] | None) -> dict[str, Path]:
        """The score file of each slide (all, or those of ``slide_ids``)."""
        found = {f.stem: f for f in run_files(self.predictions, "attention", "--predictions", "predict")}
        return select_ids(found, slide_ids, f"--predictions {self.predictions}")

    @functools.cached_property
    def _captions(self) -> dict[str, str]:
        return read_captions(self.predictions / "predictions.csv")

    def load(self, slide_id: str, file: Path) -> tuple[PatchScores, str]:
        """A slide's scores and its caption."""
        return read_patch_scores(file), self._captions.get(slide_id, "")


@dataclass
class CheckpointScores:
    """Attention computed by a trained model on feature files.

    Args:
        checkpoint: the model (any format of :func:`~pathattn.models.trained.load_trained`).
        features: the folder of feature files (with coordinates).
        checkpoint_format: ``auto`` or the format's name.
        device: where the model runs.
    """

    checkpoint: Path
    features: Path
    checkpoint_format: CheckpointFormat = "auto"
    device: str = "cpu"
    _model: TrainedModel | None = field(default=None, init=False, repr=False)

    def files(self, slide_ids: Sequence[str] | None) -> dict[str, Path]:
        """The feature file of each slide (all, or those of ``slide_ids``)."""
        checkpoint_file(self.checkpoint)
        if not Path(self.features).is_dir():
            raise PathattnError(f"--features folder not found: {self.features}; pass the output of 'pathattn extract'")
        found = find_bags(self.features)
        if not found:
            raise PathattnError(f"--features {self.features} holds no feature files; run 'pathattn extract' first")
        return select_ids(found, slide_ids, f"--features {self.features}")

    @property
    def model(self) -> TrainedModel:
        """The model, loaded once."""
        if self._model is None:
            self._model = load_trained(self.checkpoint, self.device, self.checkpoint_format)
        return self._model

    def load(self, slide_id: str, file: Path) -> tuple[PatchScores, str]:
        """A slide's attention under the model, and its prediction as the caption.

        Raises:
            PathattnError: the bag has no coordinates, or features the model does not take.
        """
        model = self.model
        bag = read_checked_bag(file, model.in_dim, f"the model of {self.checkpoint} takes")
        if bag.coords is None:
            raise PathattnError(f"{file} has no patch coordinates to draw; extract the slide with 'pathattn extract'")
        attrs = {"model": model.name, "slide_id": slide_id, "checkpoint": str(self.checkpoint)}
        data = PatchScores(slide_id, bag.coords, np.zeros((0, 1)), bag.attrs.get("coords", {}), attrs,
                           f"{file} under {self.checkpoint}")  # fmt: skip
        if not len(bag):
            return data, ""
        scores, attention = model.predict_bag(torch.from_numpy(bag.features))
        data.values = attention.double().numpy()
        if model.task == "classification":
            best = int(scores.argmax())
            return data, caption(model.class_names[best], float(scores[best]), None)
        return data, caption("", None, float(scores[0]))


@dataclass(kw_only=True)
class HeatmapRow(BatchRow):
    """One row of the manifest."""

    n_patches: int = 0
    model: str = ""
    tissue_source: str = ""
    slide_path: str = ""
    png: str = ""


@dataclass(frozen=True)
class HeatmapJob:
    """One ``pathattn heatmap`` run.

    Args:
        source: where the attention comes from (a predict run, or a checkpoint on feature files).
        out: the folder of the PNG and GeoJSON files and ``manifest.csv``.
        style: how to draw.
        slide_ids: only these slides (default: all).
        tiles: ``pathattn tile`` output folder, whose ``tissue/{slide_id}.geojson`` masks the heatmaps.
        samples: sample sheet whose ``slide_path`` column points to slides that moved since tiling.
        overwrite: redo slides whose outputs exist.
    """

    source: PredictedScores | CheckpointScores
    out: Path
    style: HeatmapStyle = HeatmapStyle()
    slide_ids: Sequence[str] | None = None
    tiles: Path | None = None
    samples: Path | None = None
    overwrite: bool = False

    def tissue_file(self, slide_id: str) -> Path | None:
        """The tiling's tissue GeoJSON of a slide, when there is one."""
        path = self.tiles / "tissue" / f"{slide_id}.geojson" if self.tiles else None
        return path if path is not None and path.is_file() else None

    def check(self) -> None:
        """Raise a one-line :class:`PathattnError` for a bad option."""
        self.style.check()
        if self.tiles is not None and not Path(self.tiles).is_dir():
            raise PathattnError(f"--tiles folder not found: {self.tiles}; pass the output folder of 'pathattn tile'")
        if self.samples is not None and not Path(self.samples).is_file():
            raise PathattnError(f"--samples sheet not found: {self.samples}; pass a CSV/TSV with a slide_path column")


def _heatmap_one(item: tuple[str, Path], job: HeatmapJob, slides: Mapping[str, Path]) -> HeatmapRow:
    """The heatmap of one slide (skipped when its outputs exist); errors propagate."""
    slide_id, file = item
    tissue = job.tissue_file(slide_id)
    row = HeatmapRow(slide_id, tissue_source=str(tissue or "patches"))
    paths = output_paths(job.out, slide_id, job.style.top_k)
    if not job.overwrite and all(p.is_file() for p in paths.values()):
        row.status, row.png = "skipped", str(paths["png"])
        return row
    scores, text = job.source.load(slide_id, file)
    if is_volume_attrs(scores.attrs):
        raise PathattnError(f"{slide_id} is a volume: heatmaps are drawn over slides; 'pathattn report' draws a "
                            "volume's attention along its slice axis, 'pathattn evaluate wsol' scores it")  # fmt: skip
    if len(scores) == 0:
        row.status = "empty"
        return row
    done = heatmap_slide(scores, job.out, job.style, slide_path=slides.get(slide_id), tissue_geojson=tissue,
                         prediction=text)  # fmt: skip
    row.n_patches, row.model, row.slide_path, row.png = (
        done["n_patches"], done["model"], done["slide_path"], str(done["png"])
    )  # fmt: skip
    return row


def run_heatmaps(job: HeatmapJob) -> int:
    """``pathattn heatmap``: render every slide of the source and print the summary; return the exit code.

    Raises:
        PathattnError: bad options, missing folders, or slide ids not in the source.
    """
    job.check()
    items = list(job.source.files(job.slide_ids).items())
    work = functools.partial(_heatmap_one, job=job, slides=slide_paths(job.samples))
    with Batch("heatmap", job.out, HeatmapRow, total=len(items)) as batch:
        batch.run(items, work, lambda item: item[0])
    return batch.outcome([slide_id for slide_id, _ in items]).report()
