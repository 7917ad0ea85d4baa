"""Patient-level stratified K-fold cross-validation splits, checked for leakage, saved and reloaded.

A *table* (:mod:`pathattn.fitting.sample_table`) has, besides ``slide_id`` and ``patient_id``, either a class
label (``label``) or survival columns (``time`` and ``event``).

Folds come from :class:`sklearn.model_selection.StratifiedGroupKFold` on the slides with the patients
as groups, so all slides of a patient fall into one test fold; classification stratifies by the label
and survival by the event indicator. The validation set of a fold is drawn from its training part
with a second StratifiedGroupKFold over the training slides (again grouped by patient) with
``round(1 / val_fraction)`` splits, of which the first is the validation set: with ``val_fraction=0.2``
about a fifth of the training patients, stratified. Every fold is checked by
:func:`check_no_leakage` before it is returned or loaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from pathattn.errors import PathattnError, shorten
from pathattn.fitting.config import Task
from pathattn.fitting.sample_table import Table, check_labels, patient_labels, slide_patients
from pathattn.io.atomic import write_text_atomic

SCHEMA = "pathattn.splits"
SCHEMA_VERSION = 1
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: disjoint lists of slide ids (patients never cross them)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def parts(self) -> dict[str, tuple[str, ...]]:
        """``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(frozen=True)
class Splits:
    """K folds over a cohort, with what is needed to reproduce and to validate them.

    Args:
        folds: the folds; their test parts partition the slides.
        slide_patient: slide id -> patient id of every slide the splits cover.
        seed: the random seed of the splitters.
        n_folds: number of folds.
        val_fraction: fraction of training patients drawn for validation (0: no validation set).
        stratify: the column the folds are stratified by.
    """

    folds: tuple[Fold, ...]
    slide_patient: dict[str, str]
    seed: int = 0
    n_folds: int = 5
    val_fraction: float = 0.0
    stratify: str = "label"

    def __len__(self) -> int:
        return len(self.folds)

    def __getitem__(self, index: int) -> Fold:
        return self.folds[index]


def _survival_strata(table: Table, source: str) -> dict[str, str]:
    """Patient -> event indicator ("0"/"1"), checking time and event agree within patients."""
    patient_labels(table, "time", source)
    events = patient_labels(table, "event", source)
    parsed = {}
    for patient, raw in events.items():
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value not in (0.0, 1.0):
            raise PathattnError(
                f"column 'event' of {source} must be 0 (censored) or 1 (event); patient {patient} has {raw}"
            )
        parsed[patient] = str(int(value))
    if "1" not in parsed.values():
        raise PathattnError(f"column 'event' of {source} has no event (all 0); survival needs at least one event")
    return parsed


def stratified_group_split(
    index: np.ndarray, strata: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        return [(index[a], index[b]) for a, b in splitter.split(index, strata[index], groups[index])]
    except ValueError as err:  # too few patients for the number of splits
        raise PathattnError(
            f"cannot split {len(np.unique(groups[index]))} patients into {n_splits} stratified groups ({err}); "
            "use fewer --n-folds or a larger --val-fraction"
        ) from None


def grouped_folds(
    ids: np.ndarray, strata: np.ndarray, groups: np.ndarray, n_folds: int, val_fraction: float, seed: int
) -> tuple[Fold, ...]:
    """K test folds of ``ids`` grouped by ``groups`` and stratified by ``strata``, each with a validation part.

    The validation ids of a fold are the first part of a second grouped, stratified split of its training ids
    into ``round(1 / val_fraction)`` parts (at least 2).

    Raises:
        PathattnError: fewer groups than folds, or too few for the splits.
    """
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise PathattnError(f"{n_groups} patients are fewer than --n-folds {n_folds}; use fewer folds")
    n_inner = max(2, round(1 / val_fraction))
    folds = []
    for train, test in stratified_group_split(np.arange(ids.size), strata, groups, n_folds, seed):
        train, val = stratified_group_split(train, strata, groups, n_inner, seed)[0]
        folds.append(Fold(*(tuple(ids[np.sort(part)].tolist()) for part in (train, val, test))))
    return tuple(folds)


def make_splits(
    table: Table,
    n_folds: int = 5,
    seed: int = 0,
    label_column: str = "label",
    val_fraction: float = 0.0,
    task: Task = "classification",
    source: str = "samples.csv",
) -> Splits:
    """Patient-level stratified K-fold splits of the slides of ``table``.

    Test folds come from ``StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)`` on the
    slides, grouped by patient and stratified by ``label_column`` (classification) or by ``event``
    (survival). With ``val_fraction > 0`` each fold's validation slides are the first split of a
    ``StratifiedGroupKFold(round(1 / val_fraction))`` of its training slides (same groups and strata),
    so the validation share of training patients is about ``1 / round(1 / val_fraction)``.

    Args:
        table: one row per slide with ``slide_id``, optional ``patient_id``, and ``label_column`` or
            ``time`` and ``event``.
        n_folds: number of folds (>= 2).
        seed: random seed of both splitters.
        label_column: the class column (classification).
        val_fraction: share of training patients for validation, 0 or in (0, 0.5].
        task: ``"classification"`` or ``"survival"``.
        source: the table's file name, for error messages.
        item: what the ids name, for error messages (``slide``, ``image``).

    Returns:
        The splits, checked for leakage.

    Raises:
        PathattnError: patient labels disagree, one class only, no event, or too few patients.
    """
    if n_folds < 2:
        raise PathattnError(f"--n-folds must be at least 2; got {n_folds}")
    if not (val_fraction == 0.0 or 0.0 < val_fraction <= 0.5):
        raise PathattnError(f"--val-fraction must be 0 or lie in (0, 0.5]; got {val_fraction}")
    patients = slide_patients(table, source)
    if task == "classification":
        stratify = label_column
        by_patient = patient_labels(table, label_column, source)
        check_labels(by_patient.values(), label_column, source)
    elif task == "survival":
        stratify = "event"
        by_patient = _survival_strata(table, source)
    else:
        raise ValueError(f"task must be 'classification' or 'survival'; got {task!r}")
    ids = np.array(list(patients))
    groups = np.array([patients[s] for s in ids])
    strata = np.array([by_patient[p] for p in groups])
    if len(by_patient) < n_folds:
        raise PathattnError(f"{source} has {len(by_patient)} patients, fewer than --n-folds {n_folds}; use fewer folds")
    n_inner = max(2, round(1 / val_fraction)) if val_fraction else 0
    folds = []
    for k, (train, test) in enumerate(stratified_group_split(np.arange(ids.size), strata, groups, n_folds, seed)):
        val = train[:0]
        if n_inner:
            if np.unique(groups[train]).size < n_inner:
                raise PathattnError(
                    f"fold {k} has {np.unique(groups[train]).size} training patients, too few for "
                    f"--val-fraction {val_fraction}; use a larger --val-fraction or more patients"
                )
            train, val = stratified_group_split(train, strata, groups, n_inner, seed)[0]
        folds.append(Fold(*(tuple(ids[np.sort(part)].tolist()) for part in (train, val, test))))
    splits = Splits(tuple(folds), patients, seed, n_folds, float(val_fraction), stratify)
    check_no_leakage(splits, patients)
    return splits


def check_no_leakage(splits: Splits, patient_of: Mapping[str, str], item: str = "slide") -> None:
    """Raise if a patient has slides in two of train/val/test of one fold.

    Args:
        splits: the splits to check.
        patient_of: slide id -> patient id.
        item: what the ids name, for the messages (``slide``, ``image``).

    Raises:
        PathattnError: naming each leaking patient, its folds and parts, and its slides; or a slide
            without a patient.
    """
    problems = []
    for k, fold in enumerate(splits.folds):
        where: dict[str, dict[str, list[str]]] = {}
        for part, slides in fold.parts().items():
            for slide in slides:
                if slide not in patient_of:
                    raise PathattnError(f"{item} {slide} in {part} of fold {k} has no patient; the splits are stale")
                where.setdefault(patient_of[slide], {}).setdefault(part, []).append(slide)
        for patient, parts in where.items():
            if len(parts) > 1:
                slides = [s for part_slides in parts.values() for s in part_slides]
                problems.append(f"patient {patient} in {' and '.join(parts)} of fold {k} ({item}s {shorten(slides)})")
    if problems:
        shown = shorten(problems, "; ")
        raise PathattnError(f"patients cross splits: {shown}; make new splits (delete the splits file)")


def _check_partition(splits: Splits, where: str, item: str) -> None:
    """Every slide of the splits in exactly one test fold, and each fold covering all slides once."""
    everything = set(splits.slide_patient)
    tested: dict[str, int] = {}
    for k, fold in enumerate(splits.folds):
        listed = [s for part in fold.parts().values() for s in part]
        if len(listed) != len(set(listed)) or set(listed) != everything:
            raise PathattnError(f"fold {k} of {where} does not list every {item} exactly once; make new splits")
        for slide in fold.test:
            tested[slide] = tested.get(slide, 0) + 1
    wrong = sorted(s for s in everything if tested.get(s, 0) != 1)
    if wrong:
        raise PathattnError(f"{item}s not in exactly one test fold of {where} ({shorten(wrong)}); make new splits")


def save_splits(path: str | os.PathLike[str], splits: Splits) -> None:
    """Write ``splits`` to ``path`` as JSON, atomically.

    The file holds ``schema``, ``version``, ``seed``, ``n_folds``, ``val_fraction``, ``stratify``,
    ``slide_patient`` (slide id -> patient id) and ``folds`` (a list of ``{"train", "val", "test"}``
    lists of slide ids).
    """
    document = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "seed": splits.seed,
        "n_folds": splits.n_folds,
        "val_fraction": splits.val_fraction,
        "stratify": splits.stratify,
        "slide_patient": dict(sorted(splits.slide_patient.items())),
        "folds": [{part: list(ids) for part, ids in fold.parts().items()} for fold in splits.folds],
    }
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")


def _parse(document: object, where: str) -> Splits:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise PathattnError(f'{where} is not a pathattn splits file (no "schema": "{SCHEMA}"); make new splits')
    if document.get("version") != SCHEMA_VERSION:
        raise PathattnError(
            f"{where} has splits version {document.get('version')}, this pathattn reads {SCHEMA_VERSION}; "
            "make new splits"
        )
    try:
        folds = tuple(Fold(*(tuple(str(s) for s in fold[part]) for part in PARTS)) for fold in document["folds"])
        return Splits(
            folds,
            {str(k): str(v) for k, v in document["slide_patient"].items()},
            int(document["seed"]),
            int(document["n_folds"]),
            float(document["val_fraction"]),
            str(document["stratify"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise PathattnError(f"{where} is malformed ({type(error).__name__}: {error}); make new splits") from None


def _check_against(splits: Splits, table: Table, where: str, source: str, item: str) -> None:
    current = slide_patients(table, source)
    unknown = sorted(set(splits.slide_patient) - set(current))
    missing = sorted(set(current) - set(splits.slide_patient))
    if unknown or missing:
        found = []
        if unknown:
            found.append(f"{len(unknown)} {item}(s) not in {source} ({shorten(unknown)})")
        if missing:
            found.append(f"{len(missing)} {item}(s) of {source} missing from the splits ({shorten(missing)})")
        raise PathattnError(
            f"{where} does not match {source}: {' and '.join(found)}; "
            f"delete the splits file to make new splits, or use the {item}s it was made for"
        )
    moved = sorted(s for s in current if current[s] != splits.slide_patient[s])
    if moved:
        raise PathattnError(
            f"{where} assigns other patients than {source} to {item}s ({shorten(moved)}); "
            "delete the splits file to make new splits"
        )
    check_no_leakage(splits, current, item)


def load_splits(
    path: str | os.PathLike[str], table: Table | None = None, source: str = "samples.csv", item: str = "slide"
) -> Splits:
    """Read splits written by :func:`save_splits` and validate them.

    Args:
        path: the JSON file.
        table: the current cohort; when given, the splits must cover exactly its slides, with the
            same patients.
        source: the table's file name, for error messages.
        item: what the ids name, for error messages (``slide``, ``image``).

    Raises:
        PathattnError: missing or malformed file, other schema version, slides not in one test fold,
            patients crossing splits, or (with ``table``) unknown or missing slide ids.
    """
    where = f"splits file {Path(path)}"
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PathattnError(f"{where} not found; make splits first or point to the right file") from None
    except json.JSONDecodeError as error:
        raise PathattnError(f"{where} is not valid JSON ({error}); delete it to make new splits") from None
    splits = _parse(document, where)
    _check_partition(splits, where, item)
    check_no_leakage(splits, splits.slide_patient, item)
    if table is not None:
        _check_against(splits, table, where, source, item)
    return splits
