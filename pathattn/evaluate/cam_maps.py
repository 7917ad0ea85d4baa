"""``pathattn cams``: score maps of a trained image classifier, with the truth ``pathattn evaluate wsol --maps`` reads.

For each image explained (by default the images of the positive class, i.e. the last class, that carry a
lesion mask: WSOL scores where a model looks on images of the class it detects) the run writes::

    OUT/maps/{method}/{image_id}.npy   (H, W) float32 in [0, 1] at the image's size, one folder per method
    OUT/masks/{image_id}.png           the image's lesion mask (255 inside), when the images have masks
    OUT/boxes.csv                      image_id, x0, y0, x1, y1: one inclusive box per connected lesion
    OUT/split.csv                      image_id, split, patient_id: calibration or test, drawn by patient (seeded)
    OUT/classification.csv             image_id, correct: whether the classifier's call (argmax) is right
    OUT/images/{image_id}.png          the image as the network saw it (before normalisation), for galleries
    OUT/cams.json                      the settings, the methods and the images

Methods: ``gradcam``, ``gradcam++``, ``eigencam`` (sign-corrected), ``scorecam`` through
:func:`pathattn.evaluate.cams.compute_cams` on the model's :meth:`cam_layer` (the last feature map before the
pooling; ``--cam-stage`` picks an earlier, finer one), explaining the image's true class; and ``attention``: the
model's own maps (MEDUSA's body and each gated stage, ``attention_body``, ``attention_stage{i}``), resized
bilinearly to the image and min-max normalised like the CAMs. The lesion masks of volume slices come from the
label volume recorded at tiling (:mod:`pathattn.volumes.slice_set`), so the evaluation needs no extra step::

    pathattn evaluate wsol --maps OUT/maps/gradcam --masks OUT/masks --boxes OUT/boxes.csv --split OUT/split.csv \\
        --classification OUT/classification.csv --out WSOL
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from pathattn.errors import PathattnError
from pathattn.evaluate.cams import CAM_METHODS, compute_cams, write_score_maps
from pathattn.io import rundir
from pathattn.io.image_set import ImageSet
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.models.trained_image import LogitsOf, TrainedImageClassifier
from pathattn.scoremaps.images import write_png
from pathattn.scoremaps.wsol import normalize_map

Method = Literal["gradcam", "gradcam++", "eigencam", "scorecam", "attention"]
METHODS: tuple[str, ...] = (*CAM_METHODS, "attention")


@dataclass(frozen=True)
class CamJob:
    """What ``pathattn cams`` computes.

    Args:
        out: the output folder.
        methods: CAM methods and/or ``attention`` (the model's own maps); empty: every CAM method, and
            ``attention`` when the model has maps of its own.
        all_images: explain every image (else only the positive images with a lesion).
        calibration_fraction: share of the patients whose images calibrate the WSOL thresholds.
        seed: seed of that draw.
        batch_size: images per pass.
        stage: the backbone's feature stage the CAMs explain (-1: the last, ``layer4`` of a ResNet; -2: the one
            before, at twice the resolution).
        overwrite: replace the maps already in ``out`` (else a folder that holds anything is refused).
    """

    out: Path
    methods: tuple[str, ...] = ()
    all_images: bool = False
    calibration_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 16
    stage: int = -1
    overwrite: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise PathattnError(f"--methods {unknown[0]} is not one of {', '.join(METHODS)}")
        if not 0 < self.calibration_fraction < 1:
            raise PathattnError(f"--calibration-fraction must lie in (0, 1); got {self.calibration_fraction}")


def chosen_images(images: ImageSet, classes: Sequence[str], all_images: bool) -> ImageSet:
    """The images to explain: all, or those of the positive (last) class with a lesion in their mask.

    Raises:
        PathattnError: the image set's classes differ from the classifier's, or no image is left.
    """
    if tuple(images.classes) != tuple(classes):
        raise PathattnError(f"the images have the classes {', '.join(images.classes)} but the classifier "
                            f"{', '.join(classes)}; pass the images it was trained for")  # fmt: skip
    if all_images:
        return images
    keep = images.labels == len(classes) - 1
    if images.masks is not None:
        keep &= images.masks.reshape(len(images), -1).any(axis=1)
    if not keep.any():
        raise PathattnError(f"no image of class {classes[-1]} with a lesion mask to explain; pass --all-images")
    return images.subset(np.flatnonzero(keep))


def has_own_maps(model: TrainedImageClassifier, images: ImageSet) -> bool:
    """Whether the model returns attention maps of its own (MEDUSA does, a plain CNN does not)."""
    with torch.inference_mode():
        return bool(model.network(model.normalise(images.images[:1], images.centres[:1])).maps)


def own_maps(model: TrainedImageClassifier, images: ImageSet, batch_size: int) -> dict[str, np.ndarray]:
    """The model's own attention maps by name (``attention_body``, ...), each (N, H, W) in [0, 1] at the image size."""
    parts: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            batch = model.normalise(images.images[s : s + batch_size], images.centres[s : s + batch_size])
            for name, value in model.network(batch).maps.items():
                resized = F.interpolate(value.float(), size=images.size, mode="bilinear", align_corners=False)
                parts.setdefault(f"attention_{name}", []).append(resized[:, 0].cpu().numpy())
    return {name: np.stack([normalize_map(m) for m in np.concatenate(v)]) for name, v in parts.items()}


def cam_maps(model: TrainedImageClassifier, images: ImageSet, method: str, job: CamJob) -> np.ndarray:
    """(N, H, W) CAMs of each image's true class on feature stage ``job.stage``.

    Raises:
        PathattnError: the network has no such stage.
    """
    try:
        layer = model.network.cam_layer(job.stage)
    except ValueError as err:
        raise PathattnError(f"--cam-stage: {err}") from None
    wrapped, batch_size = LogitsOf(model.network).eval(), job.batch_size
    parts = []
    for s in range(0, len(images), batch_size):
        batch = model.normalise(images.images[s : s + batch_size], images.centres[s : s + batch_size])
        targets = images.labels[s : s + batch_size].tolist()
        parts.append(compute_cams(wrapped, layer, batch, targets, method, batch_size))
    return np.concatenate(parts)


def patient_split(images: ImageSet, fraction: float, seed: int) -> list[dict[str, str]]:
    """``split.csv`` rows: a seeded draw of patients (at least one, not all) calibrates, the rest test."""
    patients = sorted(set(images.patients))
    if len(patients) < 2:
        raise PathattnError("the explained images come from one patient; WSOL needs calibration and test patients")
    n = min(max(1, round(fraction * len(patients))), len(patients) - 1)
    calibration = set(np.random.default_rng(seed).permutation(patients)[:n].tolist())
    return [{"image_id": i, "split": "calibration" if p in calibration else "test", "patient_id": p}
            for i, p in zip(images.ids, images.patients, strict=True)]  # fmt: skip


def mask_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Inclusive ``(x0, y0, x1, y1)`` boxes of the 8-connected components of a bool mask."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [(int(x), int(y), int(x + w - 1), int(y + h - 1)) for x, y, w, h, _ in stats[1:n]]


def write_truth(images: ImageSet, out: Path) -> None:
    """The images, masks and boxes of the explained images (module docstring)."""
    for name, values in (("images", images.images), ("masks", images.masks)):
        if values is None:
            continue
        (out / name).mkdir(parents=True, exist_ok=True)
        for image_id, value in zip(images.ids, values, strict=True):
            rgb = value.transpose(1, 2, 0) if value.ndim == 3 else np.repeat(value[..., None] * np.uint8(255), 3, 2)
            write_png(out / name / f"{image_id}.png", np.ascontiguousarray(rgb))
    if images.masks is not None:
        boxes = [{"image_id": i, "x0": b[0], "y0": b[1], "x1": b[2], "y1": b[3]}
                 for i, m in zip(images.ids, images.masks, strict=True) for b in mask_boxes(m)]  # fmt: skip
        if boxes:
            write_csv(out / "boxes.csv", boxes)


def write_cams(model: TrainedImageClassifier, images: ImageSet, job: CamJob) -> dict[str, object]:
    """Explain the chosen images with every method and write the run (module docstring); return ``cams.json``.

    The run is made in a staging folder and moves to ``job.out`` when it has finished (:mod:`pathattn.io.rundir`),
    so the folder never mixes the maps of two runs.
    """
    rundir.check_out(job.out, job.overwrite)
    return rundir.staged_run(job.out, lambda staging: _write_cams(model, images, replace(job, out=staging)))


def _write_cams(model: TrainedImageClassifier, images: ImageSet, job: CamJob) -> dict[str, object]:
    chosen = chosen_images(images, model.class_names, job.all_images)
    methods = job.methods or (*CAM_METHODS, *(["attention"] if has_own_maps(model, chosen) else []))
    if "attention" in methods and not has_own_maps(model, chosen):
        raise PathattnError(f"--methods attention: the model {model.name} has no attention maps of its own; use the "
                            "CAM methods (gradcam, gradcam++, eigencam, scorecam)")  # fmt: skip
    split = patient_split(chosen, job.calibration_fraction, job.seed)
    written: list[str] = []
    for method in methods:
        maps = (own_maps(model, chosen, job.batch_size) if method == "attention"
                else {method: cam_maps(model, chosen, method, job)})  # fmt: skip
        for name, values in maps.items():
            write_score_maps(job.out / "maps" / name, chosen.ids, values)
            written.append(name)
    write_truth(chosen, job.out)
    write_csv(job.out / "split.csv", split)
    calls = model.probabilities(chosen.images, chosen.centres).argmax(axis=1)
    pairs = zip(chosen.ids, calls == chosen.labels, strict=True)
    correct = [{"image_id": i, "correct": int(ok)} for i, ok in pairs]
    write_csv(job.out / "classification.csv", correct)
    summary = {"model": model.name, "methods": written, "n_images": len(chosen), "image_size": list(chosen.size),
               "cam_stage": job.stage, "all_images": job.all_images, "masks": chosen.masks is not None,
               "images": list(chosen.ids)}  # fmt: skip
    write_json(job.out / "cams.json", summary)
    return summary
