"""Tests of the synthetic volume cohort (``pathattn synth volume``): small volumes, a few seconds in all."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.synth.volume import (
    CSV_COLUMNS,
    check_volume_memory,
    generate_volume_cohort,
    parse_modalities,
    plan_cohort,
)
from pathattn.synth.volume_dicom import F18_HALF_LIFE_S, remove_stale_series
from pathattn.synth.volume_scanner import SCANNERS

SHAPE = (64, 56, 24)  # I != J: a transposed axis cannot go unnoticed
SEED = 0  # patients 0-3: both labels in both centres, P002 has two studies, P003 is the DICOM patient


def rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def load(path: Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    image = nib.load(path)
    return np.asarray(image.dataobj), image


def files_of(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path to bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("volumes")
    generate_volume_cohort(out, 4, SEED, shape=SHAPE)
    return out


@pytest.fixture(scope="module")
def truth(cohort: Path) -> dict[str, dict]:
    return {v["volume_id"]: v for v in json.loads((cohort / "cohort.json").read_text())["volumes"]}


def pet_on_ct_grid(pet: nib.Nifti1Image, ct: nib.Nifti1Image) -> np.ndarray:
    """The PET value at the world position of every CT voxel (nearest PET voxel): ``(I, J, K)``."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in ct.shape], indexing="ij"), -1).reshape(-1, 3)
    to_pet = np.linalg.inv(pet.affine) @ ct.affine
    pet_ijk = np.clip(np.rint(nib.affines.apply_affine(to_pet, ijk)).astype(int), 0, np.array(pet.shape) - 1)
    return np.asarray(pet.dataobj)[tuple(pet_ijk.T)].reshape(ct.shape)


def test_samples_csv_columns_and_files(cohort, truth):
    table = rows(cohort / "samples.csv")
    assert tuple(table[0]) == CSV_COLUMNS
    assert [r["volume_id"] for r in table] == ["P000_s1", "P001_s1", "P002_s1", "P002_s2", "P003_s1"]
    patients = {r["patient_id"]: r for r in table}
    assert sorted((r["label"], r["centre"]) for r in patients.values()) == [
        ("0", "A"),
        ("0", "B"),
        ("1", "A"),
        ("1", "B"),
    ]
    for r in table:
        for column in ("ct_path", "pet_path", "label_path"):
            assert (cohort / r[column]).exists(), r[column]
        assert float(r["time"]) > 0 and r["event"] in {"0", "1"}
        assert int(r["label"]) == truth[r["volume_id"]]["label"] == int(truth[r["volume_id"]]["n_lesions"] > 0)
    assert patients["P003"]["ct_path"] == "dicom/P003_s1_ct" and (cohort / "dicom/P003_s1_pet").is_dir()
    assert [r["ct_path"] for r in table if r["patient_id"] != "P003"] == [
        f"images/{r['volume_id']}_ct.nii.gz" for r in table if r["patient_id"] != "P003"
    ]
    s1, s2 = (r for r in table if r["patient_id"] == "P002")
    assert (s1["label"], s1["time"], s1["event"], s1["centre"]) == (s2["label"], s2["time"], s2["event"], s2["centre"])


def test_about_half_of_a_larger_cohort_is_positive_and_centres_are_balanced():
    plans = plan_cohort(SEED, 24, SHAPE, 0.25)
    patients = {p.patient_id: p for p in plans}
    assert sum(p.positive for p in patients.values()) == 12
    for centre in "AB":
        assert sum(p.positive for p in patients.values() if p.centre == centre) == 6
    assert 4 <= len(plans) - len(patients) <= 14  # patients with two studies
    assert sorted(p.patient for p in patients.values() if p.dicom) == [3, 7, 11, 15, 19, 23]
    assert all(1 <= len(p.anatomy.lesions) <= 4 for p in plans if p.positive)
    radii = [max(les.radii) for p in plans for les in p.anatomy.lesions if p.study == 1]
    assert min(radii) < 8 and max(radii) > 15  # small lesions and large ones


def test_same_seed_same_bytes_and_patient_k_independent_of_n(cohort, tmp_path):
    generate_volume_cohort(tmp_path / "again", 4, SEED, shape=SHAPE)
    first, again = files_of(cohort), files_of(tmp_path / "again")
    assert first.keys() == again.keys() and first == again
    generate_volume_cohort(tmp_path / "two", 2, SEED, shape=SHAPE)
    for name, data in files_of(tmp_path / "two").items():
        if name.startswith(("images/", "dicom/")):
            assert data == first[name], name
    two = rows(tmp_path / "two" / "samples.csv")
    assert two == rows(cohort / "samples.csv")[: len(two)]


def test_other_seed_differs(cohort, tmp_path):
    generate_volume_cohort(tmp_path, 1, SEED + 1, shape=SHAPE)
    assert (tmp_path / "images/P000_s1_ct.nii.gz").read_bytes() != (cohort / "images/P000_s1_ct.nii.gz").read_bytes()


def test_nifti_files_are_lps_with_consistent_headers(cohort, truth):
    for vid, t in truth.items():
        for kind, dtype in (("ct", np.int16), ("pet", np.float32), ("label", np.int16)):
            data, image = load(cohort / f"images/{vid}_{kind}.nii.gz")
            assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
            assert data.dtype == dtype
            assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
            assert np.allclose(image.get_qform(), image.affine, atol=1e-4)
            affine = t["pet_affine"] if kind == "pet" else t["affine"]
            assert (
                np.allclose(image.affine, affine) and list(image.shape) == t["pet_shape" if kind == "pet" else "shape"]
            )
        ct = nib.as_closest_canonical(nib.load(cohort / f"images/{vid}_ct.nii.gz"))
        assert nib.aff2axcodes(ct.affine) == ("R", "A", "S")
        hu = np.asarray(ct.dataobj)
        body_j = np.nonzero((hu > -300) & (hu < 300))[1].mean()
        assert np.nonzero(hu > 500)[1].mean() < body_j  # spine and table are posterior (low j after RAS)


def test_two_centres_differ_in_spacing_and_noise(cohort, truth):
    spacing = {t["centre"]: t["spacing"] for t in truth.values()}
    assert spacing["A"] == pytest.approx([345.6 / SHAPE[0]] * 2 + [3.0], abs=1e-4)
    assert spacing["B"] == pytest.approx([460.8 / SHAPE[0]] * 2 + [5.0], abs=1e-4)
    noise = {}
    for vid, t in truth.items():
        hu, _ = load(cohort / f"images/{vid}_ct.nii.gz")
        noise.setdefault(t["centre"], []).append(hu[:4, :4].std())  # a corner of air
    assert max(noise["A"]) < min(noise["B"])
    assert {r["centre"]: r for r in rows(cohort / "samples.csv")}.keys() == {"A", "B"}


def test_labels_lie_on_lesions_hotter_in_pet_and_denser_in_ct(cohort, truth):
    positives = [vid for vid, t in truth.items() if t["label"]]
    assert positives
    for vid in positives:
        label, image = load(cohort / f"images/{vid}_label.nii.gz")
        hu, ct = load(cohort / f"images/{vid}_ct.nii.gz")
        pet = pet_on_ct_grid(nib.load(cohort / f"images/{vid}_pet.nii.gz"), ct)
        for lesion in truth[vid]["lesions"]:  # the world centre of every lesion falls in the label
            i, j, k = np.rint(nib.affines.apply_affine(np.linalg.inv(image.affine), lesion["centre_ras_mm"])).astype(
                int
            )
            assert label[i, j, k] == 1, (vid, lesion)
        components, n = ndimage.label(label)
        assert n == truth[vid]["n_lesions"]
        for c in range(1, n + 1):
            inside = components == c
            shell = ndimage.binary_dilation(inside, iterations=2) & (label == 0)
            ratio = pet[inside].mean() / np.median(pet[shell])
            assert ratio > (1.3 if inside.sum() >= 5 else 1.0), (vid, c, ratio)
            if inside.sum() >= 5:
                assert hu[inside].mean() - np.median(hu[shell]) > 15, (vid, c)


def test_pet_hot_spots_in_distractor_organs_carry_no_label(cohort, truth):
    for vid, t in truth.items():
        label, ct = load(cohort / f"images/{vid}_label.nii.gz")
        pet = pet_on_ct_grid(nib.load(cohort / f"images/{vid}_pet.nii.gz"), ct)
        far = ~ndimage.binary_dilation(label > 0, iterations=3)
        assert ((pet > 4) & far).sum() > 20, vid  # kidneys, bladder, heart
        assert {"kidney_left", "kidney_right"} <= t["distractor_suv"].keys()
        if not t["label"]:
            assert label.sum() == 0 and pet.max() > 4


def read_series(folder: Path) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The slices of a series sorted by position along the slice normal, and the stack ``(I, J, K)``."""
    slices = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    stack = np.stack([ds.pixel_array.T * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices], -1)
    return slices, stack


def test_dicom_ct_series_matches_the_nifti(cohort, truth):
    folder = cohort / "dicom/P003_s1_ct"
    names = sorted(p.name for p in folder.glob("*.dcm"))
    assert len(names) == SHAPE[2]
    slices, stack = read_series(folder)
    assert [f.filename.rsplit("/", 1)[-1] for f in slices] != names  # names are shuffled: sort by position
    hu, image = load(cohort / "images/P003_s1_ct.nii.gz")
    assert stack.shape == hu.shape and np.array_equal(stack, hu)
    first = slices[0]
    assert first.SOPClassUID == pydicom.uid.CTImageStorage and first.Modality == "CT"
    assert len({ds.SeriesInstanceUID for ds in slices}) == 1 and len({ds.StudyInstanceUID for ds in slices}) == 1
    assert len({ds.SOPInstanceUID for ds in slices}) == SHAPE[2]
    assert [ds.InstanceNumber for ds in slices] == list(range(1, SHAPE[2] + 1))
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in slices])
    assert np.allclose(np.diff(z), float(first.SliceThickness))
    assert all(list(map(float, ds.ImageOrientationPatient)) == [1, 0, 0, 0, 1, 0] for ds in slices)
    assert {tuple(map(float, ds.ImagePositionPatient[:2])) for ds in slices} == {
        tuple(map(float, first.ImagePositionPatient[:2]))
    }
    row, col = map(float, first.PixelSpacing)  # DICOM LPS of voxel (i, j, k) against the NIfTI affine (RAS)
    for i, j, k in ((0, 0, 0), (SHAPE[0] - 1, 3, 5), (7, SHAPE[1] - 1, SHAPE[2] - 1)):
        lps = (
            np.array(list(map(float, slices[k].ImagePositionPatient)))
            + i * col * np.array([1, 0, 0])
            + j * row * np.array([0, 1, 0])
        )
        assert np.allclose(lps * [-1, -1, 1], nib.affines.apply_affine(image.affine, (i, j, k)), atol=1e-3)
    assert first.InstitutionName == f"Centre {truth['P003_s1']['centre']}"


def test_dicom_pet_series_converts_to_the_nifti_suv(cohort):
    slices, activity = read_series(cohort / "dicom/P003_s1_pet")
    suv, _ = load(cohort / "images/P003_s1_pet.nii.gz")
    first = slices[0]
    assert first.Modality == "PT" and first.Units == "BQML" and first.DecayCorrection == "START"
    drug = first.RadiopharmaceuticalInformationSequence[0]
    assert float(drug.RadionuclideHalfLife) == F18_HALF_LIFE_S
    elapsed = 3600.0  # SeriesTime - RadiopharmaceuticalStartTime
    assert (int(first.SeriesTime[:2]) - int(drug.RadiopharmaceuticalStartTime[:2])) * 3600 == elapsed
    decayed = float(drug.RadionuclideTotalDose) * 2 ** (-elapsed / float(drug.RadionuclideHalfLife))
    converted = activity * float(first.PatientWeight) * 1000 / decayed
    assert first.StudyInstanceUID == pydicom.dcmread(next((cohort / "dicom/P003_s1_ct").glob("*.dcm"))).StudyInstanceUID
    assert np.allclose(converted, suv, atol=float(suv.max()) / 30000)


def test_the_volume_reader_reads_the_cohort(cohort):
    reader = pytest.importorskip("pathattn.io.volume")  # the contract of docs/volumes.md
    dicom, nifti = (
        reader.read_volume(cohort / "dicom/P003_s1_ct"),
        reader.read_volume(cohort / "images/P003_s1_ct.nii.gz"),
    )
    assert np.array_equal(dicom.array, nifti.array) and np.allclose(dicom.affine, nifti.affine, atol=1e-3)
    assert dicom.sources[0]["orientation"] == nifti.sources[0]["orientation"] == "LPS"
    pet = reader.read_volume(cohort / "dicom/P003_s1_pet", modality="PET")
    assert pet.sources[0]["suv"]["converted"]
    suv = reader.read_volume(cohort / "images/P003_s1_pet.nii.gz", modality="PET").array
    assert np.allclose(pet.array, suv, atol=1e-3)
    study = reader.read_study({"CT": cohort / "dicom/P003_s1_ct", "PET": cohort / "images/P003_s1_pet.nii.gz"})
    label = reader.read_label(cohort / "images/P003_s1_label.nii.gz", study)
    assert label.sum() > 0 and study.array[1][label > 0].mean() > 2 * np.median(study.array[1][study.array[0] > -500])


def test_mr_and_ct_only_cohorts(tmp_path):
    generate_volume_cohort(tmp_path / "mr", 1, SEED, shape=(32, 32, 8), modalities=("ct", "mr"))
    table = rows(tmp_path / "mr/samples.csv")
    assert tuple(table[0]) == (*CSV_COLUMNS, "mr_path") and table[0]["pet_path"] == ""
    mr, image = load(tmp_path / "mr" / table[0]["mr_path"])
    assert mr.dtype == np.float32 and mr.shape == (32, 32, 8) and nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert mr.min() >= 0 and np.percentile(mr, 99) > 5 * np.median(mr[:3, :3])  # body over (Rician) background
    generate_volume_cohort(tmp_path / "mronly", 1, SEED, shape=(32, 32, 8), modalities=("mr",))
    only = rows(tmp_path / "mronly/samples.csv")[0]
    assert only["ct_path"] == "" and only["pet_path"] == "" and (tmp_path / "mronly" / only["label_path"]).is_file()


def test_resume_skips_complete_outputs_and_repairs_broken_ones(tmp_path):
    out = tmp_path / "c"
    generate_volume_cohort(out, 4, SEED, shape=SHAPE)
    before = files_of(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    ct = out / "images/P001_s1_ct.nii.gz"
    ct.write_bytes(ct.read_bytes()[:1000])  # truncated
    slices = sorted((out / "dicom/P003_s1_ct").glob("*.dcm"))
    slices[0].unlink()
    stale = out / "dicom" / ".P009_s1_ct.tmp-999999999-abcdef12"
    stale.mkdir()
    generate_volume_cohort(out, 4, SEED, shape=SHAPE)
    assert files_of(out) == before and not stale.exists()
    untouched = [p for p in stamps if "P001" not in p.name and "P003" not in str(p) and p.parent.name == "images"]
    assert untouched and all(p.stat().st_mtime_ns == stamps[p] for p in untouched)
    generate_volume_cohort(out, 4, SEED, shape=SHAPE, overwrite=True)
    assert all(p.stat().st_mtime_ns != stamps[p] for p in untouched)
    assert files_of(out) == before


def test_changed_parameters_regenerate(tmp_path):
    generate_volume_cohort(tmp_path, 1, SEED, shape=(32, 32, 8))
    first = (tmp_path / "images/P000_s1_ct.nii.gz").read_bytes()
    generate_volume_cohort(tmp_path, 1, SEED + 1, shape=(32, 32, 8))
    assert (tmp_path / "images/P000_s1_ct.nii.gz").read_bytes() != first


def test_stale_series_of_a_live_writer_is_kept(tmp_path):
    live = tmp_path / f".P000_s1_ct.tmp-{os.getpid()}-abcdef12"
    live.mkdir()
    assert remove_stale_series(tmp_path) == 0 and live.exists()


def test_modalities_and_memory_are_checked():
    assert parse_modalities("PET, ct") == ("ct", "pet")
    assert parse_modalities("mr") == ("mr",)
    with pytest.raises(PathattnError, match="unknown xray"):
        parse_modalities("ct,xray")
    with pytest.raises(PathattnError, match="needs ct or mr"):
        parse_modalities("pet")
    with pytest.raises(PathattnError, match="--shape"):
        check_volume_memory((4096, 4096, 4096))
    assert SCANNERS["A"].thickness_mm < SCANNERS["B"].thickness_mm


def test_cli_writes_a_cohort(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["synth", "volume", "--out", str(out), "--n-patients", "1", "--shape", "[32,32,8]", "--modalities", "ct"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "samples.csv")
    row = rows(out / "samples.csv")[0]
    assert row["pet_path"] == "" and (out / row["ct_path"]).is_file() and not list(out.glob("images/*_pet.nii.gz"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--n-patients", "0"], "--n-patients must be at least 1"),
        (["--shape", "[8,8,8]"], "--shape must be three integers"),
        (["--shape", "[64,64]"], "--shape must be three integers"),
        (["--shape", "64"], "--shape expects list of integers"),
        (["--modalities", "ct,xray"], "--modalities: unknown xray"),
        (["--modalities", "pet"], "needs ct or mr"),
        (["--dicom-fraction", "1.5"], "--dicom-fraction must be between 0 and 1"),
        (["--shape", "[4096,4096,4096]"], "GiB of memory"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(tmp_path, capsys, options, message):
    assert main(["synth", "volume", "--out", str(tmp_path / "o"), *options]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pathattn synth: error: ") and message in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_file_as_out(tmp_path, capsys):
    file = tmp_path / "f"
    file.write_text("x")
    assert main(["synth", "volume", "--out", str(file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_cli_help_in_words(capsys):
    with pytest.raises(SystemExit) as done:
        main(["synth", "volume", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--dicom-fraction" in text and "--n-patients" in text and "list of integers" in text
    assert not [w for w in ("<function", "<class", "Literal[", "``", "NoneType") if w in text]
