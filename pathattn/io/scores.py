"""Per-patch score files: one HDF5 per slide of scores aligned with the patch coordinates.

``pathattn predict`` writes the attention of every patch as ``PRED/attention/{slide_id}.h5``; any other
per-patch score (a patch classifier's probability, a CAM per patch) can use the same layout::

    attention  (N, K) float32  raw (pre-softmax) scores of K heads; -inf (non-finite) at masked patches
               (another dataset name for other scores; (N,) and (N, h, w) per-patch maps are read too)
    coords     (N, 2) int64    level-0 top-left x, y (slides) or (N, 3) voxel i, j, k (volumes), with the tiling
                               attributes (docs/formats.md)
    file attributes: model, slide_id, checkpoint (for attention)

This module is the one reader and writer of these files: ``heatmap``, ``evaluate`` and ``report`` read them
through :func:`read_patch_scores`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.bags import write_features
from pathattn.io.coords import coords_array, open_h5, plain_attr

ATTENTION = "attention"


@dataclass
class PatchScores:
    """The contents of a per-patch score file.

    Args:
        slide_id: the slide (file attribute ``slide_id``, else the ``name`` attribute of ``coords``, else the
            file name).
        coords: (N, 2) int64 level-0 top-left x, y of the patches, or (N, 3) voxel i, j, k of a volume's rows.
        values: (N,), (N, K) scores of K heads, or (N, h, w) per-patch maps, float64; non-finite: masked patch.
        attrs: the tiling attributes of ``coords`` (``patch_size_level0``, ``slide_path``, ``mpp_level0``, ...).
        file_attrs: the file's attributes (``model``, ``checkpoint``, ...).
        source: where the scores come from (the file), for messages.
    """

    slide_id: str
    coords: np.ndarray
    values: np.ndarray
    attrs: dict[str, Any]
    file_attrs: dict[str, Any]
    source: str = ""

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def model(self) -> str:
        """The model that produced the scores (empty when the file does not say)."""
        return str(self.file_attrs.get("model", ""))

    @property
    def n_heads(self) -> int:
        """K, the number of score columns of (N, K) scores (1 for (N,) scores and per-patch maps)."""
        return self.values.shape[1] if self.values.ndim == 2 else 1

    def head(self, index: int, option: str = "--head") -> np.ndarray:
        """The scores of one head: (N,) (or the (N, h, w) maps, which have one).

        Raises:
            PathattnError: the head does not exist.
        """
        if not 0 <= index < self.n_heads:
            raise PathattnError(
                f"{option} {index} does not exist: the scores of slide {self.slide_id} have {self.n_heads} "
                f"head(s), 0 to {self.n_heads - 1}"
            )
        return self.values[:, index] if self.values.ndim == 2 else self.values

    def attr(self, name: str) -> float:
        """A tiling attribute as a number.

        Raises:
            PathattnError: the attribute is missing.
        """
        value = self.attrs.get(name)
        if value is None:
            raise PathattnError(
                f"slide {self.slide_id}: the coordinates lack the '{name}' attribute; score files need the "
                "tiling attributes of 'pathattn tile' (predict and extract copy them)"
            )
        return float(value)


def read_patch_scores(path: str | os.PathLike[str], dataset: str = ATTENTION) -> PatchScores:
    """Read a per-patch score file (module docstring).

    Raises:
        PathattnError: the file is missing or unreadable, lacks the dataset or ``coords``, its scores are not
            (N,), (N, K) or (N, h, w), or its arrays disagree in length.
    """
    path, fix = Path(path), "run 'pathattn predict' again"
    with open_h5(path, "score file", fix) as f:
        for name in (dataset, "coords"):
            if name not in f:
                raise PathattnError(
                    f"{path} has no '{name}' dataset; pass a score file written by 'pathattn predict' "
                    "(or name the dataset of its scores)"
                )
        coords = coords_array(f["coords"], path, fix)
        values = np.asarray(f[dataset][:], np.float64)
        attrs = {k: plain_attr(v) for k, v in f["coords"].attrs.items()}
        file_attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
    if values.ndim not in (1, 2, 3):
        raise PathattnError(f"{path}: scores must be (N,), (N, K) or (N, h, w) maps; got shape {values.shape}")
    if len(values) != len(coords):
        raise PathattnError(
            f"{path}: '{dataset}' has {len(values)} rows but 'coords' has {len(coords)}; "
            "the file is inconsistent, run 'pathattn predict' again"
        )
    slide_id = str(file_attrs.get("slide_id") or attrs.get("name") or path.stem)
    return PatchScores(slide_id, coords, values, attrs, file_attrs, str(path))


def write_patch_scores(
    path: str | os.PathLike[str],
    values: np.ndarray,
    coords: np.ndarray | None,
    coords_attrs: Mapping[str, Any],
    attrs: Mapping[str, Any],
    dataset: str = ATTENTION,
) -> None:
    """Write a per-patch score file atomically.

    Args:
        path: the ``.h5`` file.
        values: (N, K) float32 scores.
        coords: (N, 2) level-0 top-left x, y or (N, 3) voxel i, j, k (those of the feature file the scores were
            computed on).
        coords_attrs: the tiling attributes of ``coords``.
        attrs: file attributes (``model``, ``slide_id``, ``checkpoint``).
        dataset: the scores' dataset name.
    """
    write_features(path, np.asarray(values, np.float32), coords, coords_attrs, attrs, dataset)
