"""Volume lists: from image files and DICOM folders on the command line, or from a volume sample sheet.

A **volume sample sheet** (CSV/TSV) has one row per study and one column per image, named
``<modality>_path``: ``ct_path``, ``pet_path``, ``mr_path``, ``t1_path``, ``t2_path``, ``flair_path``, ...
(every ``*_path`` column but ``slide_path`` and ``label_path``); the modality is the column's prefix in upper
case. A blank cell leaves that modality out of the row's study. ``volume_id`` names the study (default: the
first image's name), ``label_path`` an optional label volume on the image's grid, ``<modality>_series_uid``
(``ct_series_uid``, ...) the SeriesInstanceUID to read from a DICOM folder that holds several series. Relative
paths are relative to the sheet's folder and stored absolute; ids follow :mod:`pathattn.io.ids`. Other columns
(patient_id, centre, label, time, event, ...) are kept for later stages.

``pathattn tile`` treats a sheet with such columns, or paths that are all volume files
(:data:`pathattn.io.volume.VOLUME_SUFFIXES`) or folders without slide files, as volumes; everything else as
slides. A folder of volume files (``.nii.gz``, ``.nrrd``, ``.mha``) gives one study per file; any other folder is
one DICOM series.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathattn.errors import PathattnError
from pathattn.io.ids import check_id
from pathattn.io.samples import read_table, select_ids
from pathattn.io.slide import find_slides
from pathattn.io.volume import is_volume_path, volume_id_of

NOT_IMAGE_COLUMNS = ("slide_path", "label_path")
SERIES_SUFFIX = "_series_uid"


@dataclass(frozen=True)
class VolumeEntry:
    """One study to process.

    Args:
        volume_id: unique id, used to name every output of the study.
        paths: modality (upper case) → image file or DICOM folder, in the sheet's column order.
        label_path: label volume on the image's grid, or None.
        extra: the other columns of its sample-sheet row.
        series: modality → the SeriesInstanceUID to read from its DICOM folder (only where the sheet gives one).
    """

    volume_id: str
    paths: Mapping[str, Path]
    label_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    series: Mapping[str, str] = field(default_factory=dict)

    @property
    def slide_id(self) -> str:
        """The item id under the name the batch runner uses for every stage."""
        return self.volume_id


def image_columns(columns: Iterable[str]) -> list[str]:
    """The ``<modality>_path`` columns of a sheet, in order."""
    return [c for c in columns if c.endswith("_path") and c not in NOT_IMAGE_COLUMNS and len(c) > len("_path")]


def is_volume_sheet(path: str | os.PathLike[str]) -> bool:
    """Whether a sample sheet lists volumes (it has ``<modality>_path`` columns or ``volume_id``)."""
    columns = read_table(path)[0].keys()
    return "slide_path" not in columns and (bool(image_columns(columns)) or "volume_id" in columns)


def read_volume_sheet(path: str | os.PathLike[str]) -> list[VolumeEntry]:
    """Studies listed in a volume sample sheet, their paths made absolute.

    Raises:
        PathattnError: no image column, a ``<modality>_series_uid`` column without its image column, a row
            without any image, or an id outside the id rule.
    """
    path = Path(path)
    rows = read_table(path)
    columns = image_columns(rows[0].keys())
    if not columns:
        raise PathattnError(
            f"--samples {path} has no image column; name one column per modality '<modality>_path' (ct_path, pet_path)"
        )
    series_columns = [c for c in rows[0] if c.endswith(SERIES_SUFFIX)]
    for column in series_columns:
        if column.removesuffix(SERIES_SUFFIX) + "_path" not in columns:
            raise PathattnError(
                f"--samples {path}: column {column} names no image column "
                f"({column.removesuffix(SERIES_SUFFIX)}_path); rename it after one of {', '.join(columns)}"
            )
    entries = []
    for line, row in enumerate(rows, start=2):
        where = f"--samples {path} line {line}"
        paths = {c.removesuffix("_path").upper(): (path.parent / row[c]).absolute() for c in columns if row[c]}
        if not paths:
            raise PathattnError(f"{where}: every image cell ({', '.join(columns)}) is empty; give at least one image")
        volume_id = check_id(row.get("volume_id") or volume_id_of(next(iter(paths.values()))), "volume", where)
        label = (path.parent / row["label_path"]).absolute() if row.get("label_path") else None
        extra = {k: v for k, v in row.items() if k not in ("volume_id", "label_path", *columns, *series_columns)}
        series = {c.removesuffix(SERIES_SUFFIX).upper(): row[c] for c in series_columns if row[c]}
        entries.append(VolumeEntry(volume_id, paths, label, extra, series))
    return _unique(entries)


def entries_from_volume_paths(paths: Iterable[str | os.PathLike[str]], modality: str) -> list[VolumeEntry]:
    """Single-modality studies from image files and DICOM folders (one study each).

    Raises:
        PathattnError: a path that does not exist.
    """
    entries = []
    for raw in _expand(paths):
        path = Path(raw)
        if not path.exists():
            raise PathattnError(
                f"--slides: {path} does not exist; give volume files (.nii.gz, .nrrd, .mha) or DICOM folders"
            )
        entries.append(
            VolumeEntry(check_id(volume_id_of(path), "volume", "--slides"), {modality.upper(): path.absolute()})
        )
    return _unique(entries)


def _volume_files(folder: Path) -> list[Path]:
    """The volume files directly inside a folder, DICOM slices (``.dcm``) aside."""
    return sorted(p for p in folder.iterdir() if p.is_file() and is_volume_path(p) and p.suffix.lower() != ".dcm")


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Paths with each folder of volume files replaced by its files (other folders are DICOM series)."""
    expanded: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files = _volume_files(path) if path.is_dir() else []
        expanded.extend(files or [path])
    return expanded


def _unique(entries: list[VolumeEntry]) -> list[VolumeEntry]:
    seen: set[str] = set()
    for entry in entries:
        if entry.volume_id in seen:
            raise PathattnError(f"two studies share the id '{entry.volume_id}'; give distinct volume_id values")
        seen.add(entry.volume_id)
    return entries


def lists_volumes(paths: Sequence[str | os.PathLike[str]] | None, samples: str | os.PathLike[str] | None) -> bool:
    """Whether a command's inputs (``--slides`` or ``--samples``) are volumes rather than slides."""
    if samples:
        return is_volume_sheet(samples)
    return bool(paths) and all(_is_volume_input(Path(p)) for p in paths or ())


def _is_volume_input(path: Path) -> bool:
    """A volume file, or a folder without slide files that holds volume files or DICOM files."""
    if not path.is_dir():
        return is_volume_path(path)
    if find_slides(path):
        return False
    return any(f.is_file() and (is_volume_path(f) or _is_dicom(f)) for f in path.iterdir())


def _is_dicom(path: Path) -> bool:
    """Whether a file starts with the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def select_volumes(
    paths: Sequence[str | os.PathLike[str]] | None,
    samples: str | os.PathLike[str] | None,
    volume_ids: Sequence[str] | None = None,
    modality: str = "CT",
) -> list[VolumeEntry]:
    """The studies a command is given, narrowed by ``--slide-ids``.

    Raises:
        PathattnError: both or neither of ``paths`` and ``samples``, or an id not among them.
    """
    if bool(paths) == bool(samples):
        raise PathattnError("give either --slides (volume files or DICOM folders) or --samples (a sample sheet)")
    entries = read_volume_sheet(samples) if samples else entries_from_volume_paths(paths or (), modality)
    source = f"--samples {samples}" if samples else "--slides"
    return list(select_ids({e.volume_id: e for e in entries}, volume_ids, source).values())
