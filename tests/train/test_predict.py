"""``pathattn predict`` on the batch runner: a bad slide is recorded in the manifest and the others are predicted."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pathattn.cli.main import main
from pathattn.io.bags import write_features
from pathattn.io.manifest import read_manifest
from pathattn.io.scores import read_patch_scores
from pathattn.models.trained import load_trained
from pathattn.registry import create_model
from pathattn.train.mil.system import MILSystem

DIM, PATCH = 8, 256


def write_checkpoint(path: Path) -> Path:
    """A seeded 8-d ABMIL classifier saved as ``pathattn train`` saves its checkpoints."""
    torch.manual_seed(1)
    spec = {"name": "abmil", "kwargs": {"in_dim": DIM, "n_classes": 2, "embed_dim": 16}}
    system = MILSystem(create_model("abmil", **spec["kwargs"]), model_spec=spec, class_names=["normal", "tumor"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, path)
    return path


def write_bag(folder: Path, slide_id: str, features: np.ndarray) -> None:
    coords = np.stack([np.arange(len(features)) * PATCH, np.zeros(len(features), np.int64)], axis=1)
    write_features(folder / "h5_files" / f"{slide_id}.h5", features, coords, {"patch_size_level0": PATCH},
                   {"encoder": "test"})  # fmt: skip


@pytest.fixture
def study(tmp_path: Path) -> dict[str, Path]:
    """Two good bags (a, b), NaN features (c), 6-d features (d), no patch (e) and a damaged file (f)."""
    rng = np.random.default_rng(0)
    features = tmp_path / "features"
    write_bag(features, "a", rng.normal(size=(5, DIM)).astype(np.float32))
    write_bag(features, "b", rng.normal(size=(7, DIM)).astype(np.float32))
    nan = rng.normal(size=(4, DIM)).astype(np.float32)
    nan[1, 3] = np.nan
    write_bag(features, "c", nan)
    write_bag(features, "d", rng.normal(size=(4, 6)).astype(np.float32))
    write_bag(features, "e", np.zeros((0, DIM), np.float32))
    (features / "h5_files" / "f.h5").write_bytes(b"not an HDF5 file")
    return {"root": tmp_path, "features": features, "checkpoint": write_checkpoint(tmp_path / "model.ckpt")}


def predict(study: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["predict", "--features", str(study["features"]), "--out", str(out), *extra])


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("pathattn")]


def assert_clean(root: Path, out: Path, before: set[str]) -> None:
    """Nothing half-written in ``out`` and nothing new outside it."""
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert {p.name for p in root.iterdir()} - before <= {out.name}


def test_bad_slides_are_recorded_and_the_others_predicted(study, capsys):
    out = study["root"] / "pred"
    (out / "attention").mkdir(parents=True)
    (out / "attention" / ".a.tmp-999999999-deadbeef.h5").write_bytes(b"half")  # left by a killed predict
    (out / "attention" / "c.h5").write_bytes(b"attention of an earlier run")
    before = {p.name for p in study["root"].iterdir()}
    assert predict(study, out, "--checkpoint", str(study["checkpoint"])) == 1
    rows = {row["slide_id"]: row for row in read_manifest(out / "manifest.csv")}
    assert {s: r["status"] for s, r in rows.items()} == {
        "a": "done", "b": "done", "c": "failed", "d": "failed", "e": "empty", "f": "failed"
    }  # fmt: skip
    assert "has NaN or Inf features in 1 patches" in rows["c"]["error"]
    assert f"d.h5 has 6-d features but the model of {study['checkpoint']} takes 8-d" in rows["d"]["error"]
    assert "f.h5 is not a readable HDF5 file" in rows["f"]["error"]
    errors = error_lines(capsys)
    assert len(errors) == 1 and errors[0].startswith("pathattn predict: error: 3 of 6 slides failed, first: c:")
    predicted = read_manifest(out / "predictions.csv")
    assert [row["slide_id"] for row in predicted] == ["a", "b"]  # no prediction from the head's bias for e
    assert sorted(p.name for p in (out / "attention").iterdir()) == ["a.h5", "b.h5"]
    assert_clean(study["root"], out, before)


def test_good_slides_give_the_model_outputs_whatever_fails_beside_them(study, capsys):
    model = load_trained(study["checkpoint"])
    alone, beside = study["root"] / "alone", study["root"] / "beside"
    assert predict(study, alone, "--checkpoint", str(study["checkpoint"]), "--slide-ids", "a", "b") == 0
    assert predict(study, beside, "--checkpoint", str(study["checkpoint"])) == 1
    assert (alone / "predictions.csv").read_text() == (beside / "predictions.csv").read_text()
    with (alone / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["slide_id", "n_patches", "prediction", "prob_normal", "prob_tumor", "checkpoint"]
    for row in rows:
        with h5py.File(study["features"] / "h5_files" / f"{row['slide_id']}.h5") as f:
            bag = torch.from_numpy(f["features"][:])
        with torch.inference_mode():
            probabilities, attention = model.predict_bag(bag)
        assert float(row["prob_tumor"]) == pytest.approx(float(probabilities[1]), abs=1e-6)
        assert row["prediction"] == ["normal", "tumor"][int(probabilities.argmax())]
        for folder in (alone, beside):
            scores = read_patch_scores(folder / "attention" / f"{row['slide_id']}.h5")
            np.testing.assert_allclose(scores.values, attention.numpy(), rtol=0, atol=1e-6)


def test_out_of_fold_predict_goes_on_past_a_bad_slide_and_a_bad_checkpoint(study, capsys):
    run = study["root"] / "run"
    good = write_checkpoint(run / "fold_0" / "checkpoints" / "best.ckpt")
    broken = write_checkpoint(run / "fold_1" / "checkpoints" / "best.ckpt")
    broken.write_bytes(b"not a checkpoint")
    (run / "predictions.csv").write_text(f"slide_id,fold,checkpoint\na,0,{good}\nc,0,{good}\nb,1,{broken}\n")
    out = study["root"] / "oof"
    assert predict(study, out, "--run", str(run)) == 1
    rows = {row["slide_id"]: row for row in read_manifest(out / "manifest.csv")}
    assert {s: r["status"] for s, r in rows.items()} == {"a": "done", "b": "failed", "c": "failed"}
    assert str(broken) in rows["b"]["error"] and rows["b"]["checkpoint"] == str(broken)
    assert [row["slide_id"] for row in read_manifest(out / "predictions.csv")] == ["a"]
    assert len(error_lines(capsys)) == 1


def test_no_slide_predicted_leaves_no_predictions_table(study, capsys):
    out = study["root"] / "pred"
    out.mkdir()
    (out / "predictions.csv").write_text("slide_id,prediction\nc,tumor\n")  # of an earlier run
    assert predict(study, out, "--checkpoint", str(study["checkpoint"]), "--slide-ids", "c", "d") == 1
    assert not (out / "predictions.csv").exists()
    assert {row["status"] for row in read_manifest(out / "manifest.csv")} == {"failed"}


def test_unreadable_files_are_named_as_permission_problems(study, capsys, monkeypatch):
    """A file the user may not read is reported as such, never as a damaged or foreign file (tests run as root,
    so the permission error is simulated)."""
    out = study["root"] / "pred"
    denied = {study["checkpoint"], study["features"] / "h5_files" / "b.h5"}
    real_open, real_file = Path.open, h5py.File

    def path_open(self, *args, **kwargs):  # noqa: ANN001, ANN202
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    def h5_file(name, *args, **kwargs):  # noqa: ANN001, ANN202
        if Path(name) in denied:
            raise PermissionError(13, "Permission denied", str(name))
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(Path, "open", path_open)
    monkeypatch.setattr(h5py, "File", h5_file)
    assert predict(study, out, "--checkpoint", str(study["checkpoint"])) == 2
    assert error_lines(capsys) == [
        f"pathattn predict: error: --checkpoint: cannot read {study['checkpoint']}: permission denied; give your "
        "user read access"
    ]
    denied.remove(study["checkpoint"])
    assert predict(study, out, "--checkpoint", str(study["checkpoint"]), "--slide-ids", "a", "b") == 1
    row = {r["slide_id"]: r for r in read_manifest(out / "manifest.csv")}["b"]
    denied_bag = study["features"] / "h5_files" / "b.h5"
    assert row["error"] == f"cannot read feature file {denied_bag}: permission denied; give your user read access"


def test_a_feature_file_whose_name_breaks_the_id_rule_fails_alone(study, tmp_path):
    """A file name with a space is recorded as failed with the id rule; nothing is written under that name."""
    rng = np.random.default_rng(3)
    write_bag(study["features"], "bad name", rng.normal(size=(3, DIM)).astype(np.float32))
    out = tmp_path / "out"
    assert predict(study, out, "--checkpoint", str(study["checkpoint"]), "--slide-ids", "a", "bad name") == 1
    rows = {row["slide_id"]: row for row in read_manifest(out / "manifest.csv")}
    assert rows["a"]["status"] == "done" and rows["bad name"]["status"] == "failed"
    assert "slide id 'bad name' is not allowed" in rows["bad name"]["error"]
    assert sorted(p.name for p in (out / "attention").iterdir()) == ["a.h5"]
