"""CT, MRI and PET volumes read onto a RAS voxel grid with their spacing, origin and affine.

**Formats and readers** (MONAI's image readers; the array and affine are what they return):

- NIfTI (``.nii``, ``.nii.gz``): :class:`~monai.data.NibabelReader` (nibabel; scl_slope/inter applied);
- NRRD (``.nrrd``, ``.nhdr``) and MetaImage (``.mha``, ``.mhd``): :class:`~monai.data.ITKReader`;
- DICOM: a folder holding one series, or one ``.dcm`` file (:mod:`pathattn.io.dicom`, on
  :class:`~monai.data.PydicomReader`, with series selection, slice ordering, HU and SUVbw).

The readers are called directly (``read`` then ``get_data``, what :class:`~monai.transforms.LoadImage` does
inside): a ``LoadImage`` instantiates every default reader, which logs a warning about GPU DICOM decoding each
time, and falls back to other readers when the chosen one fails, hiding the reason.

**Why ITK for NRRD/MHA.** MHA/MHD has only one MONAI reader, ``ITKReader``, so ``itk-io`` (with ``itk-core``:
105 MB of wheels, about 560 MB installed) is needed anyway; it reads NRRD as well, so ``pynrrd`` (28 kB, NRRD
only, for ``NrrdReader``) would be a second code path for no gain. SimpleITK (51 MB wheel) has no MONAI reader.

**Orientation.** Every volume is reoriented with ``monai.transforms.Orientation(axcodes="RAS")`` (axis flips and
permutations only, never interpolation): index i increases towards Right, j towards Anterior, k towards Superior,
as ``nibabel.as_closest_canonical`` does. The result is a :class:`Volume` whose ``array`` is (C, I, J, K) float32
and ``affine`` maps (i, j, k, 1) to RAS millimetres; ``sources`` records per channel the file, format, original
orientation (axcodes, e.g. ``"LPS"``), original affine and spacing, and units (and SUV conversion for PET).

**Checks** (:mod:`pathattn.io.volume_checks`; each a one-line :class:`~pathattn.errors.PathattnError` naming
the file and the fix): missing, unreadable (permission), empty, truncated or corrupt files; a zero or negative
spacing in the header or a singular affine; 4-D input without ``volume_index``; NaN or infinite voxels.

**Studies.** :func:`read_study` reads several modalities and resamples them with MONAI's
:class:`~monai.transforms.ResampleToMatch` (bilinear) onto the **reference grid: the CT's when there is a CT,
else the first modality given**. Voxels outside a modality's own field of view take that modality's minimum value
(air for CT, background for PET/MR). **Labels** are never resampled: :func:`read_label` requires the label's RAS
grid to equal the image's (same shape, affine entries within :data:`AFFINE_ATOL_MM`).
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.dicom import check_readable, read_dicom, unreadable
from pathattn.io.volume_checks import (
    check_affine,
    check_finite,
    check_header_spacing,
    check_nifti_zooms,
    select_volume,
)

VolumeFormat = Literal["nifti", "nrrd", "metaimage", "dicom"]
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")  # a folder = a DICOM series
_FORMATS: dict[str, VolumeFormat] = {
    ".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "metaimage",
    ".mhd": "metaimage", ".dcm": "dicom",
}  # fmt: skip
_FORMAT_NAMES = {"nifti": "NIfTI file", "nrrd": "NRRD file", "metaimage": "MetaImage file", "dicom": "DICOM file"}
AFFINE_ATOL_MM = 1e-3  # a label's RAS affine must equal the image's within this (mm), entry by entry
LABEL_VALUE_ATOL = 1e-3  # label voxels must be integers within this
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # nibabel axcodes: i -> R, j -> A, k -> S
_DICOM_MODALITIES = {"PT": "PET", "MR": "MR", "CT": "CT"}
_NAME_MODALITIES = {"CT": "CT", "PET": "PET", "PT": "PET", "MR": "MR", "MRI": "MR", "T1": "T1", "T1C": "T1C",
                    "T1CE": "T1C", "T2": "T2", "FLAIR": "FLAIR", "DWI": "DWI", "ADC": "ADC"}  # fmt: skip


@dataclass
class Volume:
    """A volume (one or several aligned channels) on a RAS voxel grid.

    Args:
        array: (C, I, J, K) float32 voxel values; i towards Right, j towards Anterior, k towards Superior.
        affine: (4, 4) float64 voxel (i, j, k, 1) -> RAS millimetres.
        modalities: one per channel, upper case (``"CT"``, ``"PET"``, ``"MR"``, ``"T1"``, ..., ``"LABEL"``).
        sources: one dict per channel: ``path``, ``format``, ``orientation`` (original axcodes), ``affine``
            (original, list of lists), ``spacing`` (original), ``units``, and ``series_uid``, ``suv``
            (``{"converted", "factor", "reason"}``, PET), ``volume_index``, ``resampled_to`` where they apply.
    """

    array: np.ndarray
    affine: np.ndarray
    modalities: tuple[str, ...]
    sources: tuple[dict, ...]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Millimetres between voxel centres along i, j, k (norms of the affine's columns)."""
        return _spacing(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(I, J, K): the grid size."""
        return tuple(int(n) for n in self.array.shape[1:])  # type: ignore[return-value]


def is_volume_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a volume: a file with a suffix of :data:`VOLUME_SUFFIXES`, or a folder (DICOM series)."""
    path = Path(path)
    return path.is_dir() or _suffix(path) is not None


def volume_id_of(path: str | os.PathLike[str]) -> str:
    """The file name without its volume suffix (``.nii.gz`` as a whole), or the folder's name."""
    path = Path(path)
    suffix = None if path.is_dir() else _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def volume_format(path: str | os.PathLike[str]) -> VolumeFormat:
    """The format of a volume path (a folder is a DICOM series).

    Raises:
        PathattnError: not a volume suffix.
    """
    path = Path(path)
    suffix = None if path.is_dir() else _suffix(path)
    if not path.is_dir() and suffix is None:
        raise PathattnError(
            f"{path}: not a volume file; give {', '.join(VOLUME_SUFFIXES)} files or a folder of DICOM files"
        )
    return "dicom" if suffix is None else _FORMATS[suffix]


def read_volume(
    path: str | os.PathLike[str],
    *,
    modality: str | None = None,
    series_uid: str | None = None,
    volume_index: int | None = None,
    suv: bool = True,
) -> Volume:
    """Read one volume (one channel) and reorient it to RAS.

    Args:
        path: a NIfTI, NRRD or MetaImage file, a DICOM file, or a folder holding a DICOM series.
        modality: the channel's modality; by default the DICOM Modality tag (PT -> PET), else the file name's last
            ``_``-separated word when it names one (``P1_ct.nii.gz`` -> CT), else ``"UNKNOWN"``.
        series_uid: the SeriesInstanceUID to read from a DICOM folder holding several series.
        volume_index: the volume to take from a 4-D file (0-based); required for 4-D input.
        suv: convert DICOM PET in Bq/mL to SUVbw when the tags allow it (:mod:`pathattn.io.dicom`).

    Returns:
        A one-channel :class:`Volume`.

    Raises:
        PathattnError: the file cannot be read or fails a check (module docstring).
    """
    path = Path(path)
    check_readable(path)
    fmt = volume_format(path)
    source: dict[str, Any] = {"path": str(path), "format": fmt}
    if fmt == "dicom":
        series = read_dicom(path, series_uid=series_uid, suv=suv)
        data, affine = series.array, series.affine
        source.update({k: series.info[k] for k in ("series_uid", "units") if k in series.info})
        modality = modality or _DICOM_MODALITIES.get(series.info["modality"], series.info["modality"] or None)
        if "suv" in series.info:
            source["suv"] = series.info["suv"]
    else:
        data, affine = _read_file(path, fmt)
        source["units"] = None
    data = select_volume(path, data, volume_index)
    if volume_index is not None:
        source["volume_index"] = volume_index
    modality = (modality or _modality_from_name(path)).upper()
    if modality == "PET" and "suv" not in source:
        source["suv"] = {"converted": False, "factor": 1.0, "reason": f"{fmt}: no DICOM tags; values kept as stored"}
    check_affine(path, affine)
    check_finite(path, data)
    source.update(orientation="".join(nib.aff2axcodes(affine)), affine=affine.tolist(), spacing=list(_spacing(affine)))
    array, ras_affine = to_ras(data, affine)
    return Volume(array[None], ras_affine, (modality,), (source,))


def read_study(
    paths: Mapping[str, str | os.PathLike[str]], *, series: Mapping[str, str] | None = None, suv: bool = True
) -> Volume:
    """Read several modalities of one study onto one grid, channel c = the c-th entry of ``paths``.

    The reference grid is the CT's when a ``"CT"`` key is given, else the first entry's; the other channels are
    resampled onto it with MONAI's ``ResampleToMatch`` (bilinear; outside their field of view: their minimum).

    Args:
        paths: modality (e.g. ``"CT"``, ``"PET"``, ``"T1"``) -> file or DICOM folder.
        series: modality -> the SeriesInstanceUID to read from its DICOM folder (folders of several series).
        suv: convert DICOM PET in Bq/mL to SUVbw when the tags allow it.

    Returns:
        A :class:`Volume` with one channel per modality, aligned voxel for voxel.

    Raises:
        PathattnError: no path given, or a file cannot be read or fails a check.
    """
    if not paths:
        raise PathattnError("read_study: no image given; give at least one modality and its file")
    uids = {key.upper(): uid for key, uid in (series or {}).items()}
    volumes = {
        key.upper(): read_volume(p, modality=key, series_uid=uids.get(key.upper()), suv=suv) for key, p in paths.items()
    }
    reference_key = "CT" if "CT" in volumes else next(iter(volumes))
    reference = volumes[reference_key]
    if len(volumes) == 1:
        return Volume(reference.array, reference.affine.copy(), tuple(volumes), reference.sources)
    # channel by channel in the readers' column-major layout: no transposing copy of a large volume
    stacked = np.empty((len(volumes), *reference.shape[::-1]), np.float32).transpose(0, 3, 2, 1)
    sources = []
    for channel, (key, volume) in enumerate(volumes.items()):
        source = dict(volume.sources[0])
        if key != reference_key:
            stacked[channel] = resample_to(volume, reference)
            source["resampled_to"] = reference_key
        else:
            stacked[channel] = volume.array[0]
        sources.append(source)
    return Volume(stacked, reference.affine.copy(), tuple(volumes), tuple(sources))


def read_label(path: str | os.PathLike[str], reference: Volume) -> np.ndarray:
    """Read a label volume that lies on ``reference``'s grid (after RAS reorientation), without resampling.

    Args:
        path: the label file (or DICOM folder); integer classes, 0 = background.
        reference: the image it labels.

    Returns:
        (I, J, K) int16 classes on ``reference``'s grid.

    Raises:
        PathattnError: unreadable, a shape or affine (beyond :data:`AFFINE_ATOL_MM`) other than the image's,
            non-integer or out-of-range values.
    """
    label = read_volume(path, modality="LABEL", suv=False)
    fix = "write the label on the image's grid (same size, spacing, origin and orientation)"
    if label.shape != reference.shape:
        raise PathattnError(f"{path}: label grid {label.shape} differs from the image's {reference.shape}; {fix}")
    offset = float(np.abs(label.affine - reference.affine).max())
    if offset > AFFINE_ATOL_MM:
        raise PathattnError(
            f"{path}: label affine differs from the image's by up to {offset:.4g} mm "
            f"(tolerance {AFFINE_ATOL_MM} mm); {fix}"
        )
    values = label.array[0]
    classes = np.rint(values)
    if np.abs(values - classes).max(initial=0.0) > LABEL_VALUE_ATOL:
        raise PathattnError(f"{path}: label voxels are not integers (a probability map?); save integer classes")
    if classes.min(initial=0) < np.iinfo(np.int16).min or classes.max(initial=0) > np.iinfo(np.int16).max:
        raise PathattnError(f"{path}: label classes outside the int16 range; number the classes 0, 1, 2, ...")
    return classes.astype(np.int16)


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3-D array to RAS with MONAI's ``Orientation`` (flips and permutations only).

    Args:
        data: (X, Y, Z) voxel values on the file's grid.
        affine: (4, 4) voxel -> RAS mm of that grid.

    Returns:
        The (I, J, K) float32 array on the RAS grid and its (4, 4) float64 affine.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation

    image = MetaTensor(torch.from_numpy(np.asarray(data, dtype=np.float32))[None], affine=affine)
    out = Orientation(axcodes="RAS", labels=_RAS_LABELS)(image)
    return out.numpy()[0], out.affine.numpy().astype(np.float64)  # the readers' column-major layout, not copied


def resample_to(volume: Volume, reference: Volume) -> np.ndarray:
    """``volume``'s first channel resampled (bilinear) onto ``reference``'s grid with MONAI's ``ResampleToMatch``.

    Returns:
        (I, J, K) float32 on the reference grid; voxels outside ``volume``'s field of view take its minimum.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    floor = float(volume.array[0].min())
    source = MetaTensor(torch.from_numpy(volume.array[:1] - floor), affine=volume.affine)
    target = MetaTensor(torch.from_numpy(reference.array[:1]), affine=reference.affine)
    out = ResampleToMatch(mode="bilinear", padding_mode="zeros", dtype=torch.float32)(source, target)
    return np.asarray(out.numpy()[0], dtype=np.float32) + np.float32(floor)


def _read_file(path: Path, fmt: VolumeFormat) -> tuple[np.ndarray, np.ndarray]:
    if fmt == "nifti":
        check_nifti_zooms(path)
    else:
        check_header_spacing(path)
    reader = _reader(fmt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "builtin type .* has no __module__", DeprecationWarning)  # itk's SWIG
            data, meta = reader.get_data(reader.read(str(path)))
    except PathattnError:
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure becomes one line naming the file
        raise unreadable(path, error, _FORMAT_NAMES[fmt]) from None
    return np.asarray(data, dtype=np.float32), _affine4(np.asarray(meta["affine"], dtype=np.float64))


@functools.cache
def _reader(fmt: VolumeFormat) -> Any:
    from monai.data import ITKReader, NibabelReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NibabelReader() if fmt == "nifti" else ITKReader()


def _affine4(affine: np.ndarray) -> np.ndarray:
    """A (4, 4) affine from a reader's (r+1, r+1) one (2-D: k spacing 1 mm; 4-D: the spatial part)."""
    if affine.shape == (4, 4):
        return affine
    r = affine.shape[0] - 1
    out = np.eye(4)
    n = min(r, 3)
    out[:n, :n] = affine[:n, :n]
    out[:n, 3] = affine[:n, r]
    return out


def _modality_from_name(path: Path) -> str:
    word = volume_id_of(path).rsplit("_", 1)[-1].upper()
    return _NAME_MODALITIES.get(word, "UNKNOWN")


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(s) for s in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))  # type: ignore[return-value]


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(VOLUME_SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)
