"""``pathattn segment predict``: masks and gate maps of volumes, written on each input's own grid.

Every volume is prepared as the training volumes were (the checkpoint's channels, spacing and presets),
swept by the sliding window (:mod:`pathattn.segment.inference`), and its class probabilities and gate maps are
resampled back (MONAI's ``SpatialResample``, trilinear) onto the grid of the reference image as stored in its
file: the same shape, affine and orientation (an LPS file gives an LPS mask), so the mask overlays the input
in any viewer. The mask is the argmax of the resampled probabilities. Layout of ``out``::

    masks/{volume_id}.nii.gz              int16 classes (0 background) on the reference image's grid
    attention/{volume_id}_level{l}.nii.gz  float32 gate map in [0, 1] of level l (2 = finest gated), same grid
    qc/{volume_id}.png                    axial planes through the largest predicted (and true) lesion area:
                                          the image with the prediction (red) and truth (green) outlined,
                                          and the finest gate map
    cases/{volume_id}.json                the case's row, written last: a case with one is done (resume)
    predictions.csv                       one row per case: files, predicted volume per class, checkpoint
    errors.csv                            cases that failed and why (the others go on)

Every file is written atomically. The reference image is the CT when the study has one, else its first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample

from pathattn.errors import PathattnError
from pathattn.io.atomic import write_text_atomic
from pathattn.io.manifest import write_csv
from pathattn.io.nifti import write_nifti
from pathattn.io.volume_samples import VolumeEntry
from pathattn.models.trained_segmentation import TrainedSegmenter
from pathattn.scoremaps.images import write_png
from pathattn.segment.data import channel_paths
from pathattn.segment.inference import WindowSettings, predict_volume
from pathattn.volumes.display import FOREGROUND_COLOR, LESION_COLOR, hstack_padded, render_plane
from pathattn.volumes.prepare import PreparedVolume, PrepareParams, prepare_volume, reference_channel

QC_HEIGHT = 192


@dataclass(frozen=True)
class PredictOptions:
    """How volumes are predicted.

    Args:
        overlap: sliding-window overlap.
        blend: ``gaussian`` or ``constant``.
        batch_size: windows per forward pass.
        tta: average the flipped predictions.
        attention: write the gate maps.
        qc: write the QC montage.
    """

    overlap: float = 0.5
    blend: str = "gaussian"
    batch_size: int = 4
    tta: bool = False
    attention: bool = True
    qc: bool = True


def prepare_params(model: TrainedSegmenter) -> PrepareParams:
    """The spacing and presets the network was trained with."""
    spacing = model.inputs.get("spacing") or (None, None, None)
    return PrepareParams(tuple(spacing), tuple(model.inputs.get("presets") or ()))


def source_grid(prepared: PreparedVolume) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The affine and shape of the reference image as stored in its file (before reorientation to RAS)."""
    source = prepared.sources[reference_channel(prepared.modalities)]
    affine = np.asarray(source["affine"], np.float64)
    axes = nib.io_orientation(affine)[:, 0].astype(int)  # file axis a runs along RAS axis axes[a]
    return affine, tuple(int(prepared.original_shape[a]) for a in axes)


def to_source_grid(
    values: np.ndarray, prepared: PreparedVolume, mode: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """Resample (C, I, J, K) values on the prepared grid onto the reference file's grid; return them and its affine."""
    affine, shape = source_grid(prepared)
    image = MetaTensor(torch.as_tensor(np.asarray(values, np.float32)), affine=torch.as_tensor(prepared.affine))
    out = SpatialResample(mode=mode, padding_mode="border", dtype=torch.float32)(
        image, dst_affine=torch.as_tensor(affine), spatial_size=shape
    )
    return np.asarray(out.numpy(), np.float32), affine


def _planes(masks: Sequence[np.ndarray]) -> list[int]:
    """Axial planes through the largest area of each non-empty mask (the middle plane when all are empty)."""
    chosen = [int(np.argmax(m.sum(axis=(0, 1)))) for m in masks if m.any()]
    return sorted(set(chosen)) or [masks[0].shape[2] // 2]


def qc_montage(
    prepared: PreparedVolume, mask: np.ndarray, truth: np.ndarray | None, gate: np.ndarray | None
) -> np.ndarray:
    """One row per chosen axial plane: the image with the outlines, and the gate map (when there is one)."""
    values = np.clip(prepared.image[0], 0.0, 1.0)
    outlines = [(mask > 0, LESION_COLOR)] + ([(truth > 0, FOREGROUND_COLOR)] if truth is not None else [])
    rows = []
    for k in _planes([m for m, _ in outlines]):
        panels = [render_plane(values, prepared.spacing, 2, k, QC_HEIGHT, outlines)]
        if gate is not None:
            heat = render_plane(gate, prepared.spacing, 2, k, QC_HEIGHT)[..., 0]
            panels.append(cv2.applyColorMap(heat, cv2.COLORMAP_JET)[..., ::-1])
        rows.append(hstack_padded(panels))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def predict_case(model: TrainedSegmenter, entry: VolumeEntry, out: Path, options: PredictOptions) -> dict[str, Any]:
    """Predict one volume and write its files (module docstring); return its row."""
    channels = model.inputs.get("channels")
    prepared = prepare_volume(channel_paths(entry, channels), prepare_params(model), label_path=entry.label_path,
                              series=entry.series, foreground=False)  # fmt: skip
    settings = WindowSettings(tuple(model.inputs["patch_size"]), options.overlap, options.blend, options.batch_size,
                              options.tta)  # fmt: skip
    image = torch.from_numpy(prepared.image)[None].to(model.device)
    probabilities, gates = predict_volume(model.network, image, settings)
    maps = [g.cpu().numpy() for g in gates] if options.attention else []
    resampled, affine = to_source_grid(
        np.concatenate([probabilities.cpu().numpy(), *(m[None] for m in maps)]), prepared
    )
    mask = np.argmax(resampled[: model.n_classes], axis=0).astype(np.int16)
    row: dict[str, Any] = {"volume_id": entry.volume_id, "patient_id": entry.extra.get("patient_id") or entry.volume_id,
                           "mask": f"masks/{entry.volume_id}.nii.gz"}  # fmt: skip
    write_nifti(out / row["mask"], mask, affine)
    levels = []
    for level, values in zip(range(2, 2 + len(maps)), resampled[model.n_classes :], strict=True):
        name = f"attention/{entry.volume_id}_level{level}.nii.gz"
        write_nifti(out / name, values, affine)
        levels.append(name)
    row["attention"] = ";".join(levels)
    if options.qc:
        truth = prepared.label if prepared.label is not None else None
        row["qc"] = f"qc/{entry.volume_id}.png"
        write_png(
            out / row["qc"],
            qc_montage(prepared, probabilities.argmax(0).cpu().numpy(), truth, maps[0] if maps else None),
        )
    voxel_ml = float(np.prod(np.linalg.norm(affine[:3, :3], axis=0))) / 1000.0
    for c in range(1, model.n_classes):
        row[f"predicted_ml_{c}"] = float(np.count_nonzero(mask == c)) * voxel_ml
    return row


def predict_cases(
    model: TrainedSegmenter, entries: Sequence[VolumeEntry], out: Path, options: PredictOptions, checkpoint: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Predict every volume not done yet, record failures and go on; write ``predictions.csv`` (and ``errors.csv``).

    Returns:
        The rows of every predicted case (earlier runs' included) and the failures of this run.
    """
    rows, errors = [], []
    for entry in entries:
        marker = out / "cases" / f"{entry.volume_id}.json"
        if marker.is_file():
            rows.append(json.loads(marker.read_text(encoding="utf-8")))
            continue
        try:
            row = {**predict_case(model, entry, out, options), "checkpoint": checkpoint}
        except PathattnError as error:
            errors.append({"volume_id": entry.volume_id, "error": str(error)})
            continue
        write_text_atomic(marker, json.dumps(row, indent=1) + "\n")
        rows.append(row)
    write_csv(out / "predictions.csv", rows)
    if errors:
        write_csv(out / "errors.csv", errors)
    elif (out / "errors.csv").exists():
        (out / "errors.csv").unlink()
    return rows, errors
