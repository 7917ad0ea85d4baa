"""Run manifests: one CSV row per slide, merged across runs and safe under concurrent writers.

Each stage records a dataclass per slide (status, counts, error). The manifest of a run folder keeps
the rows of earlier runs for slides not processed now, is sorted by slide id, and is rewritten
atomically under an exclusive lock, so several jobs writing into one folder (one Snakemake job per
slide) lose no row.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from pathattn.errors import PathattnError
from pathattn.io.atomic import write_text_atomic

TRAILING_COLUMNS = ("seconds", "error")

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (POSIX; a no-op where fcntl is missing)."""
    with lock_path.open("a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def write_manifest(path: Path, row_type: type, rows: Sequence[Any]) -> None:
    """Merge ``rows`` (dataclass instances with a ``slide_id``) into the manifest at ``path``.

    Args:
        path: the CSV file.
        row_type: the dataclass of the rows; its fields are the columns (``seconds`` and ``error`` last).
        rows: this run's rows; they replace earlier rows of the same slides.
    """
    names = [f.name for f in fields(row_type) if not f.name.startswith("_")]
    last = [name for name in TRAILING_COLUMNS if name in names]
    columns = [name for name in names if name not in last] + last
    with exclusive(path.with_name(f".{path.name}.lock")):
        merged: dict[str, dict[str, Any]] = {}
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as f:
                merged = {row["slide_id"]: row for row in csv.DictReader(f)}
        merged.update({row.slide_id: asdict(row) for row in rows})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(row for _, row in sorted(merged.items()))
        write_text_atomic(path, buffer.getvalue())


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write rows (their keys, in first-seen order, are the columns) as a CSV file atomically."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def run_files(folder: str | Path, subfolder: str, option: str, command: str) -> list[Path]:
    """The ``.h5`` files of a stage's run folder: ``DIR/<subfolder>/*.h5``, or ``DIR/*.h5`` given that subfolder.

    Args:
        folder: the run folder (or its subfolder).
        subfolder: where the stage writes its files (``coords``, ``attention``).
        option: the command-line option that named the folder, for the error message.
        command: the command that writes such a folder, for the error message.

    Raises:
        PathattnError: the folder is missing or holds no file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PathattnError(f"{option} folder not found: {folder}; pass the output folder of 'pathattn {command}'")
    source = folder / subfolder if (folder / subfolder).is_dir() else folder
    files = sorted(p for p in source.glob("*.h5") if not p.name.startswith("."))
    if not files:
        raise PathattnError(f"{option} {folder} holds no {subfolder} files (.h5); run 'pathattn {command}' first")
    return files


def read_manifest(path: Path) -> list[dict[str, str]]:
    """The rows of a manifest (empty when it does not exist)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
