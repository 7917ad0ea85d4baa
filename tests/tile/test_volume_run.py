"""`pathattn tile` on volumes: slices and 3-D patches, fractions, outputs, resume and bad volumes."""

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.io.coords import read_coords
from pathattn.io.manifest import read_manifest
from pathattn.io.volume_samples import read_volume_sheet
from pathattn.synth.volume_dicom import SeriesInfo, dicom_uid, write_series
from pathattn.synth.volume_scanner import Grid
from pathattn.volumes.prepare import PrepareParams, prepare_volume, recorded_series

LPS = np.diag([-1.0, -1.0, 3.0, 1.0])  # 1 x 1 x 3 mm voxels, i towards the patient's left, j posterior


def body_volume(lesion: bool, shape=(48, 40, 16)):
    """A CT body (40 HU, -1000 outside) with an optional 150 HU lesion; returns HU and the label, (I, J, K)."""
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    hu = np.full(shape, -1000.0, np.float32)
    hu[((i - 24) / 18) ** 2 + ((j - 20) / 14) ** 2 <= 1] = 40.0
    label = np.zeros(shape, np.int16)
    if lesion:
        label[((i - 30) / 4) ** 2 + ((j - 20) / 4) ** 2 + ((k - 8) / 2) ** 2 <= 1] = 1
        hu[label > 0] = 150.0
    return hu, label


@pytest.fixture
def cohort(tmp_path):
    """Two CT volumes written in LPS (one with a lesion) with their labels, and a sample sheet."""
    rows = ["volume_id,patient_id,label,ct_path,label_path"]
    for name, lesion in (("v1", True), ("v2", False)):
        hu, label = body_volume(lesion)
        nib.save(nib.Nifti1Image(hu, LPS), tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(label, LPS), tmp_path / f"{name}_label.nii.gz")
        rows.append(f"{name},{name},{int(lesion)},{name}.nii.gz,{name}_label.nii.gz")
    sheet = tmp_path / "samples.csv"
    sheet.write_text("\n".join(rows) + "\n")
    return sheet


def tile(*args):
    return main(["tile", *map(str, args)])


def test_slices_carry_foreground_and_lesion_fractions(cohort, tmp_path):
    out = tmp_path / "out"
    assert tile("--samples", cohort, "--out", out) == 0
    data = read_coords(out / "coords" / "v1.h5")
    attrs = data.attrs
    assert attrs["coord_space"] == "voxel_ijk" and attrs["mode"] == "slices" and attrs["axis"] == "axial"
    assert attrs["orientation"] == "RAS" and attrs["modality"] == "CT" and attrs["preset"] == "ct_soft_tissue"
    assert attrs["spacing"] == pytest.approx([1, 1, 3]) and attrs["shape"] == [48, 40, 16]
    # every axial slice holds the body, so all 16 are kept, in order, with k on the slice axis
    assert data.coords.tolist() == [[0, 0, k] for k in range(16)]
    body = np.pi * 18 * 14 / (48 * 40)
    assert data.tissue_fraction == pytest.approx(np.full(16, body), abs=0.02)
    _, label = body_volume(True)
    # the file was LPS: RAS flips i and j, the k index (and so the per-slice fractions) stays
    expected = label.reshape(-1, 16).mean(axis=0)
    assert data.classes == ["lesion"] and data.annotation_fraction[:, 0] == pytest.approx(expected)
    assert (out / "foreground" / "v1.nii.gz").is_file() and (out / "qc" / "v1.png").is_file()
    foreground = nib.load(out / "foreground" / "v1.nii.gz")
    assert nib.aff2axcodes(foreground.affine) == ("R", "A", "S")
    assert json.loads(attrs["volume_paths"]) == {"CT": str(tmp_path / "v1.nii.gz")}
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["v1"]["status"] == "done" and rows["v1"]["n_patches"] == "16"


def test_patches_in_mm_and_resampling(cohort, tmp_path):
    out = tmp_path / "out"
    args = ["--samples", cohort, "--out", out, "--volume-mode", "patches", "--patch-size-mm", "12",
            "--spacing", "2", "2", "3", "--min-foreground", "0.5"]  # fmt: skip
    assert tile(*args) == 0
    data = read_coords(out / "coords" / "v1.h5")
    assert data.attrs["shape"] == [24, 20, 16] and data.attrs["patch_size_vox"] == [6, 6, 4]
    assert data.attrs["patch_size_mm"] == pytest.approx([12, 12, 12])
    assert data.coords.shape[1] == 3 and (data.tissue_fraction >= 0.5).all()
    assert data.annotation_fraction[:, 0].max() > 0.1  # the lesion falls into some patch
    assert read_coords(out / "coords" / "v2.h5").annotation_fraction.shape == (
        len(read_coords(out / "coords" / "v2.h5")),
        0,
    )


def test_resume_and_one_bad_volume(cohort, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "v3.nii.gz").write_bytes(b"not a volume")
    cohort.write_text(cohort.read_text() + "v3,v3,0,v3.nii.gz,\n")
    assert tile("--samples", cohort, "--out", out) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "v3" in err
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["v1"]["status"] == "done" and rows["v3"]["status"] == "failed" and "v3.nii.gz" in rows["v3"]["error"]
    assert not (out / "coords" / "v3.h5").exists()
    assert tile("--samples", cohort, "--out", out) == 1
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert rows["v1"]["status"] == "skipped"


def test_a_label_of_another_grid_and_bad_options(cohort, tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.int16), LPS), tmp_path / "v1_label.nii.gz")
    assert tile("--samples", cohort, "--out", tmp_path / "out") == 1
    rows = {r["slide_id"]: r for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert rows["v1"]["status"] == "failed" and "v1_label.nii.gz" in rows["v1"]["error"]
    assert rows["v2"]["status"] == "done"
    capsys.readouterr()
    for args, needle in [(["--spacing", "0", "1", "1"], "--spacing 0.0 must be a positive"),
                         (["--patch-size-mm", "-3"], "--patch-size-mm must be a positive"),
                         (["--preset", "ct_sharp"], "--preset 'ct_sharp' is not a preset")]:  # fmt: skip
        code = tile("--samples", cohort, "--out", tmp_path / "bad", "--overwrite", *args)
        err = capsys.readouterr().err
        assert code != 0 and needle in err and "Traceback" not in err, err


def test_an_empty_foreground_is_recorded(tmp_path, capsys):
    nib.save(nib.Nifti1Image(np.full((20, 20, 5), -1000.0, np.float32), LPS), tmp_path / "air.nii.gz")
    assert tile("--slides", tmp_path / "air.nii.gz", "--out", tmp_path / "out") == 1
    rows = {r["slide_id"]: r for r in read_manifest(tmp_path / "out" / "manifest.csv")}
    assert rows["air"]["status"] == "failed" and "no foreground" in rows["air"]["error"]


def dicom_series(folder, hu, series: str):
    """``hu`` (I, J, K) as a CT series of 1 x 1 x 3 mm voxels; slice k is ``IM{k:05d}.dcm``."""
    info = SeriesInfo("p", dicom_uid("bad-inputs", series), dicom_uid("frame"), "20260101", "A", "synthetic", 70.0)
    grid = Grid(hu.shape, (1.0, 1.0, 3.0), (0.0, 0.0, 0.0))
    return write_series(folder, hu.astype(np.int16), grid, info, "CT", np.arange(hu.shape[2]))


def bad_inputs(root):
    """Sheet rows of the issue's bad inputs, each with the words its one-line error must hold."""
    hu, label = body_volume(True)
    mixed = dicom_series(root / "mixed", hu, "mixed")
    ds = pydicom.dcmread(mixed / "IM00005.dcm")
    ds.PixelSpacing = [1.0, 1.2]
    ds.save_as(mixed / "IM00005.dcm")
    gap = dicom_series(root / "gap", hu, "gap")
    (gap / "IM00007.dcm").unlink()
    two = dicom_series(root / "two", hu, "one")
    for path in dicom_series(root / "other", hu[::-1], "two").iterdir():
        path.rename(two / f"B{path.name}")
    nan = hu.copy()
    nan[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(nan, LPS), root / "nan.nii.gz")
    nib.save(nib.Nifti1Image(hu, LPS), root / "trunc.nii.gz")
    (root / "trunc.nii.gz").write_bytes((root / "trunc.nii.gz").read_bytes()[:2000])
    nib.save(nib.Nifti1Image(hu, LPS), root / "shifted.nii.gz")
    shifted_label = LPS.copy()
    shifted_label[:3, 3] = [5.0, 0.0, 0.0]
    nib.save(nib.Nifti1Image(label, shifted_label), root / "shifted_label.nii.gz")
    nib.save(nib.Nifti1Image(np.full(hu.shape, -1000.0, np.float32), LPS), root / "air.nii.gz")
    zero = nib.Nifti1Image(hu, None)
    zero.header["pixdim"][3] = 0.0
    nib.save(zero, root / "zero.nii")
    return {
        "mixed": ("mixed", "", ["IM00005.dcm", "different PixelSpacing", "one series per folder"]),
        "gap": ("gap", "", ["not evenly spaced", "6 mm between slices"]),
        "two": ("two", "", ["holds 2 DICOM series", "ct_series_uid"]),
        "nan": ("nan.nii.gz", "", ["nan.nii.gz", "1 voxels are NaN"]),
        "trunc": ("trunc.nii.gz", "", ["trunc.nii.gz", "cannot read this"]),
        "shifted": ("shifted.nii.gz", "shifted_label.nii.gz", ["shifted_label.nii.gz"]),
        "air": ("air.nii.gz", "", ["no foreground"]),
        "zero": ("zero.nii", "", ["zero.nii", "not positive"]),
    }


def test_every_bad_input_fails_alone_in_one_line(cohort, tmp_path, capsys):
    rows = bad_inputs(tmp_path)
    cohort.write_text(cohort.read_text() + "".join(f"{v},{v},0,{ct},{lab}\n" for v, (ct, lab, _) in rows.items()))
    out = tmp_path / "out"
    assert tile("--samples", cohort, "--out", out, "--workers", 2) == 1
    assert "Traceback" not in capsys.readouterr().err
    manifest = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert manifest["v1"]["status"] == manifest["v2"]["status"] == "done"
    for volume_id, (_, _, words) in rows.items():
        error = manifest[volume_id]["error"]
        assert manifest[volume_id]["status"] == "failed" and "\n" not in error, (volume_id, error)
        assert all(w in error for w in words), (volume_id, error)
    assert sorted(p.name for p in (out / "coords").iterdir()) == ["v1.h5", "v2.h5"]  # no partial or temp file


def test_a_series_chosen_in_the_sheet_is_read_at_every_stage(tmp_path):
    hu, _ = body_volume(True)
    folder = dicom_series(tmp_path / "two", hu, "one")
    for path in dicom_series(tmp_path / "other", np.full_like(hu, -1000.0), "two").iterdir():
        path.rename(folder / f"B{path.name}")
    uid = pydicom.dcmread(folder / "IM00000.dcm").SeriesInstanceUID
    sheet = tmp_path / "samples.csv"
    sheet.write_text(f"volume_id,ct_path,ct_series_uid\nv,two,{uid}\n")
    assert tile("--samples", sheet, "--out", tmp_path / "out") == 0
    attrs = read_coords(tmp_path / "out" / "coords" / "v.h5").attrs
    assert json.loads(attrs["sources"])[0]["series_uid"] == uid and recorded_series(attrs) == {"CT": uid}
    assert prepare_volume({"CT": folder}, PrepareParams.from_attrs(attrs), series={"CT": uid}).shape == (48, 40, 16)
    sheet.write_text("volume_id,ct_path,pet_series_uid\nv,two,1.2\n")
    with pytest.raises(PathattnError, match="pet_series_uid names no image column"):
        read_volume_sheet(sheet)
