"""``pathattn classify predict``: a trained image classifier's probabilities for a set of images or slices.

Outputs in ``OUT``: ``predictions.csv`` (image_id, patient_id, centre, source, label when known, one
``prob_<class>`` column per class, the call) and, when every image is labelled, ``metrics.json`` (the metrics of
``pathattn classify fit`` with patient-bootstrap intervals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pathattn.fitting.bootstrap import bootstrap_metrics, with_ci
from pathattn.io.image_set import ImageSet
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv
from pathattn.models.trained_image import TrainedImageClassifier
from pathattn.train.metrics import binary_metrics, classification_metrics
from pathattn.volumes.slice_set import UNLABELLED


def predict_images(
    system: TrainedImageClassifier, images: ImageSet, out: Path, threshold: float = 0.5, n_boot: int = 1000
) -> dict[str, Any] | None:
    """Predict every image, write ``predictions.csv`` (and ``metrics.json`` when all are labelled); return the metrics.

    Args:
        system: the trained classifier.
        images: what to predict (the image's centre picks its normalisation).
        out: the output folder.
        threshold: binary classifiers call an image positive at this probability of the second class.
        n_boot: bootstrap resamples (of patients) of the intervals.
    """
    classes = system.class_names
    probs = system.probabilities(images.images, images.centres)
    binary = len(classes) == 2
    calls = (probs[:, 1] >= threshold).astype(int) if binary else probs.argmax(axis=1)
    known = images.classes == classes and bool((images.labels != UNLABELLED).all())
    rows = [
        {"image_id": images.ids[i], "patient_id": images.patients[i], "centre": images.centres[i],
         "source": images.sources[i], **({"label": classes[int(images.labels[i])]} if known else {}),
         **{f"prob_{c}": float(p) for c, p in zip(classes, probs[i], strict=True)}, "prediction": classes[calls[i]]}
        for i in range(len(images))
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "predictions.csv", rows)
    if not known:
        return None
    patients = np.asarray(images.patients)
    if binary:
        fn = lambda y, p: binary_metrics(y, p, threshold)  # noqa: E731
        cis = bootstrap_metrics(fn, images.labels, probs[:, 1], n_boot=n_boot, clusters=patients)
    else:
        cis = bootstrap_metrics(classification_metrics, images.labels, probs, n_boot=n_boot, clusters=patients)
    metrics = {"classes": list(classes), "threshold": threshold if binary else None, "n_images": len(images),
               **with_ci(cis)}  # fmt: skip
    write_json(out / "metrics.json", metrics)
    return metrics
