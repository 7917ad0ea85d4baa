"""DICOM series folders: series choice, slice order, geometry checks, HU and SUVbw, against pydicom/nibabel."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PositronEmissionTomographyImageStorage, generate_uid

from pathattn.errors import PathattnError
from pathattn.io.volume import read_volume

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def write_slice(path: Path, pixels: np.ndarray, position, *, series_uid: str, instance: int, **tags) -> None:
    """One uncompressed int16 slice; ``pixels`` is (rows, columns); ``tags`` override the defaults."""
    pet = tags.get("Modality") == "PT"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = PositronEmissionTomographyImageStorage if pet else CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = "1.2.3", series_uid, instance
    ds.Modality, ds.SeriesDescription = "CT", "synthetic"
    ds.ImageOrientationPatient, ds.ImagePositionPatient = list(AXIAL), [float(v) for v in position]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.7], 2.5
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(
    folder: Path, volume: np.ndarray, *, orientation=AXIAL, step: float = 2.5, seed: int = 0, skip=(), **tags
) -> list[Path]:
    """``volume`` (columns, rows, slices) as a series, files in shuffled order and names, InstanceNumber shuffled."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cosines = np.asarray(orientation, dtype=float)
    normal = np.cross(cosines[:3], cosines[3:])
    origin = np.array([-40.0, -60.0, 100.0])
    uid = tags.pop("series_uid", "1.2.3.4")
    order = rng.permutation(volume.shape[2])
    instances = rng.permutation(volume.shape[2]) + 1
    paths = []
    for n, k in enumerate(order):
        if k in skip:
            continue
        path = folder / f"{rng.integers(10**9):09d}.dcm"
        per_slice = {key: (value[k] if isinstance(value, list) and key == "RescaleSlope" else value)
                     for key, value in tags.items()}  # fmt: skip
        write_slice(path, volume[:, :, k].T, origin + k * step * normal, series_uid=uid, instance=int(instances[n]),
                    ImageOrientationPatient=list(orientation), **per_slice)  # fmt: skip
        paths.append(path)
    return paths


def dicom_affine(orientation, spacing=(0.8, 0.7), step: float = 2.5) -> np.ndarray:
    """nibabel's DICOM orientation formula (LPS), in RAS: the oracle for the affine."""
    cosines = np.asarray(orientation, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = cosines[:3] * spacing[1]
    affine[:3, 1] = cosines[3:] * spacing[0]
    affine[:3, 2] = np.cross(cosines[:3], cosines[3:]) * step
    affine[:3, 3] = [-40.0, -60.0, 100.0]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


@pytest.fixture
def volume() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 3000, size=(6, 5, 8)).astype(np.int16)


@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL])
def test_shuffled_series_loads_in_slice_order(tmp_path, volume, orientation):
    write_series(tmp_path / "s", volume, orientation=orientation)
    got = read_volume(tmp_path / "s")
    affine = dicom_affine(orientation)
    expected = nib.as_closest_canonical(nib.Nifti1Image(volume.astype(np.float32) - 1024, affine))
    np.testing.assert_allclose(got.sources[0]["affine"], affine, atol=1e-6)
    np.testing.assert_allclose(got.affine, expected.affine, atol=1e-6)
    np.testing.assert_array_equal(got.array[0], expected.get_fdata())
    assert got.sources[0]["orientation"] == "".join(nib.aff2axcodes(affine))
    assert got.modalities == ("CT",) and got.sources[0]["units"] == "HU" and got.sources[0]["series_uid"] == "1.2.3.4"
    np.testing.assert_allclose(got.spacing, expected.header.get_zooms(), rtol=1e-6)


def test_axial_series_is_the_array_flipped_to_ras(tmp_path, volume):
    write_series(tmp_path / "s", volume)
    got = read_volume(tmp_path / "s")
    np.testing.assert_array_equal(got.array[0], (volume.astype(np.float32) - 1024)[::-1, ::-1, :])  # LPS -> RAS
    assert got.sources[0]["orientation"] == "LPS"


def test_two_series_listed_then_chosen(tmp_path, volume):
    write_series(tmp_path / "s", volume, series_uid="1.2.3.4", SeriesDescription="venous")
    write_series(tmp_path / "s", volume[:, :, :3], series_uid="1.2.3.5", SeriesDescription="scout", seed=2)
    with pytest.raises(PathattnError) as error:
        read_volume(tmp_path / "s")
    message = str(error.value)
    assert "1.2.3.4 (venous, 8 files)" in message and "1.2.3.5 (scout, 3 files)" in message
    assert "series_uid" in message and str(tmp_path / "s") in message and "\n" not in message
    assert read_volume(tmp_path / "s", series_uid="1.2.3.5").shape == (6, 5, 3)
    with pytest.raises(PathattnError, match="no series 9.9"):
        read_volume(tmp_path / "s", series_uid="9.9")


def test_non_dicom_files_are_skipped(tmp_path, volume):
    write_series(tmp_path / "s", volume)
    (tmp_path / "s" / "README.txt").write_text("exported by a scanner")
    assert read_volume(tmp_path / "s").shape == (6, 5, 8)


def test_missing_slice_is_a_gap(tmp_path, volume):
    write_series(tmp_path / "s", volume, skip=(4,))
    with pytest.raises(PathattnError, match=r"not evenly spaced .*5 mm between slices 3 and 4.*median 2.5 mm"):
        read_volume(tmp_path / "s")


def test_duplicate_positions_refused(tmp_path, volume):
    write_series(tmp_path / "s", volume, series_uid="1.2.3.4")
    write_series(tmp_path / "t", volume, series_uid="1.2.3.4", seed=3)
    for path in (tmp_path / "t").iterdir():
        shutil.copy(path, tmp_path / "s" / f"dup{path.name}")
    with pytest.raises(PathattnError, match="share one position"):
        read_volume(tmp_path / "s")


@pytest.mark.parametrize(
    ("tag", "value"),
    [("PixelSpacing", [0.8, 0.75]), ("ImageOrientationPatient", [1.0, 0.0, 0.0, 0.0, 0.9998, 0.02]),
     ("Rows", 4)],
)  # fmt: skip
def test_mixed_geometry_refused(tmp_path, volume, tag, value):
    paths = write_series(tmp_path / "s", volume)
    ds = pydicom.dcmread(paths[3])
    setattr(ds, tag, value)
    if tag == "Rows":
        ds.PixelData = np.zeros((4, 6), "<i2").tobytes()
    ds.save_as(paths[3])
    with pytest.raises(PathattnError) as error:
        read_volume(tmp_path / "s")
    message = str(error.value)
    assert f"different {tag}" in message and paths[3].name in message and "one series per folder" in message


def test_truncated_slice_named(tmp_path, volume):
    paths = write_series(tmp_path / "s", volume)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 20])
    with pytest.raises(PathattnError) as error:
        read_volume(tmp_path / "s")
    assert str(paths[2]) in str(error.value) and "truncated" in str(error.value)


def test_corrupt_dcm_named(tmp_path, volume):
    write_series(tmp_path / "s", volume)
    (tmp_path / "s" / "broken.dcm").write_bytes(b"not a dicom file at all" * 10)
    with pytest.raises(PathattnError, match="broken.dcm: cannot read this DICOM file"):
        read_volume(tmp_path / "s")


def test_empty_folder(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(PathattnError, match="no DICOM image files"):
        read_volume(tmp_path / "e")


def test_zero_spacing_refused(tmp_path, volume):
    write_series(tmp_path / "s", volume[:, :, :1], PixelSpacing=[0.0, 0.7])
    with pytest.raises(PathattnError, match="PixelSpacing .* is not positive"):
        read_volume(tmp_path / "s")
    write_series(tmp_path / "t", volume[:, :, :1], SliceThickness=-2.0)
    with pytest.raises(PathattnError, match="SliceThickness -2.0 is not positive"):
        read_volume(tmp_path / "t")


PET_TAGS = {
    "Modality": "PT", "Units": "BQML", "DecayCorrection": "START", "PatientWeight": 72.5,
    "SeriesDate": "20240102", "SeriesTime": "103015", "AcquisitionTime": "103100",
}  # fmt: skip


def pet_tags(**override) -> dict:
    drug = Dataset()
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = 3.5e8, 6586.2
    drug.RadiopharmaceuticalStartTime = "093000"
    tags = {**PET_TAGS, "RadiopharmaceuticalInformationSequence": Sequence([drug])}
    tags.update(override)
    return tags


def test_pet_suv_factor_from_tags(tmp_path, volume):
    slopes = [0.5 + 0.25 * k for k in range(8)]  # per-slice slopes, as PET scanners write
    write_series(tmp_path / "pet", volume, RescaleSlope=slopes, RescaleIntercept=0.0, **pet_tags())
    got = read_volume(tmp_path / "pet")
    elapsed = (10 * 3600 + 30 * 60 + 15) - (9 * 3600 + 30 * 60)  # 09:30:00 -> 10:30:15
    factor = 72.5 * 1000 / (3.5e8 * 2 ** (-elapsed / 6586.2))  # weight g / decay-corrected dose Bq
    suv = got.sources[0]["suv"]
    assert suv["converted"] is True and suv["factor"] == pytest.approx(factor, rel=1e-12)
    assert got.modalities == ("PET",) and got.sources[0]["units"] == "SUVbw"
    bqml = volume.astype(np.float64) * np.asarray(slopes)[None, None, :]
    np.testing.assert_allclose(got.array[0], (bqml * factor)[::-1, ::-1, :], rtol=1e-5)


def test_pet_injection_datetime_across_midnight(tmp_path, volume):
    drug = Dataset()
    drug.RadionuclideTotalDose, drug.RadionuclideHalfLife = 3.5e8, 6586.2
    drug.RadiopharmaceuticalStartDateTime = "20240101234500"
    tags = pet_tags(RadiopharmaceuticalInformationSequence=Sequence([drug]), SeriesTime="003000")
    write_series(tmp_path / "pet", volume[:, :, :2], **tags)
    suv = read_volume(tmp_path / "pet").sources[0]["suv"]
    assert suv["factor"] == pytest.approx(72500 / (3.5e8 * 2 ** (-(45 * 60) / 6586.2)), rel=1e-12)


@pytest.mark.parametrize(
    ("override", "reason"),
    [({"DecayCorrection": "ADMIN"}, "DecayCorrection is ADMIN, not START"),
     ({"Units": "CNTS"}, "Units is CNTS, not BQML"),
     ({"PatientWeight": 0.0}, "PatientWeight missing or not positive")],
)  # fmt: skip
def test_pet_without_conversion_records_reason(tmp_path, volume, override, reason):
    write_series(tmp_path / "pet", volume[:, :, :2], RescaleIntercept=0.0, **pet_tags(**override))
    got = read_volume(tmp_path / "pet")
    assert got.sources[0]["suv"] == {"converted": False, "factor": 1.0, "reason": reason}
    np.testing.assert_array_equal(got.array[0], volume[::-1, ::-1, :2].astype(np.float32))


def test_pet_suv_not_requested(tmp_path, volume):
    write_series(tmp_path / "pet", volume[:, :, :2], RescaleIntercept=0.0, **pet_tags())
    got = read_volume(tmp_path / "pet", suv=False)
    assert got.sources[0]["suv"]["converted"] is False and "suv=False" in got.sources[0]["suv"]["reason"]


def test_permission_denied_slice_named(tmp_path, volume, monkeypatch):
    paths = write_series(tmp_path / "s", volume)
    real = pydicom.dcmread

    def dcmread(path, *args, **kwargs):
        if Path(path) == paths[5]:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", dcmread)  # tests run as root: chmod would not stop the read
    with pytest.raises(PathattnError, match=f"{paths[5]}: permission denied"):
        read_volume(tmp_path / "s")
