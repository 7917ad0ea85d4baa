"""`pathattn train` with composed YAML configs (on one process and with DDP on two), then `pathattn predict`."""

import csv
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.io.bags import write_features
from pathattn.io.manifest import read_manifest

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def cohort(tmp_path, n_patients=12, dim=6):
    """h5 feature files with coordinates; tumor bags hold 3 shifted instances (rows 0-2)."""
    rng = np.random.default_rng(1)
    rows = ["slide_id,patient_id,label"]
    for p in range(n_patients):
        n = int(rng.integers(8, 16))
        bag = rng.normal(size=(n, dim)).astype(np.float32)
        if p % 2:
            bag[:3, :2] += 5.0
        coords = np.stack([np.arange(n) * 512, np.zeros(n)], axis=1).astype(np.int64)
        write_features(
            tmp_path / "f" / "h5_files" / f"s{p}.h5", bag, coords, {"patch_size_level0": 512}, {"encoder": "x"}
        )
        rows.append(f"s{p},p{p},{'tumor' if p % 2 else 'normal'}")
    (tmp_path / "samples.csv").write_text("\n".join(rows) + "\n")


def test_train_then_predict(tmp_path, capsys):
    cohort(tmp_path)
    configs = [
        f"--config={ROOT / 'configs' / c}" for c in ("model/abmil.yaml", "data/default.yaml", "trainer/default.yaml")
    ]
    args = ["train", *configs, "--samples", str(tmp_path / "samples.csv"), "--features", str(tmp_path / "f"),
            "--out", str(tmp_path / "run"), "--n_folds", "3", "--val_fraction", "0.34", "--max_epochs", "12",
            "--lr", "0.005", "--n_boot", "20", "--accelerator", "cpu"]  # fmt: skip
    assert main(args) == 0
    assert "auroc" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "abmil" and metrics["config"]["n_folds"] == "3"
    checkpoint = tmp_path / "run" / "fold_0" / "checkpoints" / "last.ckpt"
    assert main(["predict", "--checkpoint", str(checkpoint), "--features", str(tmp_path / "f"),
                 "--out", str(tmp_path / "pred")]) == 0  # fmt: skip
    rows = read_manifest(tmp_path / "pred" / "predictions.csv")
    assert len(rows) == 12 and {r["prediction"] for r in rows} <= {"normal", "tumor"}
    assert all(abs(float(r["prob_normal"]) + float(r["prob_tumor"]) - 1) < 1e-5 for r in rows)
    with h5py.File(tmp_path / "pred" / "attention" / "s1.h5") as f:
        attention, coords = f["attention"][:], f["coords"][:]
        assert attention.shape == (len(coords), 1) and f["coords"].attrs["patch_size_level0"] == 512
        assert f.attrs["model"] == "abmil" and f.attrs["slide_id"] == "s1"
    _predict_out_of_fold(tmp_path, capsys)


def _predict_out_of_fold(tmp_path, capsys):
    """--run predicts every slide with the checkpoint of the fold that tested it: the run's own predictions."""
    run = {r["slide_id"]: r for r in read_manifest(tmp_path / "run" / "predictions.csv")}
    (tmp_path / "run").rename(tmp_path / "moved")  # checkpoints are found again under RUN/fold_k/checkpoints
    args = ["predict", "--run", str(tmp_path / "moved"), "--features", str(tmp_path / "f"), "--out"]
    assert main([*args, str(tmp_path / "oof")]) == 0
    rows = read_manifest(tmp_path / "oof" / "predictions.csv")
    assert sorted(r["slide_id"] for r in rows) == sorted(run)
    for row in rows:
        expected = run[row["slide_id"]]
        assert f"fold_{expected['fold']}" in row["checkpoint"] and row["prediction"] == expected["prediction"]
        assert abs(float(row["prob_tumor"]) - float(expected["prob_tumor"])) < 1e-5
    assert main([*args, str(tmp_path / "one"), "--slide-ids", "s3"]) == 0
    assert [r["slide_id"] for r in read_manifest(tmp_path / "one" / "predictions.csv")] == ["s3"]
    capsys.readouterr()
    assert main([*args, str(tmp_path / "x"), "--slide-ids", "s3", "s99"]) == 2
    err = capsys.readouterr().err
    assert "--slide-ids: 1 slide(s) not in --run" in err and err.strip().endswith(
        "s99; check the ids or run the earlier stage"
    )
    checkpoint = ["--checkpoint", str(tmp_path / "moved" / "fold_0" / "checkpoints" / "last.ckpt")]
    assert main([*args, str(tmp_path / "x"), *checkpoint]) == 2
    assert "not both or neither" in capsys.readouterr().err
    assert main(["predict", "--run", str(tmp_path / "f"), "--features", str(tmp_path / "f"), "--out", "o"]) == 2
    assert "has no predictions.csv" in capsys.readouterr().err


def test_train_print_config_and_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit):  # --print_config prints every default and exits
        main(["train", "--samples", "s.csv", "--features", "f", "--out", "o", "--print_config"])
    assert "aem_anneal: none" in capsys.readouterr().out
    assert main(["train", "--samples", str(tmp_path / "none.csv"), "--features", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err
    assert main(["train", "--samples", "s.csv", "--features", "f", "--out", "o", "--n_folds", "two"]) == 2
    assert main(["predict", "--checkpoint", str(tmp_path / "x.ckpt"), "--features", str(tmp_path), "--out", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pathattn predict: error: --checkpoint not found")


def _files(run):
    """The files of a run folder (TensorBoard event files, named by time and process, as one name)."""
    return sorted(str(p.relative_to(run)).split("events.out")[0] for p in run.rglob("*") if p.is_file())


@pytest.mark.slow
def test_train_ddp_on_two_cpu_processes_writes_what_one_process_writes(tmp_path, monkeypatch):
    """`--strategy ddp --devices 2`: Lightning re-runs the command in a second process (gloo); rank 0 alone writes.

    Each fold holds out 2 validation slides, one per class, so each process validates one slide of one class:
    ``val/auroc`` is logged only because the outputs of both processes are gathered.
    """
    cohort(tmp_path, n_patients=8)
    args = ["train", "--samples", "samples.csv", "--features", "f", "--n_folds", "2", "--val_fraction", "0.5",
            "--max_epochs", "2", "--n_boot", "10", "--accelerator", "cpu"]  # fmt: skip
    command = [sys.executable, "-m", "pathattn.cli.main", *args, "--out", "ddp", "--strategy", "ddp", "--devices", "2"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Starting with 2 processes" in done.stderr + done.stdout and done.stderr.count("train: abmil, 2 folds") == 1
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--out", "one"]) == 0
    one, ddp = tmp_path / "one", tmp_path / "ddp"
    assert _files(ddp) == _files(one)
    assert json.loads((ddp / "splits.json").read_text()) == json.loads((one / "splits.json").read_text())
    rows = {name: read_manifest(run / "predictions.csv") for name, run in (("one", one), ("ddp", ddp))}
    assert list(rows["ddp"][0]) == list(rows["one"][0])
    assert [(r["slide_id"], r["fold"]) for r in rows["ddp"]] == [(r["slide_id"], r["fold"]) for r in rows["one"]]
    metrics = {name: json.loads((run / "metrics.json").read_text()) for name, run in (("one", one), ("ddp", ddp))}
    assert metrics["ddp"].keys() == metrics["one"].keys() and metrics["ddp"]["config"]["strategy"] == "ddp"
    assert [f.keys() for f in metrics["ddp"]["folds"]] == [f.keys() for f in metrics["one"]["folds"]]
    for fold in ("fold_0", "fold_1"):
        with open(next((ddp / fold / "logs").rglob("metrics.csv"))) as f:
            validated = [row for row in csv.DictReader(f) if row["val/loss"]]
        assert len(validated) == 2 and all(row["val/auroc"] for row in validated)
