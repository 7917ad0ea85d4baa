"""DICOM series of ``pathattn synth volume``: one pydicom file per axial slice, in a folder per series.

CT series are CT Image Storage with ``RescaleIntercept -1024``/``RescaleSlope 1`` (stored value = HU + 1024,
unsigned 16 bits); PET series are PET Image Storage in Bq/mL (``Units BQML``, one ``RescaleSlope`` per slice)
with the tags an SUVbw conversion needs (patient weight, injected dose, half-life, injection and series
times, ``DecayCorrection START``). Every slice carries ``ImagePositionPatient`` and ``ImageOrientationPatient
[1, 0, 0, 0, 1, 0]`` (rows along +x LPS, columns along +y LPS); the files have shuffled names (``IM00017.dcm``),
so a reader must order them by position. UIDs are derived from the names given (UUID-derived ``2.25.`` UIDs):
the same cohort gives the same UIDs and the same bytes. A series is written in a temporary folder renamed
when complete.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
)

from pathattn.io.atomic import TMP_MARK, pid_alive
from pathattn.synth.volume_scanner import Grid

F18_HALF_LIFE_S = 6586.2
INJECTION_TIME, SERIES_TIME = "083000.00", "093000.00"  # the PET series starts 3600 s after the injection
_TMP_PID = re.compile(re.escape(TMP_MARK) + r"(\d+)-")


def dicom_uid(*parts: str) -> str:
    """A deterministic DICOM UID: ``2.25.`` and the integer of a UUID-5 of ``parts``."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "pathattn-synth:" + "/".join(parts)).int)


@dataclass(frozen=True)
class SeriesInfo:
    """What a series says about its patient, study and scanner.

    Args:
        patient_id: the patient id.
        study_uid: StudyInstanceUID (shared by the CT and PET series of a study).
        frame_uid: FrameOfReferenceUID (shared by the CT and PET series of a study).
        study_date: ``YYYYMMDD``.
        centre: the centre's name (InstitutionName ``Centre {centre}``).
        model: ManufacturerModelName.
        weight_kg: PatientWeight.
        dose_bq: injected activity (PET), Bq.
    """

    patient_id: str
    study_uid: str
    frame_uid: str
    study_date: str
    centre: str
    model: str
    weight_kg: float
    dose_bq: float = 0.0


def _ds(value: float) -> str:
    """A decimal string (DS) of at most 16 characters."""
    return format(float(value), ".10g")


def _slice(info: SeriesInfo, series_uid: str, modality: str, grid: Grid, k: int, pixels: np.ndarray) -> Dataset:
    """The dataset of slice ``k``: ``pixels`` ``(J rows, I columns)`` uint16."""
    sop_class = CTImageStorage if modality == "CT" else PositronEmissionTomographyImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = sop_class, ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = dicom_uid(series_uid, str(k))
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, meta.MediaStorageSOPInstanceUID, modality
    ds.PatientID, ds.PatientName = info.patient_id, f"Synthetic^{info.patient_id}"
    ds.PatientWeight = _ds(info.weight_kg)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = info.study_uid, series_uid, info.frame_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = info.study_date
    ds.StudyTime, ds.SeriesTime = "090000.00", SERIES_TIME if modality == "PT" else "090000.00"
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1 if modality == "CT" else 2, k + 1
    ds.Manufacturer, ds.ManufacturerModelName = "pathattn synthetic", info.model
    ds.InstitutionName, ds.ImageType = f"Centre {info.centre}", ["ORIGINAL", "PRIMARY", "AXIAL"]
    (si, sj, sk), (ox, oy, oz) = grid.spacing, grid.origin_lps
    ds.ImagePositionPatient = [_ds(ox), _ds(oy), _ds(oz + k * sk)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing, ds.SliceThickness, ds.SliceLocation = [_ds(sj), _ds(si)], _ds(sk), _ds(oz + k * sk)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds


def _add_pet_tags(ds: Dataset, info: SeriesInfo, slope: float) -> None:
    """The PET tags: units, corrections, the radiopharmaceutical (SUVbw inputs) and this slice's slope."""
    ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["ATTN", "DECY"]
    ds.AcquisitionTime = SERIES_TIME
    ds.RescaleIntercept, ds.RescaleSlope = "0", _ds(slope)
    drug = Dataset()
    drug.Radiopharmaceutical, drug.RadiopharmaceuticalStartTime = "Fluorodeoxyglucose", INJECTION_TIME
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = _ds(info.dose_bq), _ds(F18_HALF_LIFE_S)
    ds.RadiopharmaceuticalInformationSequence = [drug]


def suv_to_bq_per_ml(suv: np.ndarray, weight_kg: float, dose_bq: float) -> np.ndarray:
    """Activity concentration (Bq/mL) at the series start of an SUVbw image (dose decayed to that time)."""
    decayed = dose_bq * 2.0 ** (-3600.0 / F18_HALF_LIFE_S)
    return suv * decayed / (weight_kg * 1000.0)


def write_series(
    folder: str | Path,
    volume: np.ndarray,
    grid: Grid,
    info: SeriesInfo,
    modality: str,
    names: np.ndarray,
) -> Path:
    """Write a volume as a DICOM series folder, atomically (a complete folder or none).

    Args:
        folder: the series folder (replaced if it exists).
        volume: ``(I, J, K)`` on ``grid``: HU (int16) for ``CT``, SUVbw (float) for ``PT``.
        grid: the volume's grid (LPS storage: rows along j, columns along i).
        info: patient, study and scanner.
        modality: ``CT`` or ``PT``.
        names: ``(K,)`` a permutation of ``range(K)``: slice k is written as ``IM{names[k]:05d}.dcm``.

    Returns:
        The folder.
    """
    folder = Path(folder)
    series_uid = dicom_uid(info.study_uid, modality)
    tmp = folder.with_name(f".{folder.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        if modality == "PT":
            volume = suv_to_bq_per_ml(volume.astype(np.float64), info.weight_kg, info.dose_bq)
        for k in range(grid.shape[2]):
            plane = volume[:, :, k].T
            if modality == "CT":
                ds = _slice(info, series_uid, "CT", grid, k, plane.astype(np.int32) + 1024)
                ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
                ds.KVP, ds.WindowCenter, ds.WindowWidth = "120", "40", "400"
            else:
                slope = float(_ds(max(float(plane.max()), 1.0) / 65000.0))
                ds = _slice(info, series_uid, "PT", grid, k, np.rint(plane / slope))
                _add_pet_tags(ds, info, slope)
            ds.save_as(tmp / f"IM{int(names[k]):05d}.dcm", enforce_file_format=True)
        _replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _replace_folder(tmp: Path, final: Path) -> None:
    """Rename the folder ``tmp`` onto ``final``, moving an existing ``final`` aside first."""
    if final.exists():
        old = final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}-old")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def series_is_complete(folder: str | Path, shape: tuple[int, int, int]) -> bool:
    """Whether ``folder`` holds ``K`` readable slices of ``J`` rows by ``I`` columns with all their pixels."""
    files = sorted(Path(folder).glob("*.dcm"))
    if len(files) != shape[2]:
        return False
    try:
        for file in files:
            ds = dcmread(file)
            if (ds.Rows, ds.Columns) != (shape[1], shape[0]) or len(ds.PixelData) != 2 * shape[0] * shape[1]:
                return False
    except Exception:  # noqa: BLE001 - whatever is wrong, the series is written again
        return False
    return True


def remove_stale_series(folder: str | Path) -> int:
    """Delete the temporary series folders that a killed run left in ``folder``; return how many."""
    count = 0
    for stale in Path(folder).glob(f".*{TMP_MARK}*"):
        match = _TMP_PID.search(stale.name)
        if match and pid_alive(int(match.group(1))):
            continue  # its writer is still running
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        count += 1
    return count
