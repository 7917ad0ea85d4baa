"""``pathattn segment evaluate``: predicted masks and gate maps against the label volumes.

Each case's mask (``predictions.csv`` of ``pathattn segment predict``) is compared with the sheet's label volume
on the label's own grid (the mask was written on it; any other grid is refused): Dice, HD95 and NSD per class,
lesion-wise detection (:mod:`pathattn.segment.metrics`). The gate maps are scored as attention maps with the
WSOL protocol's PxAP (:mod:`pathattn.scoremaps.wsol`): each map min-max normalised per volume, the voxels of
every case pooled, positives = any lesion voxel; beside them the **uniform** map, whose PxAP is the lesion
prevalence. Written into ``out``::

    metrics.json   the summary per class (module :mod:`pathattn.segment.metrics`), the gate maps' PxAP with the
                   uniform baseline, the NSD tolerance and size bins used
    cases.csv      one row per case and class: dice, hd95 (empty when undefined), nsd, volumes, lesion counts
    lesions.csv    one row per true lesion: case, class, volume_ml, detected
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.io.volume import read_label, read_volume
from pathattn.io.volume_samples import VolumeEntry
from pathattn.scoremaps import wsol
from pathattn.segment.metrics import DEFAULT_SIZE_BINS, case_metrics, summarize

PXAP_STEP = 0.001  # the WSOL protocol's threshold grid


def read_predictions(folder: Path) -> list[dict[str, str]]:
    """The rows of ``folder/predictions.csv``.

    Raises:
        PathattnError: no such file (not a ``pathattn segment predict`` folder).
    """
    path = folder / "predictions.csv"
    if not path.is_file():
        raise PathattnError(f"--predictions {folder}: no predictions.csv; pass the --out of 'pathattn segment predict'")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def predicted_classes(folder: Path) -> int:
    """The classes (background included) of the predictions in ``folder``: their ``predicted_ml_c`` columns."""
    rows = read_predictions(folder)
    columns = [c for c in (rows[0] if rows else {}) if c.startswith("predicted_ml_")]
    return 1 + max((int(c.removeprefix("predicted_ml_")) for c in columns), default=1)


def _blank_nan(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (an undefined HD95) as an empty CSV cell."""
    return {k: "" if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}


def _gate_counts(
    row: dict[str, str], folder: Path, truth: np.ndarray, thresholds: np.ndarray
) -> dict[str, wsol.PixelCounts]:
    """Voxel counts of every gate map of one case (and of the uniform map) against its lesion mask."""
    counts = {"uniform": wsol.pixel_counts(np.zeros(truth.shape), truth, thresholds)}
    for name in filter(None, (row.get("attention") or "").split(";")):
        level = name.rsplit("_level", 1)[-1].removesuffix(".nii.gz")
        values = read_volume(folder / name, modality="MAP", suv=False).array[0]
        if values.shape != truth.shape:
            raise PathattnError(f"{folder / name}: gate map grid {values.shape} differs from the label's "
                                f"{truth.shape}; predict the case again")  # fmt: skip
        counts[f"level{level}"] = wsol.pixel_counts(wsol.normalize_map(values), truth, thresholds)
    return counts


def evaluate_predictions(
    folder: Path, entries: Sequence[VolumeEntry], n_classes: int, out: Path | None = None,
    tolerance_mm: float = 2.0, size_bins: Sequence[float] = DEFAULT_SIZE_BINS,
) -> dict[str, Any]:  # fmt: skip
    """Score the predictions in ``folder`` against the label volumes of ``entries`` (module docstring).

    Args:
        folder: the output of ``pathattn segment predict``.
        entries: the sample sheet's rows; the predicted ones need a ``label_path``.
        n_classes: classes, background included.
        out: where the tables go (default: ``folder``).
        tolerance_mm: the NSD tolerance.
        size_bins: lesion volume edges in mL for recall by size.

    Raises:
        PathattnError: no prediction of a sheet's volume, a volume without label, a mask on another grid.
    """
    if tolerance_mm <= 0 or list(size_bins) != sorted(set(size_bins)) or not size_bins:
        raise PathattnError("--nsd-tolerance must be positive and --size-bins increasing mL values, e.g. [1, 5, 20]")
    predicted = {r["volume_id"]: r for r in read_predictions(folder)}
    chosen = [e for e in entries if e.volume_id in predicted]
    if not chosen:
        raise PathattnError(f"--predictions {folder} holds none of the sheet's volumes; pass the sheet they came from")
    thresholds = wsol.threshold_grid(PXAP_STEP)
    class_rows, lesions, pooled = [], [], {}
    for entry in chosen:
        if entry.label_path is None:
            raise PathattnError(f"{entry.volume_id}: no label volume in the sample sheet's label_path column; add it")
        row = predicted[entry.volume_id]
        mask = read_volume(folder / row["mask"], modality="LABEL", suv=False)
        truth = read_label(entry.label_path, mask)
        pred = np.rint(mask.array[0]).astype(np.int16)
        outside = sorted(set(np.unique(truth).tolist()) - set(range(n_classes)))
        if outside:
            raise PathattnError(f"{entry.label_path}: label classes {outside} outside 0..{n_classes - 1}; "
                                "renumber the labels or evaluate with their number of classes")  # fmt: skip
        rows, found = case_metrics(pred, truth, mask.spacing, n_classes, tolerance_mm)
        class_rows += [{"volume_id": entry.volume_id, **r} for r in rows]
        lesions += [{"volume_id": entry.volume_id, **r} for r in found]
        for name, counts in _gate_counts(row, folder, truth > 0, thresholds).items():
            pooled[name] = pooled[name] + counts if name in pooled else counts
    result = {
        "cases": len(chosen), "n_classes": n_classes, "nsd_tolerance_mm": tolerance_mm, "size_bins_ml": list(size_bins),
        "classes": summarize(class_rows, lesions, n_classes, size_bins),
        "attention_pxap": {name: counts.pxap() for name, counts in sorted(pooled.items())},
    }  # fmt: skip
    target = out or folder
    write_csv(target / "cases.csv", [_blank_nan(r) for r in class_rows])
    write_csv(target / "lesions.csv", lesions)
    write_json(target / "metrics.json", result)
    return result
