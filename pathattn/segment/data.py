"""The cases of a segmentation study and the MONAI dictionary transforms that cut and augment their patches.

A case is one row of a volume sample sheet (``volume_id``, ``patient_id``, one ``<modality>_path`` column per
image, ``label_path``), read by the shared volume reader exactly as ``pathattn tile`` reads it
(:func:`pathattn.volumes.prepare.prepare_volume`): every modality reoriented to RAS and resampled onto the
reference grid (the CT's), the grid resampled to the chosen spacing (the label with nearest neighbours), and each
channel mapped to intensities by its preset (CT windows, PET SUV, MRI percentiles). Orientation, spacing and
intensities are therefore settled before MONAI sees the arrays; MONAI's dictionary transforms then cut and
augment training patches:

* ``SpatialPadd`` to the patch size: a volume smaller than a patch is padded (image with 0, the presets'
  lowest value; label with background) rather than refused;
* ``RandCropByPosNegLabeld``: ``samples`` patches per volume, centred on a lesion voxel with probability
  ``positive`` (else on background); a label volume without any lesion gives background patches (allowed: the
  network learns what is not a lesion; MONAI warns once);
* with ``augment``: flips along each axis, 90-degree in-plane rotations, a random rescaling of 0.75-1.25 along
  each axis about the patch centre (``RandAffined`` with probability 0.3, image bilinear, label nearest, border
  values outside; as nnU-Net's scaling, so that lesions are also seen larger and smaller than the cohort has them),
  intensity scaling and shifts of 10 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from monai import transforms as mt

from pathattn.errors import PathattnError
from pathattn.io.volume_samples import VolumeEntry
from pathattn.volumes.prepare import PrepareParams, prepare_volume

KEYS = ("image", "label")


@dataclass(frozen=True)
class SegmentationCase:
    """One study with its label volume on the prepared grid.

    Args:
        case_id: the sheet's ``volume_id``.
        patient_id: its patient (the sheet's ``patient_id``, else the case itself).
        image: (C, I, J, K) float32, one channel per modality, each mapped by its preset.
        label: (1, I, J, K) int64 classes, 0 = background.
        affine: (4, 4) voxel → RAS mm of the prepared grid.
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays under the transforms' keys."""
        return {"image": self.image, "label": self.label}


def channel_paths(entry: VolumeEntry, channels: Sequence[str] | None) -> dict[str, Path]:
    """The image files of ``entry`` the network sees, in the order of ``channels`` (None: all of the sheet's).

    Raises:
        PathattnError: a channel the sheet gives no image of.
    """
    if not channels:
        return dict(entry.paths)
    upper = {m.upper(): path for m, path in entry.paths.items()}
    missing = [c for c in channels if c.upper() not in upper]
    if missing:
        raise PathattnError(
            f"{entry.volume_id}: no {missing[0].lower()}_path in the sample sheet for --channels {list(channels)}; "
            f"it has {', '.join(m.lower() + '_path' for m in entry.paths)}"
        )
    return {c.upper(): upper[c.upper()] for c in channels}


def read_case(
    entry: VolumeEntry, params: PrepareParams, n_classes: int, channels: Sequence[str] | None = None
) -> SegmentationCase:
    """Read and prepare one study and its label volume.

    Args:
        entry: the sheet's row.
        params: target spacing and presets (as ``pathattn tile``).
        n_classes: classes of the network, background included: label values must lie in 0..n_classes-1.
        channels: the modalities the network sees, in order (None: every image of the row).

    Raises:
        PathattnError: no label volume, an unreadable or mismatching file, NaN voxels, or label classes outside
            the range.
    """
    if entry.label_path is None:
        raise PathattnError(f"{entry.volume_id}: no label volume; give it in the sample sheet's label_path column")
    paths = channel_paths(entry, channels)
    prepared = prepare_volume(paths, params, label_path=entry.label_path, series=entry.series, foreground=False)
    label = np.asarray(prepared.label, np.int64)
    values = np.unique(label)
    outside = values[(values < 0) | (values >= n_classes)]
    if outside.size:
        raise PathattnError(
            f"{entry.label_path}: label classes {outside.tolist()} outside 0..{n_classes - 1}; set the number of "
            "classes (background included) or renumber the labels"
        )
    patient = entry.extra.get("patient_id") or entry.volume_id
    return SegmentationCase(entry.volume_id, patient, prepared.image, label[None], prepared.affine)


def train_transforms(
    patch_size: Sequence[int], samples: int = 2, positive: float = 0.5, augment: bool = True
) -> mt.Compose:
    """Pad, cut ``samples`` patches per case (lesion-centred with probability ``positive``), augment.

    Raises:
        PathattnError: a patch size or probability no run could use.
    """
    if len(patch_size) != 3 or min(patch_size) < 1:
        raise PathattnError(f"--patch-size needs three positive voxel counts (i, j, k); got {list(patch_size)}")
    if not 0 <= positive <= 1 or samples < 1:
        raise PathattnError(f"--positive must lie in [0, 1] and --samples be at least 1; got {positive}, {samples}")
    steps: list[mt.Transform] = [
        mt.SpatialPadd(KEYS, spatial_size=tuple(patch_size), mode="constant"),
        mt.RandCropByPosNegLabeld(
            KEYS, "label", spatial_size=tuple(patch_size), pos=positive, neg=1 - positive, num_samples=samples
        ),  # fmt: skip
    ]
    if augment:
        steps += [mt.RandFlipd(KEYS, prob=0.5, spatial_axis=axis) for axis in range(3)]
        steps += [
            mt.RandRotate90d(KEYS, prob=0.5, max_k=3, spatial_axes=(0, 1)),
            mt.RandAffined(
                KEYS, prob=0.3, scale_range=(0.25,) * 3, mode=("bilinear", "nearest"), padding_mode="border"
            ),
            mt.RandScaleIntensityd("image", factors=0.1, prob=0.5),
            mt.RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        ]
    steps.append(mt.EnsureTyped(KEYS, dtype=(np.float32, np.int64), track_meta=False))
    return mt.Compose(steps)
