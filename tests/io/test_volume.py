"""Volume reading: real files shipped with nibabel and pydicom, RAS reorientation, studies, labels, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import itk
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from pathattn.errors import PathattnError
from pathattn.io import volume as volume_module
from pathattn.io.volume import (
    AFFINE_ATOL_MM,
    Volume,
    is_volume_path,
    read_label,
    read_study,
    read_volume,
    volume_id_of,
)

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__:DeprecationWarning")  # itk's SWIG


def canonical(affine: np.ndarray, shape) -> np.ndarray:
    """nibabel's closest-canonical (RAS) affine of a grid: the oracle for reorientation."""
    ornt = nib.orientations.io_orientation(affine)
    return affine @ nib.orientations.inv_ornt_aff(ornt, shape)


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


# Real files shipped inside nibabel and pydicom


def test_nibabel_anatomical_matches_nibabel():
    path = NIBABEL_DATA / "anatomical.nii"
    image = nib.load(path)
    ras = nib.as_closest_canonical(image)
    got = read_volume(path)
    assert got.array.shape == (1, *ras.shape) and got.array.dtype == np.float32
    np.testing.assert_array_equal(got.affine, ras.affine)
    np.testing.assert_array_equal(got.array[0], ras.get_fdata())
    assert got.spacing == pytest.approx(ras.header.get_zooms()[:3])
    assert got.sources[0]["orientation"] == "".join(nib.aff2axcodes(image.affine)) == "LAS"
    np.testing.assert_array_equal(got.sources[0]["affine"], image.affine)
    assert got.sources[0]["spacing"] == pytest.approx(image.header.get_zooms()[:3])


def test_nibabel_4d_needs_volume_index():
    path = NIBABEL_DATA / "example4d.nii.gz"
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "4-D image with 2 volumes" in one_line(error, path) and "volume_index (0-1)" in str(error.value)
    ras = nib.as_closest_canonical(nib.load(path))
    got = read_volume(path, volume_index=1)
    np.testing.assert_allclose(got.affine, ras.affine, atol=1e-6)  # an oblique affine
    np.testing.assert_array_equal(got.array[0], ras.get_fdata()[..., 1])
    assert got.spacing == pytest.approx(ras.header.get_zooms()[:3], rel=1e-6)
    assert got.sources[0]["volume_index"] == 1
    with pytest.raises(PathattnError, match="volume_index 2 is out of range: the file holds 2"):
        read_volume(path, volume_index=2)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_files_match_their_tags(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    got = read_volume(path)
    row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
    cosines = np.asarray(ds.ImageOrientationPatient, dtype=float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = cosines[:3] * column_spacing, cosines[3:] * row_spacing
    lps[:3, 2] = np.cross(cosines[:3], cosines[3:]) * float(ds.SliceThickness)
    lps[:3, 3] = np.asarray(ds.ImagePositionPatient, dtype=float)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    np.testing.assert_allclose(got.sources[0]["affine"], affine, atol=1e-9)
    assert got.sources[0]["orientation"] == "".join(nib.aff2axcodes(affine)) == "LPS"
    np.testing.assert_allclose(got.affine, canonical(affine, (ds.Columns, ds.Rows, 1)), atol=1e-9)
    assert got.spacing == pytest.approx((column_spacing, row_spacing, float(ds.SliceThickness)))
    pixels = ds.pixel_array.T.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    np.testing.assert_array_equal(got.array[0, :, :, 0], pixels[::-1, ::-1])  # i: L -> R, j: P -> A
    assert got.modalities == (ds.Modality,)


# Orientation and formats


def lps_copy(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored with i towards L and j towards P (axes 0 and 1 flipped)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [data.shape[0] - 1, data.shape[1] - 1]
    return np.ascontiguousarray(data[::-1, ::-1, :]), affine @ flip


@pytest.fixture
def ras_image() -> tuple[np.ndarray, np.ndarray]:
    data = np.random.default_rng(0).normal(size=(7, 6, 5)).astype(np.float32)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 30.0]
    return data, affine


def test_lps_nifti_reads_back_equal_to_ras(tmp_path, ras_image):
    data, affine = ras_image
    lps_data, lps_affine = lps_copy(data, affine)
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")
    ras = read_volume(save_nifti(tmp_path / "ras.nii.gz", data, affine))
    lps = read_volume(save_nifti(tmp_path / "lps.nii.gz", lps_data, lps_affine))
    np.testing.assert_array_equal(lps.array, ras.array)
    np.testing.assert_allclose(lps.affine, ras.affine, atol=1e-6)
    np.testing.assert_array_equal(ras.array[0], data)
    assert lps.sources[0]["orientation"] == "LPS" and ras.sources[0]["orientation"] == "RAS"


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_itk_formats_match_itk_and_nifti(tmp_path, ras_image, suffix):
    data, affine = ras_image
    lps_data, lps_affine = lps_copy(data, affine)
    image = itk.image_from_array(np.ascontiguousarray(lps_data.transpose(2, 1, 0)))  # ITK arrays are (z, y, x)
    image.SetSpacing([0.8, 0.9, 2.5])
    lps_world = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps_affine  # ITK's physical space is LPS
    image.SetOrigin(lps_world[:3, 3].tolist())
    image.SetDirection(itk.matrix_from_array(lps_world[:3, :3] / [0.8, 0.9, 2.5]))
    path = tmp_path / f"v{suffix}"
    itk.imwrite(image, str(path))
    back = itk.imread(str(path))
    got = read_volume(path)
    assert got.sources[0]["spacing"] == pytest.approx(list(itk.spacing(back)))
    assert got.sources[0]["format"] == ("metaimage" if suffix == ".mha" else "nrrd")
    assert got.sources[0]["orientation"] == "LPS"  # an identity ITK direction: i towards L, j towards P
    nifti = read_volume(save_nifti(tmp_path / "v.nii.gz", data, affine))
    np.testing.assert_array_equal(got.array, nifti.array)
    np.testing.assert_allclose(got.affine, nifti.affine, atol=1e-5)


# Studies and labels


def test_study_resampled_on_ct_grid(tmp_path, ras_image):
    data, affine = ras_image
    pet_affine = np.diag([2.0, 2.0, 2.0, 1.0])
    pet_affine[:3, 3] = [-14.0, 16.0, 26.0]
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in (8, 8, 10)], indexing="ij"), -1)
    world = ijk @ pet_affine[:3, :3].T + pet_affine[:3, 3]
    ramp = (3.0 * world[..., 0] - 2.0 * world[..., 1] + world[..., 2] + 500).astype(np.float32)  # linear in mm
    paths = {"pet": save_nifti(tmp_path / "pet.nii.gz", ramp, pet_affine),
             "CT": save_nifti(tmp_path / "ct.nii.gz", data, affine)}  # fmt: skip
    study = read_study(paths)
    assert study.modalities == ("PET", "CT") and study.shape == data.shape
    np.testing.assert_allclose(study.affine, affine, atol=1e-6)  # the CT's grid, though PET comes first
    np.testing.assert_array_equal(study.array[1], data)
    ct_world = np.stack(np.meshgrid(*[np.arange(n) for n in data.shape], indexing="ij"), -1) @ affine[:3, :3].T
    expected = 3.0 * (ct_world[..., 0] - 10) - 2.0 * (ct_world[..., 1] + 20) + ct_world[..., 2] + 30 + 500
    np.testing.assert_allclose(study.array[0], expected, rtol=1e-4)  # bilinear keeps a linear ramp exactly
    assert study.sources[0]["resampled_to"] == "CT" and "resampled_to" not in study.sources[1]
    assert study.sources[0]["suv"]["converted"] is False


def test_study_without_ct_uses_first_grid(tmp_path, ras_image):
    data, affine = ras_image
    small = np.diag([1.6, 1.8, 5.0, 1.0])
    small[:3, 3] = affine[:3, 3]
    paths = {"T1": save_nifti(tmp_path / "t1.nii.gz", data[::2, ::2, ::2].copy(), small),
             "T2": save_nifti(tmp_path / "t2.nii.gz", data, affine)}  # fmt: skip
    study = read_study(paths)
    assert study.modalities == ("T1", "T2") and study.shape == (4, 3, 3)
    np.testing.assert_allclose(study.affine, small, atol=1e-6)
    np.testing.assert_allclose(study.array[1], data[::2, ::2, ::2], atol=1e-5)  # same world points


def test_study_outside_field_of_view_takes_minimum(tmp_path, ras_image):
    data, affine = ras_image
    shifted = affine.copy()
    shifted[0, 3] += 100.0  # no overlap at all
    study = read_study({"CT": save_nifti(tmp_path / "ct.nii", data, affine),
                        "PET": save_nifti(tmp_path / "pet.nii", data + 5, shifted)})  # fmt: skip
    np.testing.assert_allclose(study.array[1], (data + 5).min())


def test_label_on_image_grid(tmp_path, ras_image):
    data, affine = ras_image
    image = read_volume(save_nifti(tmp_path / "ct.nii.gz", data, affine))
    label = (data > 1).astype(np.int16)
    lps_label, lps_affine = lps_copy(label, affine)
    got = read_label(save_nifti(tmp_path / "label.nii.gz", lps_label, lps_affine), image)  # LPS on disk is fine
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, label)


@pytest.mark.parametrize("change", ["shape", "affine"])
def test_label_grid_mismatch_refused(tmp_path, ras_image, change):
    data, affine = ras_image
    image = read_volume(save_nifti(tmp_path / "ct.nii.gz", data, affine))
    label, label_affine = (data > 1).astype(np.int16), affine.copy()
    if change == "shape":
        label = label[:, :, :-1]
    else:
        label_affine[2, 3] += 10 * AFFINE_ATOL_MM
    path = save_nifti(tmp_path / "label.nii.gz", label, label_affine)
    with pytest.raises(PathattnError) as error:
        read_label(path, image)
    assert ("label grid" if change == "shape" else "label affine") in one_line(error, path)


def test_label_not_integer_refused(tmp_path, ras_image):
    data, affine = ras_image
    image = read_volume(save_nifti(tmp_path / "ct.nii.gz", data, affine))
    with pytest.raises(PathattnError, match="not integers"):
        read_label(save_nifti(tmp_path / "label.nii.gz", np.abs(data) / 10, affine), image)


# Bad input


def test_nan_voxels_named(tmp_path, ras_image):
    data, affine = ras_image
    data = data.copy()
    data[1, 2, 3] = np.nan
    path = save_nifti(tmp_path / "nan.nii.gz", data, affine)
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "1 voxels are NaN" in one_line(error, path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".mha"])
def test_truncated_file_named(tmp_path, ras_image, suffix):
    data, affine = ras_image
    path = tmp_path / f"t{suffix}"
    if suffix == ".mha":
        itk.imwrite(itk.image_from_array(data), str(path))
    else:
        save_nifti(path, data, affine)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "cannot read this" in one_line(error, path)


def test_garbage_and_empty_files(tmp_path):
    (tmp_path / "junk.nii").write_bytes(b"hello")
    with pytest.raises(PathattnError) as error:
        read_volume(tmp_path / "junk.nii")
    one_line(error, tmp_path / "junk.nii")
    (tmp_path / "empty.nrrd").write_bytes(b"")
    with pytest.raises(PathattnError, match="is empty"):
        read_volume(tmp_path / "empty.nrrd")
    with pytest.raises(PathattnError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "image.png").write_bytes(b"png")
    with pytest.raises(PathattnError, match="not a volume file"):
        read_volume(tmp_path / "image.png")


def test_permission_denied(tmp_path, ras_image, monkeypatch):
    path = save_nifti(tmp_path / "secret.nii.gz", *ras_image)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == path else real_access(p, mode))
    with pytest.raises(PathattnError) as error:  # tests run as root: chmod alone would not stop the read
        read_volume(path)
    assert "permission denied" in one_line(error, path)


def test_reader_permission_error_wrapped(tmp_path, ras_image, monkeypatch):
    path = save_nifti(tmp_path / "v.nii.gz", *ras_image)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(nib, "load", denied)
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "permission denied" in one_line(error, path)


@pytest.mark.parametrize("value", [0.0, -2.0])
def test_nonpositive_nifti_spacing_refused(tmp_path, ras_image, value):
    data, _ = ras_image
    image = nib.Nifti1Image(data, None)  # no sform/qform: nibabel builds the affine from pixdim
    image.header["pixdim"][2] = value
    path = tmp_path / "v.nii"
    nib.save(image, path)
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "spacing (pixdim)" in one_line(error, path) and "not positive" in str(error.value)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
@pytest.mark.parametrize("spacing", ["0.8 0 2.5", "0.8 -0.9 2.5"])
def test_nonpositive_itk_spacing_refused(tmp_path, ras_image, spacing, suffix):
    data, _ = ras_image
    path = tmp_path / f"v{suffix}"
    if suffix == ".mha":
        header = (
            f"ObjectType = Image\nNDims = 3\nDimSize = 7 6 5\nElementSpacing = {spacing}\n"
            "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
        )
    else:
        header = (
            f"NRRD0004\ntype: float\ndimension: 3\nsizes: 7 6 5\nspacings: {spacing}\nencoding: raw\nendian: little\n\n"
        )
    path.write_bytes(header.encode() + data.transpose(2, 1, 0).tobytes())
    with pytest.raises(PathattnError) as error:
        read_volume(path)
    assert "spacing" in one_line(error, path).lower()


# Paths and ids


def test_paths_and_ids(tmp_path):
    (tmp_path / "P1_ct").mkdir()
    assert is_volume_path(tmp_path / "P1_ct") and volume_id_of(tmp_path / "P1_ct") == "P1_ct"
    assert volume_id_of("a/P1_s1_pet.nii.gz") == "P1_s1_pet" and volume_id_of("b/x.MHA") == "x"
    assert is_volume_path("x.nrrd") and is_volume_path("x.nhdr") and not is_volume_path("x.svs")
    assert volume_module._modality_from_name(Path("P3_s1_pet.nii.gz")) == "PET"
    assert volume_module._modality_from_name(Path("scan.nii")) == "UNKNOWN"


def test_volume_properties():
    affine = np.diag([0.5, 0.6, 3.0, 1.0])
    volume = Volume(np.zeros((2, 3, 4, 5), np.float32), affine, ("CT", "PET"), ({}, {}))
    assert volume.shape == (3, 4, 5) and volume.spacing == pytest.approx((0.5, 0.6, 3.0))
