"""Patch-coordinate files: one HDF5 per slide, readable by CLAM and TRIDENT readers.

Layout (``docs/formats.md`` has the full table)::

    coords               (N, 2) int64   level-0 top-left x, y of each patch (slides), or
                         (N, 3) int64   voxel i, j, k of each slice or 3-D patch origin (volumes)
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

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import atomic_path

VOXEL_IJK = "voxel_ijk"  # ``coord_space`` of a volume's coordinates (voxel indices i, j, k of its RAS grid)


def is_volume_attrs(attrs: Mapping[str, Any]) -> bool:
    """Whether coordinates with these attributes are the voxel coordinates of a volume, not a slide's."""
    return attrs.get("coord_space") == VOXEL_IJK


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

    @property
    def is_annotated(self) -> bool:
        """Whether the rows carry ground truth: a volume tiled with a label volume (``label_path``), or classes."""
        return bool(self.attrs.get("label_path")) or len(self.classes) > 0

    def lesion_fraction(self, classes: Sequence[str] | None = None) -> np.ndarray:
        """The fraction of each row in the chosen classes (all when None), summed: (N,) float64 in [0, 1]."""
        columns = [i for i, name in enumerate(self.classes) if classes is None or name in classes]
        fractions = np.asarray(self.annotation_fraction, np.float64).reshape(len(self.coords), -1)
        return np.clip(fractions[:, columns].sum(axis=1), 0.0, 1.0)


def write_coords(path: str | os.PathLike[str], data: PatchCoords) -> None:
    """Write a coordinates file atomically (temp file, then rename).

    Raises:
        ValueError: the arrays do not have N rows each.
    """
    n = len(data.coords)
    width = 3 if np.ndim(data.coords) == 2 and np.shape(data.coords)[1] == 3 else 2
    annotation = np.asarray(data.annotation_fraction, np.float32).reshape(n, len(data.classes))
    if data.tissue_fraction is not None and len(data.tissue_fraction) != n:
        raise ValueError(f"tissue_fraction has {len(data.tissue_fraction)} rows for {n} coordinates")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        coords = f.create_dataset(
            "coords",
            data=np.asarray(data.coords, np.int64).reshape(n, width),
            maxshape=(None, width),
            chunks=(max(1, min(n, 4096)), width),
        )
        for key, value in data.attrs.items():
            coords.attrs[key] = value
        coords.attrs["schema_version"] = SCHEMA_VERSION
        if data.tissue_fraction is not None:
            f.create_dataset("tissue_fraction", data=np.asarray(data.tissue_fraction, np.float32))
        ann = f.create_dataset("annotation_fraction", data=annotation)
        ann.attrs["classes"] = json.dumps(list(data.classes))


@contextlib.contextmanager
def open_h5(path: Path, kind: str, fix: str) -> Iterator[h5py.File]:
    """Open an HDF5 file to read; a missing, unreadable or damaged file becomes one :class:`PathattnError` line.

    Errors raised while the block reads the file (a truncated dataset) are reported the same way.

    Args:
        path: the file.
        kind: what the file is, for the message (``coordinates file``, ``feature file``).
        fix: what to do about a missing or damaged file (the end of the message).

    Raises:
        PathattnError: the file is missing, cannot be read for lack of permission, or is not a readable HDF5 file.
    """
    try:
        with h5py.File(path, "r") as f:
            yield f
    except FileNotFoundError:
        raise PathattnError(f"{kind} not found: {path}; {fix}") from None
    except PermissionError:
        raise PathattnError(f"cannot read {kind} {path}: permission denied; give your user read access") from None
    except IsADirectoryError:
        raise PathattnError(f"{path} is a folder, not a {kind}; {fix}") from None
    except OSError as err:
        raise PathattnError(f"{path} is not a readable HDF5 file ({err}); {fix}") from None


def coords_array(dataset: h5py.Dataset, path: Path, fix: str) -> np.ndarray:
    """A ``coords`` dataset as int64, (N, 2) for slides or (N, 3) for volumes, after checking its shape and type.

    Raises:
        PathattnError: the dataset is not (N, 2) or (N, 3) numbers; the message ends with ``fix``.
    """
    if dataset.ndim != 2 or dataset.shape[1] not in (2, 3) or not np.issubdtype(dataset.dtype, np.number):
        raise PathattnError(
            f"{path}: 'coords' is {dataset.dtype} of shape {dataset.shape}, not (patches, 2) level-0 x, y pixels "
            f"or (patches, 3) voxel i, j, k; {fix}"
        )
    return np.asarray(dataset[:], np.int64)


def read_coords(path: str | os.PathLike[str]) -> PatchCoords:
    """Read a coordinates file written by pathattn, CLAM or TRIDENT.

    Raises:
        PathattnError: the file is missing, unreadable, has no ``coords`` dataset or one that is not (N, 2).
    """
    path, fix = Path(path), "run 'pathattn tile' again"
    with open_h5(path, "coordinates file", fix) as f:
        if "coords" not in f:
            raise PathattnError(f"{path} has no 'coords' dataset; pass a coordinates file from 'pathattn tile'")
        attrs = {k: plain_attr(v) for k, v in f["coords"].attrs.items()}
        data = PatchCoords(coords_array(f["coords"], path, fix), attrs)
        if "tissue_fraction" in f:
            data.tissue_fraction = np.asarray(f["tissue_fraction"][:], np.float32)
        if "annotation_fraction" in f:
            data.classes = json.loads(f["annotation_fraction"].attrs.get("classes", "[]"))
            data.annotation_fraction = np.asarray(f["annotation_fraction"][:], np.float32)
        else:
            data.annotation_fraction = np.zeros((len(data.coords), 0), np.float32)
    return data


def coord_space(path: Path, kind: str, fix: str) -> str:
    """The ``coord_space`` attribute of the ``coords`` of an HDF5 file (empty when it has none or no ``coords``).

    Raises:
        PathattnError: the file is missing or unreadable; ``kind`` and ``fix`` as for :func:`open_h5`.
    """
    with open_h5(path, kind, fix) as f:
        return str(plain_attr(f["coords"].attrs.get("coord_space", ""))) if "coords" in f else ""


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
