"""Checks of volume files and arrays before they are used; each failure is one :class:`PathattnError` line.

Header spacings are checked before the readers run, because nibabel replaces a zero or negative ``pixdim``
and ITK flips an axis with a negative spacing, silently. Arrays are checked after reading: 4-D input needs a
``volume_index``, the affine must not be singular and no voxel may be NaN or infinite.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.dicom import unreadable

_HEADER_BYTES = 16384  # text headers (NRRD, MetaImage) are read up to this size for the spacing check


def check_nifti_zooms(path: Path) -> None:
    """Refuse zero or negative pixdim, which nibabel would silently replace (by 1 or its absolute value)."""
    try:
        with nib.openers.ImageOpener(str(path)) as stream:
            raw = stream.read(4)
            stream.seek(0)
            nifti2 = 540 in (int.from_bytes(raw, "little"), int.from_bytes(raw, "big"))
            header_class = nib.Nifti2Header if nifti2 else nib.Nifti1Header
            header = header_class.from_fileobj(stream, check=False)
    except Exception as error:  # noqa: BLE001 - any reader failure becomes one line naming the file
        raise unreadable(path, error, "NIfTI file") from None
    ndim = int(header["dim"][0])
    zooms = np.asarray(header["pixdim"][1 : 1 + min(max(ndim, 1), 3)], dtype=np.float64)
    if not (np.isfinite(zooms).all() and (zooms > 0).all()):
        raise PathattnError(f"{path}: voxel spacing (pixdim) {zooms.tolist()} is not positive; fix the header")


def check_header_spacing(path: Path) -> None:
    """Refuse a zero or negative spacing in a MetaImage or NRRD header (ITK would flip the axis instead)."""
    keys = ("elementspacing", "elementsize", "spacings")
    try:
        with open(path, "rb") as stream:
            head = stream.read(_HEADER_BYTES).decode("latin-1")
    except OSError as error:
        raise unreadable(path, error, "volume file") from None
    for line in head.splitlines():
        key, _, value = line.partition("=" if "=" in line.split(":", 1)[0] else ":")
        if key.strip().lower() in keys:
            numbers = [_number(v) for v in value.split() if v.lower() != "nan"]  # NRRD: nan for non-spatial axes
            if any(not v > 0 for v in numbers):
                raise PathattnError(f"{path}: voxel spacing {numbers} is not positive; fix the header")
        if not line.strip() or key.strip().lower() == "elementdatafile":  # end of the header
            return


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def select_volume(path: Path, data: np.ndarray, volume_index: int | None) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1 and volume_index is None:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim > 4:
        raise PathattnError(f"{path}: {data.ndim}-D image {data.shape}; give a 3-D volume (or a 4-D one)")
    count = data.shape[3] if data.ndim == 4 else 1
    if data.ndim == 4 and volume_index is None:
        raise PathattnError(
            f"{path}: 4-D image with {count} volumes {data.shape}; choose one with volume_index (0-{count - 1})"
        )
    if volume_index is not None and not 0 <= volume_index < count:
        raise PathattnError(f"{path}: volume_index {volume_index} is out of range: the file holds {count} volume(s)")
    return data[..., volume_index] if data.ndim == 4 else data


def check_affine(path: Path, affine: np.ndarray) -> None:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    if not (np.isfinite(affine).all() and (spacing > 0).all() and abs(np.linalg.det(affine[:3, :3])) > 0):
        raise PathattnError(f"{path}: the voxel-to-world affine is singular (a zero spacing?); fix the header")


def check_finite(path: Path, data: np.ndarray) -> None:
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise PathattnError(
            f"{path}: {bad} voxels are NaN or infinite; replace them (e.g. by the background value) and save again"
        )
