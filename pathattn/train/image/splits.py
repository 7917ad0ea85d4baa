"""Cross-validation splits of an image set: by patient (default, leakage-checked) or by image (``split: slice``).

Folds come from :func:`pathattn.fitting.splits.stratified_group_split` (scikit-learn's ``StratifiedGroupKFold``)
on the images, stratified by the image label (and the centre, with ``centres: aware``) and grouped by
patient, so every image of a patient falls into one test fold; the validation images of a fold are the
first of a second grouped split of its training images (``round(1 / val_fraction)`` parts). With
``split: slice`` every image is its own group: neighbouring slices of one patient fall into training and
test, the leakage the PET/CT slice-classification paper warns about, kept only to measure it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathattn.fitting.splits import Fold, Splits, check_no_leakage, grouped_folds, load_splits
from pathattn.io.image_set import ImageSet
from pathattn.train.image.config import SplitMode


def image_splits(
    images: ImageSet, mode: SplitMode, n_folds: int, val_fraction: float, seed: int, by_centre: bool
) -> Splits:
    """K folds of ``images`` (module docstring).

    Raises:
        PathattnError: fewer patients (or images) than folds.
    """
    ids = np.asarray(images.ids)
    groups = np.asarray(images.patients) if mode == "patient" else ids
    strata = images.labels.astype(str)
    if by_centre:
        strata = np.char.add(np.char.add(strata, "@"), np.asarray(images.centres, dtype=str))
    folds = grouped_folds(ids, strata, groups, n_folds, val_fraction, seed)
    patients = dict(zip(images.ids, images.patients, strict=True))
    stratify = "label+centre" if by_centre else "label"
    splits = Splits(folds, patients, seed, n_folds, float(val_fraction), stratify)
    if mode == "patient":
        check_no_leakage(splits, patients, "image")
    return splits


def reuse_splits(path: Path, images: ImageSet) -> Splits:
    """The splits of an earlier run, checked against ``images`` (same images and patients, no patient in two parts).

    Raises:
        PathattnError: the file does not match the images, or a patient crosses parts.
    """
    table = [{"slide_id": i, "patient_id": p} for i, p in zip(images.ids, images.patients, strict=True)]
    return load_splits(path, table, source="the image set", item="image")


def crossing_patients(fold: Fold, patients: dict[str, str]) -> int:
    """How many of a fold's test patients also have images in its training or validation part."""
    seen = {patients[i] for i in fold.train + fold.val}
    return len({patients[i] for i in fold.test} & seen)
