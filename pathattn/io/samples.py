"""Slide lists: from paths and folders on the command line, or from a sample sheet (CSV/TSV).

A sample sheet has one row per slide with at least ``slide_path`` (or ``path``); ``slide_id`` defaults
to the file name without suffix, and an optional ``mpp`` column gives the level-0 µm/px of slides whose
metadata lacks it or is wrong (it overrides the metadata). Relative paths are relative to the sheet's folder
and stored absolute. Ids follow the id rule of :mod:`pathattn.io.ids`. Other columns (patient_id, label, time,
event, ...) are kept for later stages.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pathattn.errors import PathattnError
from pathattn.io.ids import check_id
from pathattn.io.slide import find_slides, slide_id_of

T = TypeVar("T")
PATH_COLUMNS = ("slide_path", "path")


@dataclass(frozen=True)
class SlideEntry:
    """One slide to process.

    Args:
        slide_id: unique id, used to name every output of the slide.
        path: the slide file.
        mpp: level-0 µm/px to use when the slide's metadata has none.
        extra: the other columns of its sample-sheet row.
    """

    slide_id: str
    path: Path
    mpp: float | None = None
    extra: dict[str, str] = field(default_factory=dict)


def entries_from_paths(paths: Iterable[str | os.PathLike[str]]) -> list[SlideEntry]:
    """Slides from files and folders (a folder contributes every slide file directly inside it).

    Raises:
        PathattnError: a path does not exist, or a folder holds no slide.
    """
    entries = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = find_slides(path)
            if not found:
                raise PathattnError(f"--slides folder {path} holds no slide files (.svs, .tif, .ndpi, .mrxs, ...)")
            entries.extend(SlideEntry(check_id(slide_id_of(p), "slide", "--slides"), p.absolute()) for p in found)
        else:
            entries.append(SlideEntry(check_id(slide_id_of(path), "slide", "--slides"), path.absolute()))
    return check_unique(entries)


def _sniff_delimiter(path: Path, header: str) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") or header.count("\t") > header.count(",") else ","


def read_table(
    path: str | os.PathLike[str], required: Iterable[str] = (), aliases: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The rows of a CSV or TSV file (the delimiter is detected), values stripped of spaces.

    Args:
        path: the file.
        required: columns that must be present.
        aliases: column → another column that stands for it when it is absent (``slide_id`` → ``volume_id``).

    Raises:
        PathattnError: the file is missing, empty, or lacks a required column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (FileNotFoundError, IsADirectoryError):
        raise PathattnError(f"--samples file not found: {path}") from None
    reader = csv.DictReader(text.splitlines(), delimiter=_sniff_delimiter(path, text.partition("\n")[0]))
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    for column, alias in (aliases or {}).items():
        rows = [{column: row[alias], **row} if column not in row and alias in row else row for row in rows]
    if not rows:
        raise PathattnError(f"--samples {path} has no rows; it needs a header line and one line per slide")
    missing = [c for c in required if c not in rows[0]]
    if missing:
        raise PathattnError(f"--samples {path} lacks the column(s) {', '.join(missing)}; add them to the header")
    return rows


def _mpp(text: str, where: str) -> float | None:
    """A sample-sheet ``mpp`` cell as a positive µm/px (None when blank).

    Raises:
        PathattnError: not a number, or not positive and finite.
    """
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise PathattnError(f"{where}: mpp '{text}' is not a number; give the level-0 µm/px, e.g. 0.25") from None
    if not (math.isfinite(value) and value > 0):
        raise PathattnError(f"{where}: mpp {text} must be a positive level-0 resolution in µm/px, e.g. 0.25")
    return value


def read_sample_sheet(path: str | os.PathLike[str]) -> list[SlideEntry]:
    """Slides listed in a CSV or TSV sample sheet, their paths made absolute (relative ones: to the sheet's folder).

    Raises:
        PathattnError: the sheet is missing, lacks a ``slide_path`` column, or has a blank slide path, a bad
            ``mpp`` value or an id outside the id rule (:mod:`pathattn.io.ids`).
    """
    path = Path(path)
    rows = read_table(path)
    columns = rows[0].keys()
    path_column = next((c for c in PATH_COLUMNS if c in columns), None)
    if path_column is None:
        raise PathattnError(f"--samples {path} needs a 'slide_path' column (the slide file of each row)")
    entries = []
    for line, row in enumerate(rows, start=2):
        where = f"--samples {path} line {line}"
        if not row[path_column]:
            raise PathattnError(f"{where}: the {path_column} cell is empty; give the slide file of every row")
        slide_path = (path.parent / row[path_column]).absolute()
        slide_id = check_id(row.get("slide_id") or slide_id_of(slide_path), "slide", where)
        extra = {k: v for k, v in row.items() if k not in ("slide_id", path_column, "mpp")}
        entries.append(SlideEntry(slide_id, slide_path, _mpp(row.get("mpp", ""), where), extra))
    return check_unique(entries)


def check_unique(entries: list[SlideEntry]) -> list[SlideEntry]:
    """Return ``entries`` unchanged, or raise if two share a slide id (their outputs would collide)."""
    seen: dict[str, Path] = {}
    for entry in entries:
        if entry.slide_id in seen and seen[entry.slide_id] != entry.path:
            raise PathattnError(
                f"two slides share the id '{entry.slide_id}' ({seen[entry.slide_id]}, {entry.path}); "
                "rename one or give distinct slide_id values in a sample sheet"
            )
        seen[entry.slide_id] = entry.path
    return list({e.slide_id: e for e in entries}.values())


def select_ids(found: Mapping[str, T], slide_ids: Sequence[str] | None, source: str) -> dict[str, T]:
    """The items of the slides named by ``--slide-ids`` (all of them when ``slide_ids`` is None).

    Args:
        found: slide id → item (a file, a sample-sheet entry) available to the command.
        slide_ids: the ids asked for, in the order of the result.
        source: where ``found`` comes from (an option and its value), for the error message.

    Raises:
        PathattnError: an id is not among ``found``.
    """
    if slide_ids is None:
        return dict(found)
    unknown = [s for s in slide_ids if s not in found]
    if unknown:
        listed = ", ".join(unknown[:10]) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
        raise PathattnError(
            f"--slide-ids: {len(unknown)} slide(s) not in {source}: {listed}; check the ids or run the earlier stage"
        )
    return {s: found[s] for s in slide_ids}


def select_slides(
    slides: Sequence[str | os.PathLike[str]] | None,
    samples: str | os.PathLike[str] | None,
    slide_ids: Sequence[str] | None = None,
) -> list[SlideEntry]:
    """The slides a command is given: ``--slides`` (files or folders) or ``--samples``, narrowed by ``--slide-ids``.

    Raises:
        PathattnError: both or neither of ``slides`` and ``samples``, or an id that is not among them.
    """
    if bool(slides) == bool(samples):
        raise PathattnError(
            "give either --slides (files or folders) or --samples (a sample sheet), not both or neither"
        )
    entries = read_sample_sheet(samples) if samples else entries_from_paths(slides or ())
    source = f"--samples {samples}" if samples else "--slides"
    return list(select_ids({e.slide_id: e for e in entries}, slide_ids, source).values())


def slide_paths(samples: str | os.PathLike[str] | None) -> dict[str, Path]:
    """Slide id → slide file of a sample sheet (empty without one): for slides that moved since tiling."""
    return {e.slide_id: e.path for e in read_sample_sheet(samples)} if samples else {}
