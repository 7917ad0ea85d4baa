"""``pathattn segment fit | predict | evaluate`` on a small synthetic PET/CT cohort, through the command line.

The run of :func:`segmentation_run` (a tiny Attention U-Net, fold 0 of 3 by patient, 2 epochs, patches deeper than the
volumes) is checked for its files, its leakage-free split, masks and gate maps on each input's own (LPS,
anisotropic) grid, and its metrics; it is then predicted again (resumed, one broken volume recorded while the
others go on) and evaluated, a perfect prediction scoring 1. Bad inputs fail in one line and write nothing.
"""

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from pathattn.cli.main import main
from pathattn.fitting.splits import load_splits
from pathattn.io.nifti import write_nifti
from pathattn.models.trained_segmentation import load_segmenter


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def fails(capsys, *args: object, code: int = 2) -> str:
    """Run the command, expect exit ``code`` and one line on stderr; return it."""
    assert main([str(a) for a in args]) == code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_fit_writes_a_leakage_free_run_and_scores_its_held_out_patients(
    segmentation_run: Path, segmentation_cohort: Path
) -> None:
    sheet = rows(segmentation_cohort / "samples.csv")
    table = [{"slide_id": r["volume_id"], "patient_id": r["patient_id"]} for r in sheet]
    splits = load_splits(segmentation_run / "splits.json", table, item="volume")  # raises on leakage
    fold = splits[0]
    assert fold.test and fold.val and fold.train
    empty = [r["volume_id"] for r in sheet if r["label"] == "0"]
    assert set(empty) & set(fold.train)  # volumes without lesions train too (background patches)
    metrics = json.loads((segmentation_run / "metrics.json").read_text())
    assert metrics["model"] == "attention_unet" and metrics["channels"] == ["CT", "PET"]
    test = metrics["folds"][0]
    assert test["cases"] == len(fold.test) and set(test["attention_pxap"]) == {"level2", "level3", "level4", "uniform"}
    assert set(metrics["summary"]["1"]) >= {"dice_mean_positive", "hd95_mean", "nsd_mean", "lesion_recall"}
    checkpoint = segmentation_run / "fold_0" / "checkpoints" / "best.ckpt"
    assert test["checkpoint"] == str(checkpoint.resolve())
    model = load_segmenter(checkpoint)
    assert model.name == "attention_unet" and model.n_classes == 2 and model.inputs["patch_size"] == [32, 32, 16]
    predicted = rows(segmentation_run / "fold_0" / "test" / "predictions.csv")
    assert sorted(r["volume_id"] for r in predicted) == sorted(fold.test)
    for row in predicted:
        ct = nib.load(segmentation_cohort / next(r["ct_path"] for r in sheet if r["volume_id"] == row["volume_id"]))
        for name in [row["mask"], *row["attention"].split(";")]:
            written = nib.load(segmentation_run / "fold_0" / "test" / name)
            assert written.shape == ct.shape and np.allclose(written.affine, ct.affine)  # the file's grid, LPS
            assert nib.aff2axcodes(written.affine) == ("L", "P", "S")
        gate = np.asarray(nib.load(segmentation_run / "fold_0" / "test" / row["attention"].split(";")[0]).dataobj)
        assert gate.min() >= 0 and gate.max() <= 1
        assert (segmentation_run / "fold_0" / "test" / row["qc"]).stat().st_size > 0


def test_predict_resumes_records_a_broken_volume_and_goes_on(
    segmentation_run: Path, segmentation_cohort: Path, tmp_path: Path, capsys
) -> None:
    sheet = rows(segmentation_cohort / "samples.csv")
    broken = sheet[0]
    ct = nib.load(segmentation_cohort / broken["ct_path"])
    array = np.asarray(ct.dataobj).astype(np.float32)
    array[0, 0, 0] = np.nan
    write_nifti(tmp_path / "nan_ct.nii.gz", array, ct.affine)
    broken["ct_path"] = str(tmp_path / "nan_ct.nii.gz")
    for row in sheet[1:]:
        for key in ("ct_path", "pet_path", "label_path"):
            row[key] = str(segmentation_cohort / row[key])
    with (tmp_path / "samples.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet[:3])
    checkpoint = segmentation_run / "fold_0" / "checkpoints" / "best.ckpt"
    args = ["segment", "predict", "--checkpoint", checkpoint, "--samples", tmp_path / "samples.csv", "--out",
            tmp_path / "pred", "--overlap", "0.25", "--blend", "constant"]  # fmt: skip
    assert main([str(a) for a in args]) == 1
    errors = rows(tmp_path / "pred" / "errors.csv")
    assert [e["volume_id"] for e in errors] == [broken["volume_id"]] and "NaN or infinite" in errors[0]["error"]
    done = rows(tmp_path / "pred" / "predictions.csv")
    assert len(done) == 2
    first = tmp_path / "pred" / done[0]["mask"]
    stamp = first.stat().st_mtime_ns
    assert main([str(a) for a in args]) == 1  # resumed: the two done are kept as they are
    assert first.stat().st_mtime_ns == stamp and len(rows(tmp_path / "pred" / "predictions.csv")) == 2
    # a perfect prediction scores 1 everywhere
    for row in done:
        label = next(r["label_path"] for r in sheet if r["volume_id"] == row["volume_id"])
        shutil.copy(label, tmp_path / "pred" / row["mask"])
    out = tmp_path / "scores"
    assert main(["segment", "evaluate", "--predictions", str(tmp_path / "pred"), "--samples",
                 str(tmp_path / "samples.csv"), "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "metrics.json").read_text())["classes"]["1"]
    assert summary["dice_mean"] == 1.0 and summary["nsd_mean"] == 1.0 and summary["hd95_mean"] == 0.0
    assert summary["lesion_recall"] in (1.0, None) and summary["false_positive_cases"] == 0
    assert {r["volume_id"] for r in rows(out / "cases.csv")} == {r["volume_id"] for r in done}


def test_bad_inputs_fail_in_one_line_and_write_nothing(
    segmentation_run: Path, segmentation_cohort: Path, tmp_path: Path, segmentation_options: list[str], capsys
) -> None:
    sheet = rows(segmentation_cohort / "samples.csv")
    for row in sheet:
        for key in ("ct_path", "pet_path", "label_path"):
            row[key] = str(segmentation_cohort / row[key])
    positive = next(r for r in sheet if r["label"] == "1")
    label = nib.load(positive["label_path"])

    def fit_fails(changed: dict, *extra: object) -> str:
        rows_ = [{**r, **changed} if r is positive else r for r in sheet]
        with (tmp_path / "bad.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(sheet[0]))
            writer.writeheader()
            writer.writerows(rows_)
        err = fails(
            capsys,
            "segment",
            "fit",
            "--samples",
            tmp_path / "bad.csv",
            "--out",
            tmp_path / "out",
            *segmentation_options,
            *extra,
        )
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
        return err

    # a label on another grid (shape), shifted (affine), with a class the network does not have; NaN voxels
    write_nifti(tmp_path / "small.nii.gz", np.zeros((20, 20, 12), np.int16), label.affine)
    assert "label grid (20, 20, 12) differs from the image's" in fit_fails({"label_path": tmp_path / "small.nii.gz"})
    shifted = label.affine.copy()
    shifted[0, 3] += 5.0
    write_nifti(tmp_path / "shifted.nii.gz", np.asarray(label.dataobj), shifted)
    assert "label affine differs from the image's by up to 5 mm" in fit_fails(
        {"label_path": tmp_path / "shifted.nii.gz"}
    )
    three = np.asarray(label.dataobj).copy()
    three[three == 1] = 3
    write_nifti(tmp_path / "three.nii.gz", three, label.affine)
    assert "label classes [3] outside 0..1" in fit_fails({"label_path": tmp_path / "three.nii.gz"})
    ct = nib.load(positive["ct_path"])
    nan = np.asarray(ct.dataobj).astype(np.float32)
    nan[1, 2, 3] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", nan, ct.affine)
    assert "1 voxels are NaN or infinite" in fit_fails({"ct_path": tmp_path / "nan.nii.gz"})
    # weights of another number of classes, and of another network
    checkpoint = segmentation_run / "fold_0" / "checkpoints" / "best.ckpt"
    err = fit_fails({}, "--weights", checkpoint, "--n-classes", "3")
    assert (
        "with 2 channels and 3 classes" in err and "pass weights of the same network, channels and --n-classes" in err
    )
    assert "--model unet" in fit_fails({}, "--weights", checkpoint, "--model", "unet")
    # a checkpoint of another family, and options no run could use
    mil = tmp_path / "mil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {"model_spec": {"name": "abmil",
                "kwargs": {}}}}, mil)  # fmt: skip
    sheet_path = segmentation_cohort / "samples.csv"
    err = fails(capsys, "segment", "predict", "--checkpoint", mil, "--samples", sheet_path, "--out", tmp_path / "p")
    assert "is a checkpoint of the mil model abmil; pass a checkpoint of 'pathattn segment fit'" in err
    assert not (tmp_path / "p").exists()
    assert "is not a segmentation model" in fit_fails({}, "--model", "abmil")
    assert "--patch-size must be three sides of 8 voxels or more" in fit_fails({}, "--patch-size", "[32,32]")
    assert "--model-args sets in_channels" in fit_fails({}, "--model-args", "{in_channels: 3}")
    err = fails(
        capsys, "segment", "evaluate", "--predictions", tmp_path, "--samples", segmentation_cohort / "samples.csv"
    )
    assert "no predictions.csv; pass the --out of 'pathattn segment predict'" in err
