"""Inputs and metrics of localization on volumes: per-row scores against the lesion fractions of the tiling.

A volume is a bag of **rows**: 2-D slices along the slice axis or 3-D patches (``pathattn tile`` on volumes,
docs/formats.md "Volume coordinates"). The tiling's ``coords/{volume_id}.h5`` carries, per row, its
foreground fraction (``tissue_fraction``) and the fraction of its voxels in each label class
(``annotation_fraction``); these fractions are the ground truth, so no annotation files are needed.

**Which runs are volumes** (one rule): a run is evaluated as volumes when the coordinates of its first score
file have the attribute ``coord_space = "voxel_ijk"`` (``pathattn tile`` writes it on volumes; ``extract`` and
``predict`` copy it; for ``pathattn explain`` records, the coordinates of the feature file). Every other
score file and tiling file must then say the same.

Per volume, with rows ``r``, score ``s_r`` (one head), lesion fraction ``f_r`` (the sum of the fractions of
the chosen label classes: ``--annotation-classes``, default all) and foreground fraction ``t_r``:

* **row labels**: positive when ``f_r > p`` (``--positive-fraction`` p, default 0: the row crosses a lesion),
  negative when ``f_r = 0``, left out otherwise (rows with some lesion but at most p, only when p > 0);
* **row AUROC / AUPRC** of the scores against those labels, pooled over a split's rows (scores normalised
  per volume by the chosen ``--normalise``), and the mean over the split's volumes that have both positive
  and negative rows (``mean_volume_row_auroc``, ``mean_volume_row_auprc``; normalisations are monotone per
  volume, so these do not depend on it). Rows whose score is not finite (masked) are left out;
* **PxAP on voxels**: every voxel of a row takes the row's score, min-max normalised to [0, 1] over the
  volume's finite rows (masked rows score 0). A row of ``V`` voxels (a slice: the whole plane; a patch: its
  box, ``patch_size_vox``) holds ``round(f_r V)`` positive voxels and ``round(max(t_r, f_r) V) - round(f_r V)``
  negative ones (the foreground that is not lesion, the volume's "tissue"; air counts for nothing). The
  pixel counts of :mod:`pathattn.scoremaps.wsol` are then built from these weights on the same threshold grid
  and bins, so PxAP, Dice and IoU keep their definitions with voxels as pixels. In slice mode this is the
  precision-recall area of the 1-D map along the slice axis, each slice weighted by its lesion and
  foreground voxels; in patch mode it is the voxel grid at the resolution of the patches. Overlapping
  patches count a shared voxel once per patch (with the default overlap 0 only the last, flush patch of an
  axis overlaps). Voxels of rows the tiling dropped (foreground below ``min_foreground``) are not counted.
  A slice that holds lesion and background cannot be all positive, so even a perfect ranking scores below
  1 unless lesion rows hold only lesion.

A volume without lesion (a label volume with no lesion voxel) adds only negatives, as a tumor-free slide;
a volume tiled without a label volume (``label_path`` empty and no label class) is skipped, as a slide
without an annotation file.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from pathattn.errors import PathattnError
from pathattn.evaluate import protocol
from pathattn.evaluate.slides import find_score_files, read_patch_scores
from pathattn.io.coords import VOXEL_IJK, PatchCoords, coord_space, read_coords
from pathattn.scoremaps import wsol
from pathattn.scoremaps.normalise import Normalisation, normalise

"""The ``coord_space`` attribute of volume coordinates."""
RETILE = "re-run 'pathattn tile' on the volumes with their label volumes (label_path)"


def coordinate_space(scores: Path, features: Path | None = None) -> str:
    """The ``coord_space`` attribute of the first score file's coordinates (empty when not recorded).

    Args:
        scores: the ``--scores`` folder.
        features: the ``--features`` folder (the coordinates of ``pathattn explain`` records).

    Raises:
        PathattnError: the folder holds no score file, or the first one cannot be read.
    """
    volume_id, path = next(iter(find_score_files(scores).items()))
    if path.suffix == ".json":
        if features is None:
            return ""
        path = features / "h5_files" / f"{volume_id}.h5"
    return coord_space(path, "coordinates file", "run 'pathattn predict' again")


@dataclass
class VolumeRows:
    """One volume's scored rows and their ground truth.

    Args:
        volume_id: the volume.
        scores: (N,) raw scores of one head; non-finite: masked row.
        lesion: (N,) lesion fraction of each row (the chosen classes summed).
        foreground: (N,) foreground fraction of each row.
        voxels: voxels per row (a slice's plane, a patch's box).
        mode: ``slices`` or ``patches``.
        attrs: the tiling attributes.
    """

    volume_id: str
    scores: np.ndarray
    lesion: np.ndarray
    foreground: np.ndarray
    voxels: int
    mode: str
    attrs: dict

    @property
    def has_lesion(self) -> bool:
        return bool((self.lesion > 0).any())

    def labels(self, positive_fraction: float) -> np.ndarray:
        """Row labels (module docstring): (N,) int64, 1 positive, 0 negative, -1 left out."""
        labels = np.full(len(self.lesion), -1, np.int64)
        labels[self.lesion > positive_fraction] = 1
        labels[self.lesion == 0] = 0
        return labels

    def voxel_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative voxels of each row: 2 x (N,) float64 (module docstring)."""
        positive = np.rint(self.lesion * self.voxels)
        evaluated = np.rint(np.maximum(self.foreground, self.lesion) * self.voxels)
        return positive, np.maximum(evaluated - positive, 0.0)


def _check_volume(space: object, path: Path | str) -> None:
    if space != VOXEL_IJK:
        raise PathattnError(
            f"{path}: coordinates are not volume voxels (coord_space {space!r}, not '{VOXEL_IJK}'); "
            "evaluate slides and volumes in separate runs"
        )


def read_volume(
    path: Path,
    tiling: PatchCoords,
    tiling_path: Path,
    dataset: str = "attention",
    head: int = 0,
    features: Path | None = None,
    classes: Sequence[str] | None = None,
) -> VolumeRows:
    """One volume's scores (``path``) and the fractions of its tiling (``tiling``, read from ``tiling_path``).

    Raises:
        PathattnError: the scores are unreadable, per-row maps, not a volume's, or hold other rows than the tiling.
    """
    scores = read_patch_scores(path, dataset, head, features)
    if scores.values.ndim != 1:
        raise PathattnError(
            f"{path}: per-row maps of shape {scores.values.shape[1:]} are not supported on volumes; "
            "pass one score per slice or patch"
        )
    _check_volume(scores.attrs.get("coord_space"), path)
    if not np.array_equal(scores.coords, tiling.coords):
        raise PathattnError(
            f"{path} and {tiling_path} hold different rows ({len(scores.coords)} and {len(tiling.coords)}); "
            "the scores come from another tiling: run extract and predict on --tiles"
        )
    foreground = tiling.tissue_fraction if tiling.tissue_fraction is not None else np.ones(len(tiling.coords))
    size = np.asarray(tiling.attrs.get("patch_size_vox", [1, 1, 1]), np.int64).reshape(-1)
    return VolumeRows(
        path.stem, scores.values, tiling.lesion_fraction(classes), np.asarray(foreground, np.float64),
        int(np.prod(size)), str(tiling.attrs.get("mode", "")), tiling.attrs,
    )  # fmt: skip


def load_volumes(
    scores: Path,
    tiles: Path,
    dataset: str = "attention",
    head: int = 0,
    features: Path | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[dict[str, VolumeRows], dict[str, str]]:
    """The evaluable volumes (scores, a tiling file, a label volume) and, for the others, why they are skipped.

    Args:
        scores: the ``--scores`` folder.
        tiles: the volume tiling folder (``coords/{volume_id}.h5``).
        dataset: the per-row dataset of the score files.
        head: the column of (N, K) scores.
        features: the feature folder (coordinates of ``pathattn explain`` records).
        classes: the label classes that count as lesion (None: all).

    Raises:
        PathattnError: a file cannot be read, is not a volume's, or the scores and tiling disagree.
    """
    volumes: dict[str, VolumeRows] = {}
    skipped: dict[str, str] = {}
    for volume_id, path in find_score_files(scores).items():
        tiling_path = tiles / "coords" / f"{volume_id}.h5"
        if not tiling_path.is_file():
            skipped[volume_id] = f"no coordinates file {tiling_path}"
            continue
        tiling = read_coords(tiling_path)
        _check_volume(tiling.attrs.get("coord_space"), tiling_path)
        if tiling.is_annotated:
            volumes[volume_id] = read_volume(path, tiling, tiling_path, dataset, head, features, classes)
        else:
            skipped[volume_id] = f"tiled without a label volume ({tiling_path}); {RETILE}"
    return volumes, skipped


def row_map(values: np.ndarray, normalisation: Normalisation, mode: wsol.Mode = "default") -> np.ndarray:
    """A volume's evaluated map: (N,) scores normalised by ``normalisation``, then min-max to [0, 1] over the
    finite rows (:func:`~pathattn.scoremaps.wsol.normalize_map`); masked rows 0."""
    normalised = normalise(np.asarray(values, np.float64), normalisation)
    finite = np.isfinite(normalised)
    return wsol.normalize_map(np.where(finite, normalised, 0.0)[None], finite[None], mode)[0]


def voxel_counts(score_map: np.ndarray, volume: VolumeRows, thresholds: np.ndarray) -> wsol.PixelCounts:
    """The voxel counts of one volume's map (N,) in [0, 1]: the bins of
    :func:`~pathattn.scoremaps.wsol.pixel_counts`, each row weighted by its positive and negative voxels."""
    edges = np.concatenate([thresholds, [1.0, 2.0, 3.0]])
    bins = np.searchsorted(edges, np.asarray(score_map, np.float64), side="right") - 1
    positive, negative = volume.voxel_weights()
    size = len(edges) - 1
    return wsol.PixelCounts(
        thresholds,
        np.bincount(bins, weights=positive, minlength=size),
        np.bincount(bins, weights=negative, minlength=size),
    )


def score_split(
    maps: Mapping[str, np.ndarray], volumes: Mapping[str, VolumeRows], ids: Sequence[str], thresholds: np.ndarray
) -> protocol.SplitScores:
    """The voxel counts of a split's volumes, per volume and pooled (no boxes)."""
    scores = protocol.SplitScores(thresholds)
    scores.per_sample = {v: voxel_counts(maps[v], volumes[v], thresholds) for v in ids}
    if scores.per_sample:
        scores.pixels = functools.reduce(operator.add, scores.per_sample.values())
    return scores


def auc_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUROC and AUPRC of scores against 1/0 labels (rows labelled -1 or with non-finite scores left out);
    NaN when one class is missing."""
    keep = (labels >= 0) & np.isfinite(scores)
    if len(np.unique(labels[keep])) < 2:
        return float("nan"), float("nan")
    return float(roc_auc_score(labels[keep], scores[keep])), float(average_precision_score(labels[keep], scores[keep]))


def row_metrics(
    row_scores: Mapping[str, np.ndarray], volumes: Mapping[str, VolumeRows], ids: Sequence[str], positive: float
) -> dict[str, float | int]:
    """Row AUROC and AUPRC of a split: pooled over its rows, and the mean over its volumes that have both classes.

    Args:
        row_scores: per volume, (N,) scores (already normalised per volume when pooled).
        volumes: the volumes.
        ids: the split's volumes.
        positive: the ``--positive-fraction``.
    """
    labels = {v: volumes[v].labels(positive) for v in ids}
    pooled = auc_pair(np.concatenate([labels[v] for v in ids]), np.concatenate([row_scores[v] for v in ids]))
    each = np.array([auc_pair(labels[v], row_scores[v]) for v in ids]).reshape(-1, 2)
    counted = np.isfinite(each[:, 0])
    mean = each[counted].mean(axis=0) if counted.any() else np.full(2, np.nan)
    return {
        "row_auroc": pooled[0],
        "row_auprc": pooled[1],
        "mean_volume_row_auroc": float(mean[0]),
        "mean_volume_row_auprc": float(mean[1]),
        "n_volumes_row_auc": int(counted.sum()),
        "n_positive_rows": int(sum((labels[v] == 1).sum() for v in ids)),
        "n_negative_rows": int(sum((labels[v] == 0).sum() for v in ids)),
    }


def volume_columns(volume: VolumeRows, scores: np.ndarray, positive: float) -> dict[str, float | int]:
    """The per-volume columns of ``per_slide.csv`` beside PxAP, Dice and IoU: lesion, rows, row AUROC/AUPRC."""
    labels = volume.labels(positive)
    auroc, auprc = auc_pair(labels, scores)
    return {
        "has_lesion": int(volume.has_lesion),
        "mode": volume.mode,
        "n_rows": len(labels),
        "n_positive_rows": int((labels == 1).sum()),
        "row_auroc": auroc,
        "row_auprc": auprc,
    }
