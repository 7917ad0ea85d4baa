"""Readers of a sample table: slide ids, their patients and the per-patient values of a column, checked.

A *table* is a sequence of rows (mappings, e.g. the rows of ``samples.csv`` read with ``csv.DictReader``) with a
``slide_id`` and, optionally, a ``patient_id`` (when the column is absent every slide is its own patient).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pathattn.errors import PathattnError, shorten

Table = Sequence[Mapping[str, object]]


def _value(row: Mapping[str, object], column: str, source: str) -> str:
    value = row.get(column)
    if value is None or str(value).strip() == "":
        slide = row.get("slide_id", "?")
        raise PathattnError(f"column '{column}' of {source} is missing or empty for slide {slide}; fill it in")
    return str(value).strip()


def slide_ids(table: Table, source: str = "samples.csv") -> list[str]:
    """The slide ids of a table, in order.

    Raises:
        PathattnError: a row lacks a slide id, or a slide id is repeated.
    """
    ids = [_value(row, "slide_id", source) for row in table]
    seen: set[str] = set()
    repeated = [i for i in ids if i in seen or seen.add(i)]
    if repeated:
        raise PathattnError(f"{source} lists slide ids more than once ({shorten(repeated)}); keep one row per slide")
    return ids


def slide_patients(table: Table, source: str = "samples.csv") -> dict[str, str]:
    """Slide id -> patient id; without a ``patient_id`` column every slide is its own patient."""
    ids = slide_ids(table, source)
    if not any("patient_id" in row for row in table):
        return {i: i for i in ids}
    return {i: _value(row, "patient_id", source) for i, row in zip(ids, table, strict=True)}


def patient_labels(table: Table, label_column: str = "label", source: str = "samples.csv") -> dict[str, str]:
    """Patient id -> the value of ``label_column`` shared by all of the patient's slides.

    Raises:
        PathattnError: a row lacks the value, or a patient's slides disagree (the message names the
            patient and its slides with their values).
    """
    patients = slide_patients(table, source)
    values: dict[str, dict[str, str]] = {}
    for row in table:
        slide = str(row["slide_id"]).strip()
        values.setdefault(patients[slide], {})[slide] = _value(row, label_column, source)
    for patient, by_slide in values.items():
        if len(set(by_slide.values())) > 1:
            listed = ", ".join(f"{s}={v}" for s, v in by_slide.items())
            raise PathattnError(
                f"patient {patient} has slides with different '{label_column}' in {source} ({listed}); "
                f"give every slide of a patient the same '{label_column}'"
            )
    return {patient: next(iter(by_slide.values())) for patient, by_slide in values.items()}


def check_labels(labels: Iterable[object], column: str = "label", source: str = "samples.csv") -> list[str]:
    """The sorted distinct classes of ``labels``, which must number at least two.

    Raises:
        PathattnError: fewer than two classes, e.g. ``label column 'label' of samples.csv has only one
            class (1); a classifier needs at least two``.
    """
    classes = sorted({str(v) for v in labels})
    if not classes:
        raise PathattnError(f"label column '{column}' of {source} has no rows; a classifier needs labelled slides")
    if len(classes) < 2:
        raise PathattnError(
            f"label column '{column}' of {source} has only one class ({classes[0]}); a classifier needs at least two"
        )
    return classes
