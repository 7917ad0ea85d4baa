"""Patch-coordinate files: one HDF5 per slide, readable by CLAM and TRIDENT readers.

Layout (``docs/formats.md`` has the full table)::

    coords               (N, 2) int64   level-0 top-left x, y of each patch
        attrs: patch_size, patch_level, downsample, level_dim, downsampled_level_dim, level0_width,
               level0_height, patch_size_level0, target_mpp, mpp_level0, mpp_source, overlap,
               target_magnification, level0_magnification, name, ... (pathattn additions)
    tissue_fraction      (N,) float32   fraction of the patch covered by tissue
    annotation_fraction  (N, C) float32 fraction covered by each annotation class
        attrs: classes (JSON list of C class names)

CLAM reads ``coords`` with ``patch_size``/``patch_level``; TRIDENT reads ``coords`` with ``patch_size``,
``patch_size_level0`` and the magnifications. Files from those tools (coords only) are read back as well.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import atomic_path

SCHEMA_VERSION = 2  # 2: patch_size is the side at patch_level (CLAM's meaning); target_patch_size added


@dataclass
class PatchCoords:
    """The contents of a coordinates file.

    Args:
        coords: (N, 2) int64 level-0 top-left x, y.
        attrs: attributes of the ``coords`` dataset.
        tissue_fraction: (N,) float32, or None for files without it.
        annotation_fraction: (N, C) float32.
        classes: the C annotation class names.
    """

    coords: np.ndarray
    attrs: dict[str, Any]
    tissue_fraction: np.ndarray | None = None
    annotation_fraction: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    classes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.coords)


def write_coords(path: str | os.PathLike[str], data: PatchCoords) -> None:
    """Write a coordinates file atomically (temp file, then rename).

    Raises:
        ValueError: the arrays do not have N rows each.
    """
    n = len(data.coords)
    annotation = np.asarray(data.annotation_fraction, np.float32).reshape(n, len(data.classes))
    if data.tissue_fraction is not None and len(data.tissue_fraction) != n:
        raise ValueError(f"tissue_fraction has {len(data.tissue_fraction)} rows for {n} coordinates")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        coords = f.create_dataset(
            "coords",
            data=np.asarray(data.coords, np.int64).reshape(n, 2),
            maxshape=(None, 2),
            chunks=(max(1, min(n, 4096)), 2),
        )
        for key, value in data.attrs.items():
            coords.attrs[key] = value
        coords.attrs["schema_version"] = SCHEMA_VERSION
        if data.tissue_fraction is not None:
            f.create_dataset("tissue_fraction", data=np.asarray(data.tissue_fraction, np.float32))
        ann = f.create_dataset("annotation_fraction", data=annotation)
        ann.attrs["classes"] = json.dumps(list(data.classes))


def read_coords(path: str | os.PathLike[str]) -> PatchCoords:
    """Read a coordinates file written by pathattn, CLAM or TRIDENT.

    Raises:
        PathattnError: the file is missing, unreadable, or has no ``coords`` dataset.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "coords" not in f:
                raise PathattnError(f"{path} has no 'coords' dataset; pass a coordinates file from 'pathattn tile'")
            coords = f["coords"]
            attrs = {k: plain_attr(v) for k, v in coords.attrs.items()}
            data = PatchCoords(np.asarray(coords[:], np.int64).reshape(-1, 2), attrs)
            if "tissue_fraction" in f:
                data.tissue_fraction = np.asarray(f["tissue_fraction"][:], np.float32)
            if "annotation_fraction" in f:
                data.classes = json.loads(f["annotation_fraction"].attrs.get("classes", "[]"))
                data.annotation_fraction = np.asarray(f["annotation_fraction"][:], np.float32)
            else:
                data.annotation_fraction = np.zeros((len(data.coords), 0), np.float32)
    except FileNotFoundError:
        raise PathattnError(f"coordinates file not found: {path}; run 'pathattn tile' first") from None
    except OSError as err:
        raise PathattnError(f"{path} is not a readable HDF5 file ({err}); delete it and tile again") from None
    return data


def is_complete(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a finished coordinates file (used to resume batches)."""
    try:
        with h5py.File(path, "r") as f:
            return "coords" in f and "schema_version" in f["coords"].attrs
    except OSError:
        return False


def plain_attr(value: Any) -> Any:
    """HDF5 attribute values as plain Python (numbers, strings, lists)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def attrs_for(grid: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as numpy-friendly values (tuples become arrays), for ``write_coords``."""
    return {k: (np.asarray(v) if isinstance(v, (tuple, list)) else v) for k, v in grid.items()}
