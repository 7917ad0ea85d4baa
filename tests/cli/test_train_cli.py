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
            "--out", str(tmp_path / "run"), "--n-folds", "3", "--val-fraction", "0.34", "--max-epochs", "12",
            "--lr", "0.005", "--n-boot", "20", "--accelerator", "cpu"]  # fmt: skip
    assert main(args) == 0
    assert "auroc" in capsys.readouterr().err
    assert main(args) == 2  # a second run into the same --out
    assert capsys.readouterr().err.strip() == (
        f"pathattn train: error: --out {tmp_path / 'run'} already holds a run (or other files); pass --overwrite "
        "to replace it, or choose another --out"
    )
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
    with pytest.raises(SystemExit):  # --print-config prints every default and exits
        main(["train", "--samples", "s.csv", "--features", "f", "--out", "o", "--print-config"])
    assert "aem_anneal: none" in capsys.readouterr().out
    assert main(["train", "--samples", str(tmp_path / "none.csv"), "--features", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2  # fmt: skip
    assert "not found" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(tmp_path / "x.ckpt"), "--features", str(tmp_path), "--out", "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pathattn predict: error: --checkpoint not found")


def test_dashed_options_bare_flags_and_yaml_keys(capsys):
    """YAML keys are the option names with ``_`` for ``-``; boolean options are bare flags, ``--no-NAME`` off."""
    data = str(ROOT / "configs" / "data" / "small_cohort.yaml")
    args = ["train", "--samples", "s.csv", "--features", "f", "--out", "o", "--config", data, "--max-epochs", "3",
            "--skip-missing", "--no-deterministic", "--class-weighting", "--overwrite", "--model-args",
            '{"dropout": 0.1}', "--print-config"]  # fmt: skip
    with pytest.raises(SystemExit):
        main(args)
    printed = capsys.readouterr().out
    for line in ("val_fraction: 0.0", "max_epochs: 3", "skip_missing: true", "deterministic: false",
                 "class_weighting: true", "overwrite: true", "dropout: 0.1"):  # fmt: skip
        assert line in printed.splitlines() or f"  {line}" in printed.splitlines(), line


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-epochs", "-1"], "pathattn train: error: --max-epochs must be at least 1; got -1"),
        (["--max-epochs", "0"], "pathattn train: error: --max-epochs must be at least 1; got 0"),
        (["--lr", "0"], "pathattn train: error: --lr must be a positive number, e.g. 0.0001; got 0.0"),
        (["--lr", "-0.01"], "pathattn train: error: --lr must be a positive number, e.g. 0.0001; got -0.01"),
        (["--n-boot", "-3"], "pathattn train: error: --n-boot must be at least 1, e.g. 1000; got -3"),
        (["--batch-size", "0"], "pathattn train: error: --batch-size must be at least 1; got 0"),
        (["--n-folds", "1"], "pathattn train: error: --n-folds must be at least 2; got 1"),
        (["--val-fraction", "1"], "pathattn train: error: --val-fraction must be 0 (no validation set) or in (0, 0.5]"),
        (["--n-folds", "two"], "pathattn train: error: --n-folds expects integer, not 'two'"),
        (["--task", "regression"], "pathattn train: error: --task expects one of classification, survival, not "
                                   "'regression' (see 'pathattn train --help')"),
        (["--model-args", "[1, 2]"], "pathattn train: error: --model-args expects mapping"),
        (["--n_folds", "2"], "pathattn train: error: unrecognized arguments: --n_folds 2 (options are written with "
                             "dashes: --n-folds)"),
        (["--model-args", '{"foo": 1}'], "pathattn train: error: --model-args {'foo': 1} do not fit --model abmil"),
        (["--model-args", '{"embed_dim": "big"}'], "pathattn train: error: --model-args {'embed_dim': 'big'} do not "
                                                   "fit --model abmil"),
        (["--model", "resnet18"], "pathattn train: error: --model resnet18 is not a MIL model"),
    ],
)  # fmt: skip
def test_bad_options_fail_before_any_fold_trains(tmp_path, capsys, options, message):
    cohort(tmp_path, n_patients=4)
    args = ["train", "--samples", str(tmp_path / "samples.csv"), "--features", str(tmp_path / "f"), "--out"]
    assert main([*args, str(tmp_path / "run"), "--accelerator", "cpu", *options]) == 2
    assert _one_error_line(capsys).startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "samples.csv"]  # no run, no staging folder


@pytest.mark.parametrize("out", ["file", "file/run"])
def test_out_naming_a_file(tmp_path, capsys, out):
    (tmp_path / "file").write_text("x")
    args = ["train", "--samples", "s.csv", "--features", "f", "--out", str(tmp_path / out)]
    assert main(args) == 2
    line = _one_error_line(capsys)
    assert (
        line
        == f"pathattn train: error: --out {tmp_path / out}: {tmp_path / 'file'} is a file; pass a folder for the run"
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionError(13, "Permission denied", "/data/x.h5"),
         "permission denied: /data/x.h5; give yourself access to it or choose another path"),
        (IsADirectoryError(21, "Is a directory", "/data/x.h5"), "/data/x.h5 is a folder where a file is needed"),
        (NotADirectoryError(20, "Not a directory", "/data/f/run"), "/data/f/run: part of this path is a file"),
        (FileExistsError(17, "File exists", "/data/run"), "/data/run already exists and is not a folder"),
        (OSError(28, "No space left on device", "/data/run/x"), "no space left on the device of /data/run/x"),
    ],
)  # fmt: skip
def test_unreadable_inputs_and_unwritable_outputs_name_the_path(capsys, monkeypatch, error, message):
    from pathattn.train.mil import crossval

    def fail(cfg):
        raise error

    monkeypatch.setattr(crossval, "train_cv", fail)
    assert main(["train", "--samples", "s.csv", "--features", "f", "--out", "o"]) == 2
    assert _one_error_line(capsys).startswith(f"pathattn train: error: {message}")


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "trainer.yaml"
    config.write_text("max_epochs: 3\nmodel_args: {dropout: 0.1\nlr: 0.001\n")
    assert main(["train", "--config", str(config), "--samples", "s.csv", "--features", "f", "--out", "o"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"pathattn train: error: --config {config}: not valid YAML at line 3, column ")
    assert "fix the file" in line


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
    args = ["train", "--samples", "samples.csv", "--features", "f", "--n-folds", "2", "--val-fraction", "0.5",
            "--max-epochs", "2", "--n-boot", "10", "--accelerator", "cpu"]  # fmt: skip
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
