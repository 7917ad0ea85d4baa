"""Bags for training: the sample sheet's targets joined to feature files, batched with a padding mask.

A batch of B bags of different sizes is padded to the largest: ``features (B, N_max, D)`` and
``mask (B, N_max)`` (True for real instances). Every MIL model of pathattn accepts the mask, so padding
never changes a prediction. Random instance subsampling (training only) caps the bag size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pathattn.errors import PathattnError, shorten
from pathattn.fitting.config import Task
from pathattn.io.bags import bag_shape, find_bags, read_checked_bag
from pathattn.io.ids import check_id
from pathattn.io.samples import read_table

REQUIRED = {
    "classification": ("slide_id", "patient_id", "label"),
    "survival": ("slide_id", "patient_id", "time", "event"),
}
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
MISSING_LABELS = ("", "nan")  # lower-cased; "nan" is how pandas writes a missing value


@dataclass(frozen=True)
class Sample:
    """One slide of the training table.

    Args:
        slide_id: the slide.
        patient_id: its patient (splits never separate a patient's slides).
        label: class index (classification), else -1.
        time: follow-up time (survival), else nan.
        event: 1 when the event was observed, 0 when censored (survival), else -1.
    """

    slide_id: str
    patient_id: str
    label: int = -1
    time: float = math.nan
    event: int = -1


def _number(row: Mapping[str, str], column: str, path: Path, kind: type) -> float:
    try:
        value = kind(float(row[column])) if kind is int else float(row[column])
    except ValueError:
        raise PathattnError(
            f"--samples {path}: slide {row.get('slide_id', '?')} has {column} '{row[column]}', not a number"
        ) from None
    if kind is float and not math.isfinite(value):
        raise PathattnError(f"--samples {path}: slide {row.get('slide_id', '?')} has a non-finite {column}")
    return value


def normalise_label(cell: str) -> str:
    """The class a ``label`` cell names (docs/train.md, "Labels"); empty for a missing label.

    The cell is stripped; a decimal number is the same class however it is written, named by its integer
    form when it is integral (``1.0``, ``01``, ``1e0`` → ``1``) and else by its shortest form (``0.50`` →
    ``0.5``); any other label is the exact stripped text. A blank cell and ``nan`` are missing labels.
    """
    text = cell.strip()
    if text.lower() in MISSING_LABELS:
        return ""
    if not DECIMAL.fullmatch(text):
        return text
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def _sheet_line(path: Path, row_index: int) -> int:
    """The line of ``path`` that holds data row ``row_index`` (blank lines are skipped, as the reader does)."""
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1) if line]
    return lines[row_index + 1] if row_index + 1 < len(lines) else row_index + 2


def _labels(rows: Sequence[Mapping[str, str]], path: Path) -> list[str]:
    """The class of every row (:func:`normalise_label`).

    Raises:
        PathattnError: a missing label, naming the sheet, the line and the slide.
    """
    labels = [normalise_label(row["label"]) for row in rows]
    blank = next((i for i, label in enumerate(labels) if not label), None)
    if blank is not None:
        raise PathattnError(
            f"--samples {path} line {_sheet_line(path, blank)}: slide {rows[blank]['slide_id']} has no label "
            f"('{rows[blank]['label']}'); fill in its class, or remove the line to leave the slide out"
        )
    return labels


def read_samples(path: str | Path, task: Task, classes: Sequence[str] | None = None) -> tuple[list[Sample], list[str]]:
    """The training table of a sample sheet.

    Classification labels may be any strings or numbers (:func:`normalise_label`); they are mapped to class
    indices in sorted order (or the order of ``classes``). Survival needs ``time`` (> 0) and ``event`` (0 or 1).
    A volume sheet's ``volume_id`` column stands for ``slide_id`` (a bag is a slide or a volume).

    Args:
        path: the sample sheet (CSV/TSV).
        task: which columns are needed.
        classes: class names in index order (default: the sorted distinct labels).

    Returns:
        The samples and the class names (empty for survival).

    Raises:
        PathattnError: missing columns, bad values, duplicate slide ids, missing or unknown labels.
    """
    path = Path(path)
    rows = read_table(path, REQUIRED[task], aliases={"slide_id": "volume_id"})
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        if not row["slide_id"] or not row["patient_id"]:
            raise PathattnError(f"--samples {path} has a row without slide_id or patient_id: {row}")
        check_id(row["slide_id"], "slide", f"--samples {path} line {line}")
        check_id(row["patient_id"], "patient", f"--samples {path} line {line}")
        if row["slide_id"] in seen:
            raise PathattnError(f"--samples {path} lists slide '{row['slide_id']}' twice; slide ids must be unique")
        seen.add(row["slide_id"])
    if task == "survival":
        samples = []
        for row in rows:
            time, event = _number(row, "time", path, float), _number(row, "event", path, int)
            if time <= 0 or event not in (0, 1):
                raise PathattnError(
                    f"--samples {path}: slide {row['slide_id']} needs time > 0 and event 0 or 1 "
                    f"(has {row['time']}, {row['event']})"
                )
            samples.append(Sample(row["slide_id"], row["patient_id"], time=time, event=int(event)))
        return samples, []
    labels = _labels(rows, path)
    names = [normalise_label(c) for c in classes] if classes else sorted(set(labels), key=_label_order)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise PathattnError(f"--samples {path} has labels {unknown} that are not among the classes {names}")
    return [
        Sample(r["slide_id"], r["patient_id"], label=index[label]) for r, label in zip(rows, labels, strict=True)
    ], names


def _label_order(label: str) -> tuple[int, float | str]:
    """Numbers in numeric order before other strings."""
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def match_features(
    samples: Sequence[Sample], features: str | Path, skip_missing: bool = False
) -> tuple[list[Sample], dict[str, Path]]:
    """The feature file of every sample.

    Args:
        samples: the training table.
        features: a folder of feature files (``pathattn extract`` output, CLAM ``h5_files``/``pt_files``, ...).
        skip_missing: drop samples without a feature file instead of failing.

    Returns:
        The samples that have features, and slide id → feature file.

    Raises:
        PathattnError: the folder has none of the slides, or some are missing without ``skip_missing``.
    """
    folder = Path(features)
    if not folder.is_dir():
        raise PathattnError(f"--features folder not found: {folder}; pass the output folder of 'pathattn extract'")
    found = find_bags(folder)
    missing = [s.slide_id for s in samples if s.slide_id not in found]
    if missing and (not skip_missing or len(missing) == len(samples)):
        hint = "" if len(missing) == len(samples) else "; extract them or pass --skip-missing"
        raise PathattnError(f"{len(missing)} slides have no feature file in {folder}: {shorten(missing)}{hint}")
    kept = [s for s in samples if s.slide_id in found]
    return kept, {s.slide_id: found[s.slide_id] for s in kept}


class BagDataset(Dataset):
    """Bags of features with their targets.

    Args:
        samples: the slides.
        paths: slide id → feature file.
        embed_dim: the expected feature size D (checked on load).
        max_instances: training-time cap; a larger bag is subsampled at random (without replacement) each
            time it is drawn. None keeps every instance.
        cache: keep loaded bags in memory (for cohorts that fit).

    Items:
        dict with ``features`` (N, D) float32, ``label`` int, ``time`` float, ``event`` int, ``index`` int.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        paths: Mapping[str, Path],
        embed_dim: int,
        max_instances: int | None = None,
        cache: bool = True,
    ) -> None:
        self.samples = list(samples)
        self.paths = dict(paths)
        self.embed_dim = embed_dim
        self.max_instances = max_instances
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def bag(self, index: int) -> np.ndarray:
        """All (N, D) features of bag ``index`` (no subsampling), loaded once when caching."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        features = read_checked_bag(self.paths[self.samples[index].slide_id], self.embed_dim).features
        if self._cache is not None:
            self._cache[index] = features
        return features

    def __getitem__(self, index: int) -> dict[str, object]:
        features = torch.from_numpy(self.bag(index))
        if self.max_instances is not None and len(features) > self.max_instances:
            features = features[torch.randperm(len(features))[: self.max_instances]]
        sample = self.samples[index]
        return {"features": features, "label": sample.label, "time": sample.time, "event": sample.event, "index": index}


def feature_stats(dataset: BagDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation over every instance of every bag (float64 sums).

    Returns:
        mean (D,) and std (D,), both float32; zeros for a dataset without instances.
    """
    total = np.zeros(dataset.embed_dim, np.float64)
    squares = np.zeros(dataset.embed_dim, np.float64)
    count = 0
    for index in range(len(dataset)):
        features = dataset.bag(index).astype(np.float64)
        total += features.sum(axis=0)
        squares += np.square(features).sum(axis=0)
        count += len(features)
    mean = total / max(count, 1)
    variance = np.maximum(squares / max(count, 1) - np.square(mean), 0.0)
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def collate_bags(items: Sequence[Mapping[str, object]]) -> dict[str, torch.Tensor]:
    """Pad bags to the largest one.

    Returns:
        ``features`` (B, N_max, D) float32, ``mask`` (B, N_max) bool (True for real instances), ``label`` (B,)
        long, ``time`` (B,) float, ``event`` (B,) long, ``index`` (B,) long.
    """
    bags = [item["features"] for item in items]
    sizes = [len(b) for b in bags]
    dim = bags[0].shape[1]
    features = torch.zeros(len(bags), max(max(sizes), 1), dim, dtype=torch.float32)
    mask = torch.zeros(len(bags), max(max(sizes), 1), dtype=torch.bool)
    for i, (bag, n) in enumerate(zip(bags, sizes, strict=True)):
        features[i, :n] = bag
        mask[i, :n] = True
    return {
        "features": features,
        "mask": mask,
        "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
        "time": torch.tensor([item["time"] for item in items], dtype=torch.float32),
        "event": torch.tensor([item["event"] for item in items], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
    }


def empty_bags(paths: Mapping[str, Path]) -> list[str]:
    """The slides whose feature file holds no instance (a slide without patches), in the order of ``paths``."""
    return [slide_id for slide_id, path in paths.items() if bag_shape(path)[0] == 0]


def feature_dim(paths: Mapping[str, Path]) -> int:
    """The feature size D shared by every bag (read from each file).

    Raises:
        PathattnError: the bags do not all have the same D (naming one of each size).
    """
    dims: dict[int, str] = {}
    for slide_id, path in paths.items():
        dims.setdefault(bag_shape(path)[1], slide_id)
    if len(dims) > 1:
        listed = ", ".join(f"{d}-d ({slide})" for d, slide in dims.items())
        raise PathattnError(f"feature sizes differ between slides: {listed}; extract every slide with one encoder")
    return next(iter(dims))
