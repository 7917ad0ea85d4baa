"""``pathattn classify fit | predict`` and ``pathattn cams`` on a small PET/CT slice tiling, through the command line.

The run of :func:`trained_slice_run` (ResNet-18, fold 0 of 2 by patient, 2 epochs) is checked for its files, its
leakage-free split and its metrics; it is then predicted, explained with every CAM method and scored by
``pathattn evaluate wsol``. MEDUSA goes through the same commands with its own maps. Bad inputs fail in one line.
"""

import csv
import json
from pathlib import Path

import numpy as np
import torch

from pathattn.cli.main import main
from pathattn.fitting.splits import load_splits
from pathattn.models.trained_image import load_image_classifier


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def fails(capsys, *args: object) -> str:
    """Run the command, expect exit 2 and one line on stderr; return it."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_fit_writes_a_leakage_free_run_with_intervals(trained_slice_run: Path, slice_tiling) -> None:
    splits = load_splits(trained_slice_run / "splits.json")  # checked for leakage when loaded
    fold = splits[0]
    predictions = rows(trained_slice_run / "predictions.csv")
    assert sorted(r["image_id"] for r in predictions) == sorted(fold.test)
    assert {r["fold"] for r in predictions} == {"0"} and Path(predictions[0]["checkpoint"]).is_file()
    metrics = json.loads((trained_slice_run / "metrics.json").read_text())
    assert metrics["split"] == "patient" and metrics["classes"] == ["negative", "positive"]
    first = metrics["folds"][0]
    assert first["test_patients_also_trained_on"] == 0 and 0 < first["threshold"] < 1
    for name in ("auroc", "auprc", "accuracy", "sensitivity", "specificity"):
        assert first[f"{name}_ci_low"] <= first[name] <= first[f"{name}_ci_high"], name
    assert first["auroc"] > 0.7  # two epochs on 8 patients: learning, not yet the learning check
    model = load_image_classifier(predictions[0]["checkpoint"])
    assert model.inputs["image_size"] == 64 and model.centres == ("*",)


def test_slice_split_leaks_patients_and_centre_aware_normalises_per_centre(slice_tiling, tmp_path: Path) -> None:
    data = ["--tiles", slice_tiling.tiles, "--samples", slice_tiling.samples, "--image-size", 32, "--n-folds", 4,
            "--folds", "[1]", "--max-epochs", 1, "--n-boot", 20, "--accelerator", "cpu"]  # fmt: skip
    assert main(["classify", "fit", *map(str, data), "--out", str(tmp_path / "slice"), "--split", "slice"]) == 0
    metrics = json.loads((tmp_path / "slice" / "metrics.json").read_text())
    assert metrics["split"] == "slice" and metrics["folds"][0]["test_patients_also_trained_on"] > 0
    aware = ["--out", str(tmp_path / "aware"), "--centres", "aware", "--balance", "sampler"]
    assert main(["classify", "fit", *map(str, data), *aware]) == 0
    model = load_image_classifier(tmp_path / "aware" / "fold_1" / "checkpoints" / "best.ckpt")
    assert model.centres == ("A", "B", "*") and model.norm_mean.shape == (3, 3)
    assert not np.allclose(model.norm_mean[0], model.norm_mean[1])


def test_predict_scores_the_slices_as_at_training(trained_slice_run: Path, slice_tiling, tmp_path: Path) -> None:
    checkpoint = trained_slice_run / "fold_0" / "checkpoints" / "best.ckpt"
    out = tmp_path / "predicted"
    args = ["classify", "predict", "--checkpoint", checkpoint, "--tiles", slice_tiling.tiles, "--samples",
            slice_tiling.samples, "--out", out, "--n-boot", 20]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    predicted = {r["image_id"]: float(r["prob_positive"]) for r in rows(out / "predictions.csv")}
    trained = {r["image_id"]: float(r["prob_positive"]) for r in rows(trained_slice_run / "predictions.csv")}
    assert set(trained) < set(predicted)
    assert max(abs(predicted[i] - p) for i, p in trained.items()) < 1e-5
    assert "auroc_ci_low" in json.loads((out / "metrics.json").read_text())


def test_cams_of_held_out_patients_are_scored_by_wsol(trained_slice_run: Path, slice_tiling, tmp_path: Path) -> None:
    out = tmp_path / "cams"
    args = ["cams", "--run", trained_slice_run, "--fold", 0, "--tiles", slice_tiling.tiles, "--samples",
            slice_tiling.samples, "--out", out, "--methods", "[gradcam,eigencam]",
            "--calibration-fraction", 0.5]  # fmt: skip
    assert main([str(a) for a in args]) == 0
    summary = json.loads((out / "cams.json").read_text())
    test_ids = set(load_splits(trained_slice_run / "splits.json")[0].test)
    assert summary["methods"] == ["gradcam", "eigencam"] and set(summary["images"]) <= test_ids
    for image_id in summary["images"]:
        score = np.load(out / "maps" / "gradcam" / f"{image_id}.npy")
        assert score.shape == (64, 64) and 0 <= score.min() and score.max() <= 1
        assert (out / "masks" / f"{image_id}.png").is_file() and (out / "images" / f"{image_id}.png").is_file()
    assert {r["split"] for r in rows(out / "split.csv")} == {"calibration", "test"}
    wsol = ["evaluate", "wsol", "--maps", out / "maps" / "gradcam", "--masks", out / "masks", "--boxes",
            out / "boxes.csv", "--split", out / "split.csv", "--classification", out / "classification.csv",
            "--out", tmp_path / "wsol"]  # fmt: skip
    assert main([str(a) for a in wsol]) == 0
    metrics = json.loads((tmp_path / "wsol" / "metrics.json").read_text())
    assert 0 <= metrics["methods"]["maps"]["test"]["pxap"] <= 1
    # the cams folder itself: every method beside the uniform baseline, with the truth files cams wrote
    assert main(["evaluate", "wsol", "--maps", str(out), "--out", str(tmp_path / "all")]) == 0
    methods = json.loads((tmp_path / "all" / "metrics.json").read_text())["methods"]
    assert list(methods) == ["eigencam", "gradcam", "uniform"]
    assert methods["gradcam"]["test"]["pxap"] == metrics["methods"]["maps"]["test"]["pxap"]


def test_cams_on_an_earlier_stage(trained_slice_run: Path, slice_tiling, tmp_path: Path, capsys) -> None:
    args = ["cams", "--run", trained_slice_run, "--fold", 0, "--tiles", slice_tiling.tiles, "--samples",
            slice_tiling.samples, "--methods", "[gradcam]", "--calibration-fraction", 0.5]  # fmt: skip
    assert main([str(a) for a in [*args, "--out", tmp_path / "l3", "--cam-stage", -2]]) == 0
    assert json.loads((tmp_path / "l3" / "cams.json").read_text())["cam_stage"] == -2
    assert main([str(a) for a in [*args, "--out", tmp_path / "bad", "--cam-stage", 7]]) == 2
    err = capsys.readouterr().err
    assert "--cam-stage: feature stage 7 out of range; the network's stages are -5 (act1)" in err
    assert not (tmp_path / "bad").exists()


def test_medusa_trains_and_its_own_maps_are_written(slice_tiling, tmp_path: Path) -> None:
    fit = ["classify", "fit", "--tiles", slice_tiling.tiles, "--samples", slice_tiling.samples, "--out",
           tmp_path / "run", "--model", "medusa", "--model-args", '{"body_size": 32}', "--image-size", 32,
           "--n-folds", 4, "--folds", "[0]", "--max-epochs", 1, "--n-boot", 20, "--accelerator", "cpu"]  # fmt: skip
    assert main([str(a) for a in fit]) == 0
    checkpoint = tmp_path / "run" / "fold_0" / "checkpoints" / "best.ckpt"
    cams = ["cams", "--checkpoint", checkpoint, "--tiles", slice_tiling.tiles, "--samples", slice_tiling.samples,
            "--out", tmp_path / "cams", "--methods", "[attention,gradcam++]"]  # fmt: skip
    assert main([str(a) for a in cams]) == 0
    written = json.loads((tmp_path / "cams" / "cams.json").read_text())["methods"]
    assert written == ["attention_body", "attention_stage0", "attention_stage1", "attention_stage2",
                       "attention_stage3", "gradcam++"]  # fmt: skip
    maps = [np.load(p) for p in (tmp_path / "cams" / "maps" / "attention_body").glob("*.npy")]
    assert maps and all(m.shape == (32, 32) and m.min() >= 0 and m.max() <= 1 for m in maps)


def test_bad_inputs_fail_in_one_line(trained_slice_run: Path, slice_tiling, tmp_path: Path, capsys) -> None:
    tiles = ["--tiles", slice_tiling.tiles, "--samples", slice_tiling.samples]
    short = ["--image-size", 16, "--n-folds", 4, "--folds", "[0]", "--max-epochs", 1, "--accelerator", "cpu"]
    # a patient in two parts of a splits file
    document = json.loads((trained_slice_run / "splits.json").read_text())
    patient = document["slide_patient"][document["folds"][0]["test"][0]]
    document["slide_patient"][document["folds"][0]["train"][0]] = patient  # a training slice of a test patient
    (tmp_path / "splits.json").write_text(json.dumps(document))
    splits = ["--splits", tmp_path / "splits.json"]
    err = fails(capsys, "classify", "fit", *tiles, *short, "--out", tmp_path / "a", *splits)
    assert f"patients cross splits: patient {patient} in" in err and "(images " in err
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a*"))
    # a checkpoint of another family (a MIL model of 'pathattn train')
    mil = tmp_path / "mil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {"model_spec": {"name": "abmil",
                "kwargs": {}}}}, mil)  # fmt: skip
    err = fails(capsys, "classify", "predict", "--checkpoint", mil, *tiles, "--out", tmp_path / "p")
    assert "is a checkpoint of the mil model abmil; pass a checkpoint of 'pathattn classify fit'" in err
    err = fails(capsys, "cams", "--checkpoint", mil, *tiles, "--out", tmp_path / "c")
    assert "is a checkpoint of the mil model abmil" in err
    # an image sheet: a label for an image that does not exist; one class only
    (tmp_path / "images.csv").write_text("path,label\nnowhere.png,a\n")
    err = fails(capsys, "classify", "fit", "--images", tmp_path / "images.csv", "--out", tmp_path / "b")
    assert "1 labelled images do not exist (line 2:" in err and "nowhere.png" in err
    # neither input, and options no run could use
    assert "pass either --tiles" in fails(capsys, "classify", "fit", "--out", tmp_path / "b")
    assert "--val-fraction must be in (0, 0.5]" in fails(capsys, "classify", "fit", *tiles, "--out", tmp_path / "b",
                                                         "--val-fraction", 0)  # fmt: skip
    # a plain CNN has no maps of its own
    checkpoint = trained_slice_run / "fold_0" / "checkpoints" / "best.ckpt"
    err = fails(capsys, "cams", "--checkpoint", checkpoint, *tiles, "--out", tmp_path / "d", "--methods", "[attention]")
    assert "has no attention maps of its own; use the CAM methods" in err
