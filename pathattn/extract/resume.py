"""What a feature file was made from, and whether ``pathattn extract`` may keep it when it resumes.

Every feature file records its *recipe* in its attributes: the encoder and the SHA-256 of its weights, the
settings that change the features (input size, mean and std, precision, storage dtype) and ``plan_sha256``,
a SHA-256 of the coordinates and of how they are read: for a slide the pyramid level and read size; for a
volume the prepared grid (the ``prepare`` settings: spacing, presets, CT threshold; its shape), the mode
(slices or 3-D patches), the slice axis, the 2.5-D context and the patch size. A slide or volume whose feature
file exists is skipped only when that recipe equals the current run's (the coordinates are those of the
current coordinates file); anything else (another encoder, other weights, other settings, a re-tiled slide or
volume, a file that cannot be read or records no recipe) is refused, naming the item, ``--out`` and
``--overwrite``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.extract.encoders import Encoder
from pathattn.io.bags import bag_attrs
from pathattn.io.coords import PatchCoords, is_volume_attrs

RECIPE_KEYS = ("encoder", "weights_sha256", "input_size", "mean", "std", "precision", "dtype", "plan_sha256")


def read_plan(coords: PatchCoords) -> tuple[int, int]:
    """The pyramid level and the patch side at that level that the coordinates are read at."""
    attrs = coords.attrs
    return int(attrs.get("patch_level", 0)), int(attrs.get("read_size", attrs.get("patch_size", 0)))


def volume_read_plan(attrs: dict[str, Any]) -> str:
    """How a volume's coordinates are read, as text: prepared grid, mode, axis, context and patch size."""
    keys = ("prepare", "shape", "mode", "axis_index", "context_slices", "patch_size_vox", "modality", "channels")
    return ";".join(f"{key}={_plain(attrs.get(key))}" for key in keys)


def plan_sha256(coords: PatchCoords) -> str:
    """SHA-256 of the coordinates (int64, little-endian) and of their read plan (:func:`read_plan` for a
    slide, :func:`volume_read_plan` for a volume)."""
    digest = hashlib.sha256(np.ascontiguousarray(coords.coords, "<i8").tobytes())
    if is_volume_attrs(coords.attrs):
        digest.update(volume_read_plan(coords.attrs).encode())
    else:
        level, read_size = read_plan(coords)
        digest.update(f"level={level};read_size={read_size}".encode())
    return digest.hexdigest()


def recipe(encoder: Encoder, precision: str, dtype: str, coords: PatchCoords) -> dict[str, Any]:
    """The attributes that must match for an existing feature file to be kept (:data:`RECIPE_KEYS`)."""
    return {
        "encoder": encoder.name,
        "weights_sha256": encoder.weights_sha256,
        "input_size": encoder.input_size or _plain(coords.attrs.get("patch_size_vox", [])),
        "mean": encoder.mean,
        "std": encoder.std,
        "precision": precision,
        "dtype": dtype,
        "plan_sha256": plan_sha256(coords),
    }


def _plain(value: Any) -> Any:
    """A value as plain Python, so that tuples and the lists HDF5 attributes come back as compare equal."""
    return np.asarray(value).tolist()


def stale_reason(path: Path, current: dict[str, Any]) -> str | None:
    """Why the feature file at ``path`` may not be kept for the ``current`` recipe; None when it may.

    Returns:
        The reason, e.g. ``they were made from other coordinates`` or ``they were made with precision fp32
        (this run: bf16)``.
    """
    try:
        stored = bag_attrs(path)
    except PathattnError as err:
        return f"the file cannot be read ({err})"
    for key in RECIPE_KEYS:
        if key not in stored:
            return f"they record no {key} (an older pathattn or another tool wrote them)"
        if _plain(stored[key]) != _plain(current[key]):
            if key == "plan_sha256":
                return "they were made from other coordinates (tiled again, or with other settings)"
            return f"they were made with {key} {_plain(stored[key])} (this run: {_plain(current[key])})"
    return None


def refuse_stale(path: Path, slide_id: str, out: Path, current: dict[str, Any], unit: str = "slide") -> None:
    """Raise when an existing feature file may not be kept (:func:`stale_reason`).

    Args:
        path: the existing feature file.
        slide_id: the item's id.
        out: the output folder (``--out``).
        current: the recipe of this run (:func:`recipe`).
        unit: what the item is, for the message (``slide``, ``volume``).

    Raises:
        PathattnError: naming the item, ``--out`` and ``--overwrite``.
    """
    reason = stale_reason(path, current)
    if reason is not None:
        raise PathattnError(
            f"{unit} {slide_id}: its features in --out {out} cannot be kept: {reason}; pass --overwrite to extract "
            "them again, or use another --out"
        )
