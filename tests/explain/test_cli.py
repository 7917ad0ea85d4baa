"""``pathattn explain`` end to end on a tiny study: records, summaries, resume, failures, options, report section."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from shapely.geometry import box

from pathattn.cli.main import main
from pathattn.explain.engine import Explainer
from pathattn.explain.hippo_compat import hippo_greedy_search
from pathattn.io.bags import read_bag, write_features
from pathattn.io.geojson import Annotation, write_annotations
from pathattn.io.manifest import read_manifest
from pathattn.models.trained import load_trained
from pathattn.registry import create_model
from pathattn.report.inputs import load_inputs
from pathattn.report.sections import explain_section
from pathattn.train.mil.system import MILSystem

DIM, SIDE, PATCH = 6, 4, 512
SLIDES = [f"s{k}" for k in range(6)]
TUMOR = (0, 0, 2 * PATCH, PATCH)  # the first two patches of the top row


def write_checkpoint(path: Path, name: str = "abmil", task: str = "classification", n_classes: int = 2) -> Path:
    """A checkpoint as ``pathattn train`` writes it, of a seeded untrained network with standardisation."""
    torch.manual_seed(0)
    spec = {"name": name, "kwargs": {"in_dim": DIM, "n_classes": n_classes, "embed_dim": 16}}
    classes = ["normal", "tumor"] if task == "classification" else None
    system = MILSystem(create_model(name, **spec["kwargs"]), task=task, model_spec=spec, class_names=classes,
                       feature_norm="standardize")  # fmt: skip
    system.set_feature_stats(torch.full((DIM,), 0.5), torch.full((DIM,), 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams),
                "pytorch-lightning_version": lightning.__version__}, path)  # fmt: skip
    return path


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    """Six slides of a 4 x 4 patch grid; odd slides have planted rows 0-1 and a tumor annotation over them."""
    rng = np.random.default_rng(0)
    coords = np.array([(x * PATCH, y * PATCH) for y in range(SIDE) for x in range(SIDE)], np.int64)
    rows = ["slide_id,patient_id,label"]
    for k, slide_id in enumerate(SLIDES):
        bag = rng.normal(size=(len(coords), DIM)).astype(np.float32)
        regions = []
        if k % 2:
            bag[:2] += 3.0
            regions = [Annotation(box(*TUMOR), "Tumor")]
        write_features(tmp_path / "features" / "h5_files" / f"{slide_id}.h5", bag, coords,
                       {"patch_size_level0": PATCH}, {"encoder": "test"})  # fmt: skip
        write_annotations(tmp_path / "annotations" / f"{slide_id}.geojson", regions)
        rows.append(f"{slide_id},p{k},{'tumor' if k % 2 else 'normal'}")
    (tmp_path / "samples.csv").write_text("\n".join(rows) + "\n")
    return {"root": tmp_path, "features": tmp_path / "features", "annotations": tmp_path / "annotations",
            "samples": tmp_path / "samples.csv", "checkpoint": write_checkpoint(tmp_path / "model.ckpt")}  # fmt: skip


def explain(study: dict[str, Path], out: Path, *extra: str) -> int:
    base = ["explain", "--checkpoint", str(study["checkpoint"]), "--features", str(study["features"]),
            "--out", str(out), "--samples", str(study["samples"])]  # fmt: skip
    return main([*base, *extra])


def record(out: Path, slide_id: str) -> dict:
    return json.loads((out / "slides" / f"{slide_id}.json").read_text())


def test_every_output_of_a_full_run(study):
    out = study["root"] / "out"
    methods = ["--method", "compare", "search", "region", "insertion", "attributions"]
    args = ["--annotations", str(study["annotations"]), "--donors", "s1", "s3", "--fraction", "0.2", "--n-random", "4"]
    assert explain(study, out, *methods, *args) == 0
    assert {r["status"] for r in read_manifest(out / "manifest.csv")} == {"done"}
    model = load_trained(study["checkpoint"])
    for slide_id in SLIDES:
        found = record(out, slide_id)
        assert found["schema"] == "pathattn-explain/1" and found["backend"] == "cached"
        assert found["optimized_class_index"] == found["target"]["class_index"]
        assert len(found["ablated_patches"]) == 4 == len(found["model_outputs"]) - 1  # ceil(0.2 * 16)
        features = torch.from_numpy(read_bag(study["features"] / "h5_files" / f"{slide_id}.h5").features)
        with torch.no_grad():
            probs = torch.softmax(model.network(model.normalize(features)[None]).logits, -1)[0].numpy()
        np.testing.assert_allclose(found["model_outputs"][0], probs, atol=1e-5)
        assert found["region"]["indices"] == ([0, 1] if slide_id in ("s1", "s3", "s5") else [])
        assert found["insertion"]["donor"] == ("s3" if slide_id == "s1" else "s1")
        assert set(found["insertion"]["order"]) <= {0, 1}  # only the donor's annotated patches are offered
        assert set(found["attributions"]) == {"integrated_gradients", "feature_ablation"}
        assert set(found["patches"]) == {"attention", "single_effect", "integrated_gradients", "feature_ablation"}
        assert all(len(values) == 16 for values in found["patches"].values())
        assert set(found["figures"]) == {"curves", "effects"}  # no slide file: no thumbnail
        assert all(Path(p).is_file() for p in found["figures"].values())
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [r["slide_id"] for r in summary] == SLIDES and summary[1]["label"] == "tumor"
    cohort = json.loads((out / "cohort.json").read_text())
    assert cohort["n_slides"] == 6 and len(cohort["tests"]) == 3
    assert set(cohort["flags"]) == {"overlooked_small_tumor", "driven_by_non_tumor"}


def test_rerun_resumes_and_new_settings_recompute(study, capsys):
    out = study["root"] / "out"
    assert explain(study, out, "--no-figures") == 0
    assert explain(study, out, "--no-figures") == 0
    assert {r["status"] for r in read_manifest(out / "manifest.csv")} == {"skipped"}
    assert explain(study, out, "--no-figures", "--slide-ids", "s2", "--fraction", "0.5") == 0
    rows = {r["slide_id"]: r["status"] for r in read_manifest(out / "manifest.csv")}
    assert rows["s2"] == "done" and rows["s0"] == "skipped"
    assert len(record(out, "s2")["ablated_patches"]) == 8


def test_a_failing_slide_is_recorded_and_the_others_go_on(study, capsys):
    write_annotations(study["annotations"] / "s2.geojson", [Annotation(box(9000, 9000, 9100, 9100), "Tumor")])
    (study["annotations"] / "s4.geojson").unlink()
    empty = np.zeros((0, DIM), np.float32)
    write_features(study["features"] / "h5_files" / "s9.h5", empty, np.zeros((0, 2)), {"patch_size_level0": PATCH}, {})
    write_annotations(study["annotations"] / "s9.geojson", [])
    out = study["root"] / "out"
    assert explain(study, out, "--annotations", str(study["annotations"]), "--no-figures") == 1
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert "select no patch of the slide" in rows["s2"]["error"] and rows["s2"]["status"] == "failed"
    assert "no annotation file" in rows["s4"]["error"]
    assert rows["s9"]["status"] == "empty" and not (out / "slides" / "s9.json").exists()
    assert sum(r["status"] == "done" for r in rows.values()) == 4
    assert "7 slides (4 done, 1 empty, 2 failed)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "region"], "--method region needs --annotations"),
        (["--method", "insertion"], "--method insertion needs --donors"),
        (["--slide-ids", "nope"], "not in --features"),
        (["--run", "x"], "either --checkpoint"),
        (["--objective", "odds"], "invalid choice"),
        (["--fraction", "0"], "--fraction must be in (0, 1)"),
        (["--fraction", "1"], "--fraction must be in (0, 1) (a share of the patches, e.g. 0.05), got 1.0"),
        (["--fraction", "-0.5"], "--fraction must be in (0, 1)"),
        (["--rounds", "0"], "--rounds must be at least 1, got 0"),
        (["--n-random", "0"], "--n-random, --insert-rounds and --ig-steps must be at least 1"),
        (["--insert-rounds", "-3"], "--n-random, --insert-rounds and --ig-steps must be at least 1"),
        (["--ig-steps", "0"], "--n-random, --insert-rounds and --ig-steps must be at least 1"),
        (["--small-tumor", "1.5"], "--small-tumor must be in [0, 1], got 1.5"),
        (["--seed", "-1"], "--seed must be 0 or more, got -1"),
        (["--min-overlap", "2"], "--min-overlap must be in [0, 1]"),
        (["--min-overlap", "-0.1"], "--min-overlap must be in [0, 1]"),
    ],
)
def test_bad_options_are_one_line_errors(study, capsys, args, needle):
    out = study["root"] / "out"
    assert explain(study, out, *args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and needle in errors[0]
    assert not out.exists()  # refused at the option check, before any slide


def test_hippo_compat_search_and_out_of_fold_run(study):
    run = study["root"] / "run"
    checkpoints = [write_checkpoint(run / f"fold_{k}" / "checkpoints" / "last.ckpt") for k in (0, 1)]
    rows = ["slide_id,fold,checkpoint"] + [f"{s},{k % 2},{checkpoints[k % 2]}" for k, s in enumerate(SLIDES)]
    (run / "predictions.csv").write_text("\n".join(rows) + "\n")
    out = study["root"] / "out"
    args = ["explain", "--run", str(run), "--features", str(study["features"]), "--out", str(out)]
    assert main([*args, "--method", "search", "--hippo-compat", "--rounds", "3", "--optimizer", "maximize"]) == 0
    found = record(out, "s3")
    assert found["checkpoint"] == str(checkpoints[1]) and found["search"]["hippo_compat"]
    features = read_bag(study["features"] / "h5_files" / "s3.h5").features
    expected = hippo_greedy_search(Explainer(load_trained(checkpoints[1]), features),
                                   found["optimized_class_index"], "maximize", 3)  # fmt: skip
    assert found["ablated_patches"] == expected["ablated_patches"].tolist()
    np.testing.assert_allclose(found["model_outputs"], expected["model_outputs"], atol=1e-7)


def test_survival_model_explains_the_risk(study):
    study["checkpoint"] = write_checkpoint(study["root"] / "survival.ckpt", task="survival", n_classes=3)
    out = study["root"] / "out"
    assert explain(study, out, "--no-figures", "--method", "compare", "search", "--stop-on-flip",
                   "--risk-threshold", "-1.5") == 0  # fmt: skip
    found = record(out, "s1")
    assert found["target"]["objective"] == "risk" and len(found["prediction"]["outputs"]) == 1
    assert found["prediction"]["objective"] == pytest.approx(found["prediction"]["outputs"][0])
    assert found["prediction"]["decision"] == int(found["prediction"]["objective"] > -1.5)


def test_max_pool_falls_back_with_a_note(study, capsys):
    study["checkpoint"] = write_checkpoint(study["root"] / "max.ckpt", name="max_pool")
    out = study["root"] / "out"
    assert explain(study, out, "--no-figures", "--slide-ids", "s0", "s1") == 0
    assert "MaxPool is not instance-separable" in capsys.readouterr().err
    assert record(out, "s0")["backend"] == "generic"


def test_report_section(study):
    assert explain(study, study["root"] / "results" / "explain", "--annotations", str(study["annotations"])) == 0
    (study["root"] / "results" / "tiles").mkdir()
    section = explain_section(load_inputs(study["root"] / "results"))
    assert section is not None and section.key == "explain"
    assert len(section.data["tests"]) == 3 and len(section.data["rows"]) == 6
    assert len(section.data["figures"]) == 6 and section.data["figures"][0]["uri"].startswith("data:image/jpeg")
    assert not math.isnan(float(section.data["rows"][0][4]))
    (study["root"] / "bare" / "tiles").mkdir(parents=True)
    assert explain_section(load_inputs(study["root"] / "bare")) is None


def test_nan_or_other_size_features_fail_their_slide(study, capsys):
    bag = np.ones((16, DIM), np.float32)
    bag[3, 1] = np.nan
    coords = np.array([(x * PATCH, 0) for x in range(16)], np.int64)
    write_features(study["features"] / "h5_files" / "s1.h5", bag, coords, {"patch_size_level0": PATCH}, {})
    write_features(study["features"] / "h5_files" / "s2.h5", np.ones((16, 3), np.float32), coords,
                   {"patch_size_level0": PATCH}, {})  # fmt: skip
    out = study["root"] / "out"
    assert explain(study, out, "--no-figures", "--method", "compare") == 1
    rows = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}
    assert "s1.h5 has NaN or Inf features in 1 patches" in rows["s1"]["error"]
    assert "s2.h5 has 3-d features but the model takes 6-d" in rows["s2"]["error"]
    assert sum(r["status"] == "done" for r in rows.values()) == 4
    assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("pathattn")]) == 1
