"""DICOM series: one series per folder, checked, ordered in space, in HU (CT) or SUVbw (PET).

Reading goes in three steps, each refusing what it cannot handle with a one-line
:class:`~pathattn.errors.PathattnError` that names the folder (or file) and the fix:

1. **Headers.** Every regular, non-hidden file of the folder (not its sub-folders) is read with pydicom up to the
   pixels (``stop_before_pixels``). Files that are not DICOM are skipped unless their name ends in ``.dcm``;
   a ``.dcm`` file that cannot be parsed, or any file that cannot be opened, is an error naming it. Files are
   grouped by SeriesInstanceUID; with several series the error lists each UID with its SeriesDescription and
   file count, and the caller passes ``series_uid`` to choose one (a sheet's ``<modality>_series_uid`` column).
2. **Geometry.** All slices must share ImageOrientationPatient (within :data:`ORIENTATION_ATOL`), PixelSpacing
   (within :data:`PIXEL_SPACING_ATOL_MM`), Rows and Columns. Slices are ordered by ImagePositionPatient
   projected on the slice normal (row cosine x column cosine), never by file name or InstanceNumber. The
   distances between consecutive positions must all lie within ``GAP_RTOL x median + GAP_ATOL_MM`` (1% + 0.01 mm)
   of their median: a missing slice, a duplicated position or an irregular series is refused (convert such a
   series with a tool that handles it, e.g. dcm2niix, and read the NIfTI). A single file is a one-slice
   volume whose slice spacing is SliceThickness (else SpacingBetweenSlices).
3. **Pixels.** Each file is read with MONAI's :class:`~monai.data.PydicomReader`, which applies its own
   RescaleSlope/RescaleIntercept (CT in Hounsfield units; PET slices often have per-slice slopes). The voxel
   grid is (i, j, k) = (column, row, slice); the affine is the DICOM one (nibabel's "DICOM orientation"
   formula) with the slice step ``(last position - first position) / (n - 1)``, converted from LPS to RAS.

**SUVbw** (PET, Units ``BQML``): :mod:`pathattn.io.dicom_suv`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pathattn.errors import PathattnError
from pathattn.io.dicom_suv import no_suv, suv_conversion

ORIENTATION_ATOL = 1e-4  # ImageOrientationPatient cosines equal within this
PIXEL_SPACING_ATOL_MM = 1e-4  # PixelSpacing equal within this
GAP_RTOL = 0.01  # consecutive slice distances within GAP_RTOL x median + GAP_ATOL_MM of the median
GAP_ATOL_MM = 0.01
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_REQUIRED = ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")
_FIX = "re-export the complete series, or convert it with a tool that handles it (e.g. dcm2niix) and read the NIfTI"


@dataclass
class DicomSeries:
    """A DICOM series read into a voxel grid (not yet reoriented).

    Args:
        array: (I, J, K) float32 voxel values: columns, rows, slices in the stored order, rescaled (and SUV).
        affine: (4, 4) float64 voxel (i, j, k, 1) -> RAS millimetres.
        info: ``series_uid``, ``modality`` (DICOM Modality tag), ``units``, ``suv`` (PET), ``description``, ``files``.
    """

    array: np.ndarray
    affine: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def read_dicom(path: str | os.PathLike[str], *, series_uid: str | None = None, suv: bool = True) -> DicomSeries:
    """Read a DICOM series folder (or a single DICOM file) as checked in the module docstring.

    Args:
        path: a folder holding one series (or several, with ``series_uid``), or one DICOM file.
        series_uid: the SeriesInstanceUID to read when the folder holds several series.
        suv: convert PET in Bq/mL to SUVbw when the tags allow it.

    Returns:
        The voxel array (I, J, K), its affine and what was read.

    Raises:
        PathattnError: unreadable files, several series without ``series_uid``, inconsistent geometry, gaps.
    """
    path = Path(path)
    if path.is_dir():
        groups = scan_folder(path)
    else:
        ds = _header(path, strict=True)
        groups = {str(ds.get("SeriesInstanceUID", "")): [(path, ds)]}  # type: ignore[union-attr]
    uid, files = choose_series(path, groups, series_uid)
    files = sort_slices(path, files)
    affine = series_affine(path, [ds for _, ds in files])
    array = _read_pixels([p for p, _ in files])
    first = files[0][1]
    info: dict[str, Any] = {
        "series_uid": uid,
        "modality": str(first.get("Modality", "")),
        "description": str(first.get("SeriesDescription", "")),
        "files": len(files),
        "units": _units(first),
    }
    if info["modality"] == "PT":
        info["suv"] = suv_conversion([ds for _, ds in files]) if suv else no_suv("not requested (suv=False)")
        if info["suv"]["converted"]:
            array *= np.float32(info["suv"]["factor"])
            info["units"] = "SUVbw"
    return DicomSeries(array, affine, info)


def check_readable(path: Path) -> None:
    """Refuse a file that does not exist, cannot be read or is empty.

    Raises:
        PathattnError: naming the file and the fix.
    """
    if not path.exists():
        raise PathattnError(f"{path}: no such file or folder; check the path")
    if not os.access(path, os.R_OK):
        raise PathattnError(f"{path}: permission denied; make it readable (chmod a+r) or run as a user who can read it")
    if path.is_file() and path.stat().st_size == 0:
        raise PathattnError(f"{path}: the file is empty; copy it again")


def unreadable(path: Path, error: BaseException, what: str) -> PathattnError:
    """The one-line error for a reader's exception on ``path``.

    Args:
        path: the file or folder.
        error: what the reader raised.
        what: the kind of file, e.g. ``"NIfTI file"``.
    """
    if isinstance(error, PermissionError):
        return PathattnError(f"{path}: permission denied; make it readable (chmod a+r)")
    text = " ".join(str(error).split())
    if "ITK ERROR:" in text:  # ITK prefixes its reason with the source line and the object address
        text = text.split("ITK ERROR:", 1)[1].split("):", 1)[-1].strip()
    text = text[:200] or type(error).__name__
    return PathattnError(
        f"{path}: cannot read this {what} ({text}); check that it is complete (not truncated) and valid"
    )


def scan_folder(folder: Path) -> dict[str, list[tuple[Path, Dataset]]]:
    """Headers of the DICOM files of ``folder``, grouped by SeriesInstanceUID (file order kept).

    Raises:
        PathattnError: a file cannot be opened, a ``.dcm`` file is not DICOM, or the folder holds no DICOM file.
    """
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        ds = _header(path, strict=path.suffix.lower() == ".dcm")
        if ds is None or "SeriesInstanceUID" not in ds:  # not DICOM, or e.g. a DICOMDIR
            continue
        groups.setdefault(str(ds.SeriesInstanceUID), []).append((path, ds))
    if not groups:
        raise PathattnError(f"{folder}: no DICOM image files in this folder; point to a folder holding one series")
    return groups


def choose_series(
    folder: Path, groups: dict[str, list[tuple[Path, Dataset]]], series_uid: str | None
) -> tuple[str, list[tuple[Path, Dataset]]]:
    """The series to read: the only one, or ``series_uid``.

    Raises:
        PathattnError: several series and no (or an unknown) ``series_uid``; the message lists them.
    """
    if series_uid is not None and series_uid in groups:
        return series_uid, groups[series_uid]
    if series_uid is None and len(groups) == 1:
        return next(iter(groups.items()))
    listing = "; ".join(
        f"{uid} ({str(files[0][1].get('SeriesDescription', '')) or 'no description'}, {len(files)} files)"
        for uid, files in groups.items()
    )
    found = f"holds no series {series_uid}" if series_uid is not None else f"holds {len(groups)} DICOM series"
    raise PathattnError(
        f"{folder}: {found}: {listing}; choose one in the sample sheet's <modality>_series_uid column (ct_series_uid)"
    )


def sort_slices(folder: Path, files: list[tuple[Path, Dataset]]) -> list[tuple[Path, Dataset]]:
    """The slices ordered along the slice normal, after checking that they form one regular grid.

    Raises:
        PathattnError: missing tags, mixed orientations, pixel spacings or sizes, or irregular positions.
    """
    for path, ds in files:
        _check_image(path, ds)
    _check_same(folder, files, "ImageOrientationPatient", ORIENTATION_ATOL)
    _check_same(folder, files, "PixelSpacing", PIXEL_SPACING_ATOL_MM)
    _check_same(folder, files, "Rows", 0)
    _check_same(folder, files, "Columns", 0)
    normal = _normal(files[0][1])
    ordered = sorted(files, key=lambda f: float(np.dot(_position(f[1]), normal)))
    _check_positions(folder, [_position(ds) for _, ds in ordered], normal)
    return ordered


def series_affine(folder: Path, slices: Sequence[Dataset]) -> np.ndarray:
    """The (4, 4) voxel (column, row, slice) -> RAS mm affine of ordered slices.

    Raises:
        PathattnError: a zero or negative PixelSpacing or slice spacing.
    """
    first = slices[0]
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    cosines = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    if len(slices) > 1:
        step = (_position(slices[-1]) - _position(first)) / (len(slices) - 1)
    else:
        step = _normal(first) * _single_slice_spacing(folder, first)
    if min(row_spacing, column_spacing) <= 0:
        raise PathattnError(f"{folder}: PixelSpacing {list(first.PixelSpacing)} is not positive; fix the header")
    affine = np.eye(4)
    affine[:3, 0] = cosines[:3] * column_spacing  # i: along a row (column index)
    affine[:3, 1] = cosines[3:] * row_spacing  # j: down a column (row index)
    affine[:3, 2] = step
    affine[:3, 3] = _position(first)
    return LPS_TO_RAS @ affine


def _header(path: Path, *, strict: bool) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError as error:
        if strict:
            raise unreadable(path, error, "DICOM file") from None
        return None
    except Exception as error:  # noqa: BLE001 - any reader failure becomes one line naming the file
        raise unreadable(path, error, "DICOM file") from None


def _check_image(path: Path, ds: Dataset) -> None:
    missing = [tag for tag in _REQUIRED if tag not in ds]
    if missing:
        raise PathattnError(
            f"{path}: no {', '.join(missing)}: not a cross-sectional image (e.g. a scout or secondary capture); "
            "remove it from the folder or choose another series_uid"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise PathattnError(f"{path}: multi-frame DICOM is not supported; convert it to NIfTI (e.g. dcm2niix)")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise PathattnError(f"{path}: colour DICOM (SamplesPerPixel > 1) is not a CT/MRI/PET volume; remove it")


def _check_same(folder: Path, files: list[tuple[Path, Dataset]], tag: str, atol: float) -> None:
    reference = np.atleast_1d(np.asarray(files[0][1].get(tag), dtype=np.float64))
    for path, ds in files[1:]:
        value = np.atleast_1d(np.asarray(ds.get(tag), dtype=np.float64))
        if value.shape != reference.shape or not np.allclose(value, reference, rtol=0, atol=atol):
            raise PathattnError(
                f"{folder}: slices have different {tag} ({files[0][0].name}: {reference.tolist()}, "
                f"{path.name}: {value.tolist()}); the folder mixes series: keep one series per folder"
            )


def _check_positions(folder: Path, positions: list[np.ndarray], normal: np.ndarray) -> None:
    if len(positions) < 2:
        return
    along = np.array([float(np.dot(p, normal)) for p in positions])
    steps = np.diff(along)
    median = float(np.median(steps))
    if median <= GAP_ATOL_MM:
        raise PathattnError(f"{folder}: several slices share one position (several acquisitions or phases?); {_FIX}")
    bad = np.flatnonzero(np.abs(steps - median) > GAP_RTOL * median + GAP_ATOL_MM)
    if bad.size:
        k = int(bad[0])
        raise PathattnError(
            f"{folder}: slice positions are not evenly spaced ({steps[k]:.4g} mm between slices {k} and {k + 1}, "
            f"median {median:.4g} mm; a missing or extra slice?); {_FIX}"
        )
    line = positions[0] + np.outer(np.arange(len(positions)), (positions[-1] - positions[0]) / (len(positions) - 1))
    if np.abs(np.asarray(positions) - line).max() > GAP_RTOL * median + GAP_ATOL_MM:
        raise PathattnError(f"{folder}: slice positions do not lie on one line (shifted slices); {_FIX}")


def _single_slice_spacing(folder: Path, ds: Dataset) -> float:
    for tag in ("SliceThickness", "SpacingBetweenSlices"):
        if ds.get(tag) not in (None, ""):
            value = float(ds.get(tag))
            if not value > 0:
                raise PathattnError(f"{folder}: {tag} {value} is not positive; fix the header")
            return value
    raise PathattnError(f"{folder}: one slice without SliceThickness: its spacing is unknown; fix the header")


def _read_pixels(paths: Sequence[Path]) -> np.ndarray:
    from monai.data import PydicomReader

    reader = PydicomReader()  # applies RescaleSlope/RescaleIntercept per slice
    slices = []
    for path in paths:
        try:
            pixels, _ = reader.get_data(reader.read(str(path)))
        except Exception as error:  # noqa: BLE001 - any reader failure becomes one line naming the file
            raise unreadable(path, error, "DICOM file") from None
        slices.append(np.asarray(pixels, dtype=np.float32))  # (columns, rows): MONAI swaps to (i, j)
    return np.stack(slices, axis=-1)


def _position(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.ImagePositionPatient, dtype=np.float64)


def _normal(ds: Dataset) -> np.ndarray:
    cosines = np.asarray(ds.ImageOrientationPatient, dtype=np.float64)
    return np.cross(cosines[:3], cosines[3:])


def _units(ds: Dataset) -> str:
    if ds.get("Modality") == "CT":
        return "HU"
    return str(ds.get("Units", "") or ds.get("RescaleType", "") or "")
