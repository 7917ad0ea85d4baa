"""Bags of patch features: pathattn's feature files, and CLAM, TRIDENT and STAMP files read as bags.

pathattn writes one HDF5 per slide (``h5_files/{slide_id}.h5``), self-contained like TRIDENT's::

    features  (N, D) float32 (float16 on request)   attrs: encoder, name
    coords    (N, 2) int64 level-0 top-left x, y      attrs: copied from the tiling file
    file attrs: encoder, weights_sha256, embed_dim, target_mpp, patch_size, input_size, pathattn_version, ...

and, on request, CLAM's ``pt_files/{slide_id}.pt`` (a ``torch.save``'d (N, D) tensor). Readers accept
CLAM ``.pt``/``.h5``, TRIDENT ``.h5`` and STAMP ``.h5`` (``feats``) files; bags without coordinates are
valid (training does not need them; heatmaps do).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.io.atomic import atomic_path
from pathattn.io.coords import coords_array, open_h5, plain_attr
from pathattn.io.slide import slide_id_of

BagFormat = Literal["h5", "pt"]
FEATURE_KEYS = ("features", "feats")  # pathattn / CLAM / TRIDENT, STAMP
BAG_SUFFIXES = (".h5", ".hdf5", ".pt", ".pth")
REEXTRACT = "extract it again ('pathattn extract')"


@dataclass
class Bag:
    """The features of one slide.

    Args:
        slide_id: the slide's id (the file name without suffix).
        features: (N, D) float array.
        coords: (N, 2) int64 level-0 top-left x, y, or None when the file has none.
        attrs: file and dataset attributes (encoder, mpp, ...), empty for ``.pt`` files.
    """

    slide_id: str
    features: np.ndarray
    coords: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)


def _as_matrix(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[0] == 1:  # some tools save (1, N, D)
        array = array[0]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise PathattnError(
            f"{path} holds {array.dtype} features of shape {array.shape}; expected numbers of shape (patches, "
            f"features): {REEXTRACT}"
        )
    return array


def _read_pt(path: Path) -> Bag:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError:
        raise PathattnError(f"cannot read feature file {path}: permission denied; give your user read access") from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise PathattnError(f"{path} is not a readable torch file ({type(err).__name__}); re-extract it") from None
    if isinstance(obj, Mapping):
        key = next((k for k in FEATURE_KEYS if k in obj), None)
        if key is None:
            raise PathattnError(f"{path} holds a dict without 'features'; expected a (N, D) tensor as CLAM saves")
        coords = obj.get("coords")
        obj, coords = obj[key], None if coords is None else np.asarray(coords, np.int64)
        return Bag(slide_id_of(path), _as_matrix(np.asarray(obj), path), coords)
    if not isinstance(obj, torch.Tensor):
        raise PathattnError(f"{path} holds a {type(obj).__name__}; expected a (N, D) tensor as CLAM saves")
    return Bag(slide_id_of(path), _as_matrix(obj.float().numpy() if obj.dtype == torch.bfloat16 else obj.numpy(), path))


def _feature_key(f: h5py.File, path: Path) -> str:
    key = next((k for k in FEATURE_KEYS if k in f), None)
    if key is None:
        raise PathattnError(f"{path} has no 'features' dataset; pass a feature file ('pathattn extract')")
    return key


def _read_h5(path: Path) -> Bag:
    with open_h5(path, "feature file", REEXTRACT) as f:
        key = _feature_key(f, path)
        attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
        attrs.update({k: plain_attr(v) for k, v in f[key].attrs.items() if k not in attrs})
        features = _as_matrix(np.asarray(f[key][:]), path)
        coords = None
        if "coords" in f:
            attrs["coords"] = {k: plain_attr(v) for k, v in f["coords"].attrs.items()}
            if attrs.get("unit") != "um" and not np.issubdtype(f["coords"].dtype, np.floating):
                coords = coords_array(f["coords"], path, REEXTRACT)
            # else STAMP's µm coordinates: not level-0 pixels, not usable without the slide's mpp
    if coords is not None and len(coords) != len(features):
        raise PathattnError(f"{path} has {len(features)} feature rows but {len(coords)} coordinates")
    return Bag(slide_id_of(path), features, coords, attrs)


def read_bag(path: str | os.PathLike[str]) -> Bag:
    """Read a feature file of pathattn, CLAM (``.h5``/``.pt``), TRIDENT or STAMP as a bag.

    Raises:
        PathattnError: missing, unreadable or malformed file.
    """
    path = Path(path)
    if path.suffix.lower() in (".pt", ".pth"):
        if not path.is_file():
            raise PathattnError(f"feature file not found: {path}")
        return _read_pt(path)
    return _read_h5(path)


def read_checked_bag(
    path: str | os.PathLike[str], expected_dim: int | None = None, expected_by: str = "the other slides take"
) -> Bag:
    """A bag whose (N, D) features are float32, finite and of the expected size.

    Args:
        path: the feature file.
        expected_dim: the feature size D the caller needs (None: any).
        expected_by: who needs it, for the message, ending with its verb (``the other slides take``,
            ``the model of CKPT takes``).

    Raises:
        PathattnError: the file cannot be read, holds NaN/Inf, or D differs from ``expected_dim``.
    """
    bag = read_bag(path)
    bag.features = np.asarray(bag.features, np.float32)
    if not np.isfinite(bag.features).all():
        bad = int((~np.isfinite(bag.features)).any(axis=1).sum())
        raise PathattnError(f"{path} has NaN or Inf features in {bad} patches; re-extract the slide")
    if expected_dim is not None and bag.features.shape[1] != expected_dim:
        raise PathattnError(
            f"{path} has {bag.features.shape[1]}-d features but {expected_by} {expected_dim}-d; "
            "features and model must come from the same encoder"
        )
    return bag


def bag_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file attributes of a pathattn feature file (encoder, weights, settings), without reading its features.

    Raises:
        PathattnError: the file is missing, unreadable or holds no features.
    """
    path = Path(path)
    with open_h5(path, "feature file", REEXTRACT) as f:
        _feature_key(f, path)
        return {k: plain_attr(v) for k, v in f.attrs.items()}


def bag_shape(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(N, D) of a feature file, without reading the features of an HDF5 file."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        try:
            with h5py.File(path, "r") as f:
                key = next((k for k in FEATURE_KEYS if k in f), None)
                if key is not None:
                    shape = f[key].shape
                    return (shape[-2], shape[-1]) if len(shape) >= 2 else (0, 0)
        except OSError:
            pass  # read_bag gives the error message
    n, d = read_bag(path).features.shape
    return n, d


def find_bags(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """Feature files in a folder by slide id: ``h5_files/`` (preferred), ``pt_files/``, or the folder itself."""
    folder = Path(folder)
    found: dict[str, Path] = {}
    for sub in (folder / "pt_files", folder, folder / "h5_files"):  # later wins: h5 (with coords) over pt
        if sub.is_dir():
            found.update({slide_id_of(p): p for p in sorted(sub.iterdir()) if p.suffix.lower() in BAG_SUFFIXES})
    return found


def write_features(
    path: str | os.PathLike[str],
    features: np.ndarray,
    coords: np.ndarray | None,
    coords_attrs: Mapping[str, Any],
    attrs: Mapping[str, Any],
    name: str = "features",
) -> None:
    """Write a pathattn feature file (or another per-patch array aligned with coords) atomically.

    Args:
        path: the ``.h5`` file.
        features: (N, D) float32 or float16.
        coords: (N, 2) int64 level-0 top-left x, y, (N, 3) voxel i, j, k of a volume, or None for a bag
            without coordinates.
        coords_attrs: attributes of the ``coords`` dataset (those of the tiling file).
        attrs: file attributes (encoder, weights hash, ...); ``encoder`` and ``name`` also go on
            the array as TRIDENT does.
        name: the array's dataset name (``features``; ``attention`` for attention files).
    """
    if coords is not None and len(features) != len(coords):
        raise ValueError(f"{len(features)} feature rows for {len(coords)} coordinates")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        feats = f.create_dataset(
            name,
            data=features,
            chunks=(max(1, min(len(features), 1024)), features.shape[1]) if len(features) else None,
        )
        for key in ("encoder", "name"):
            if key in attrs:
                feats.attrs[key] = attrs[key]
        if coords is not None:
            coords = np.asarray(coords, np.int64)
            width = coords.shape[-1] if coords.ndim == 2 else 2  # (N, 2) slides, (N, 3) volumes
            dataset = f.create_dataset("coords", data=coords.reshape(-1, width))
            for key, value in coords_attrs.items():
                dataset.attrs[key] = value
        for key, value in attrs.items():
            f.attrs[key] = value


def write_clam_pt(path: str | os.PathLike[str], features: np.ndarray) -> None:
    """Write features as CLAM's ``pt_files/{slide_id}.pt``: a (N, D) tensor, atomically."""
    with atomic_path(path) as tmp:
        torch.save(torch.from_numpy(np.ascontiguousarray(features)), tmp)
