"""Cross-validated training on small synthetic bags: outputs, learning, reuse of splits, bad input."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.fitting.splits import load_splits
from pathattn.io.bags import write_clam_pt
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.crossval import train_cv


def cohort(tmp_path, n_patients=24, dim=8, seed=0):
    """Bags of 10-30 instances (.pt, no coordinates); positive bags hold 3 instances shifted along features 0-1."""
    rng = np.random.default_rng(seed)
    rows = ["slide_id,patient_id,label,time,event"]
    for p in range(n_patients):
        label = p % 2
        time = rng.uniform(5, 20) if label else rng.uniform(30, 60)
        event = int(rng.random() < 0.7)
        for s in range(1 + (p % 3 == 0)):  # some patients have two slides
            slide = f"s{p:02d}_{s}"
            bag = rng.normal(size=(rng.integers(10, 30), dim)).astype(np.float32)
            if label:
                bag[:3, :2] += 5.0
            write_clam_pt(tmp_path / "features" / "pt_files" / f"{slide}.pt", bag)
            rows.append(f"{slide},p{p:02d},{'tumor' if label else 'normal'},{time:.1f},{event}")
    (tmp_path / "samples.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "samples.csv", tmp_path / "features"


def config(tmp_path, out="run", **kwargs):
    samples, features = cohort(tmp_path)
    base = dict(n_folds=3, max_epochs=15, lr=5e-3, val_fraction=0.25, n_boot=50, accelerator="cpu")
    return TrainConfig(samples, features, tmp_path / out, **(base | kwargs))


def test_classification_run_learns_and_writes_everything(tmp_path):
    cfg = config(tmp_path)
    result = train_cv(cfg)
    assert result["classes"] == ["normal", "tumor"] and len(result["folds"]) == 3
    assert result["summary"]["auroc"]["mean"] >= 0.9
    with open(cfg.out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len({r["slide_id"] for r in rows}) == 32  # every slide once, out of fold
    assert {r["fold"] for r in rows} == {"0", "1", "2"}
    splits = load_splits(cfg.out / "splits.json")
    for fold, k in zip(splits.folds, range(3), strict=True):
        assert {r["slide_id"] for r in rows if r["fold"] == str(k)} == set(fold.test)
    metrics = json.loads((cfg.out / "metrics.json").read_text())
    assert {"auroc", "auroc_ci_low", "auroc_ci_high", "macro_f1", "balanced_accuracy"} <= set(metrics["folds"][0])
    assert (cfg.out / "fold_0" / "checkpoints" / "last.ckpt").exists()
    assert list((cfg.out / "fold_0" / "logs").rglob("metrics.csv"))
    assert list((cfg.out / "fold_0" / "tensorboard").rglob("events.out.tfevents.*"))


def test_reused_splits_and_other_models(tmp_path):
    first = train_cv(config(tmp_path, max_epochs=1))
    reuse = tmp_path / "run" / "splits.json"
    cfg = config(tmp_path, "run2", max_epochs=1, model="acmil", splits=reuse, aem_lambda=0.1, aem_anneal="cosine")
    second = train_cv(cfg)
    assert (
        json.loads((tmp_path / "run2" / "splits.json").read_text())["folds"]
        == json.loads((tmp_path / "run" / "splits.json").read_text())["folds"]
    )
    assert len(second["folds"]) == len(first["folds"])
    assert train_cv(config(tmp_path, max_epochs=1, model="clam_sb", out="run3"))["model"] == "clam_sb"


def test_survival_run(tmp_path):
    cfg = config(tmp_path, task="survival", monitor="c_index", n_bins=2)
    result = train_cv(cfg)
    assert 0 <= result["summary"]["c_index"]["mean"] <= 1
    header = (cfg.out / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("slide_id,patient_id,fold,time,event,risk")


@pytest.mark.parametrize(
    ("edit", "kwargs", "needle"),
    [
        (lambda t: t.replace(",tumor,", ",normal,"), {}, "only one class"),
        (lambda t: t.replace("s00_1,p00,normal", "s00_1,p00,tumor"), {}, "p00"),
        (lambda t: t + "ghost,p99,tumor,3,1\n", {}, "no feature file .*ghost"),
        (lambda t: t, {"model_args": {"foo": 1}}, r"--model-args \{'foo': 1\} do not fit --model abmil \(.*'foo'"),
        (lambda t: t, {"model_args": {"embed_dim": "big"}}, "--model-args .* do not fit --model abmil"),
        (lambda t: t, {"model_args": {"dropout": 2.0}}, "--model-args .* do not fit --model abmil"),
        (lambda t: t, {"model": "resnet18"}, "--model resnet18 is not a MIL model; choose one of abmil, "),
        (lambda t: t, {"model": "abmli"}, "--model abmli is not a MIL model"),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, edit, kwargs, needle):
    cfg = config(tmp_path, max_epochs=1, **kwargs)
    cfg.samples.write_text(edit(cfg.samples.read_text()))
    with pytest.raises(PathattnError, match=needle) as error:
        train_cv(cfg)
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "samples.csv"]


def test_slides_without_patches_or_features_are_left_out_warned_and_listed(tmp_path, capsys):
    samples, features = cohort(tmp_path)
    for slide in ("empty_a", "empty_b"):
        write_clam_pt(features / "pt_files" / f"{slide}.pt", np.zeros((0, 8), np.float32))
    rows = "empty_a,p90,tumor,3,1\nempty_b,p91,normal,3,1\nghost,p92,tumor,3,1\n"
    samples.write_text(samples.read_text() + rows)
    cfg = TrainConfig(samples, features, tmp_path / "run", n_folds=3, max_epochs=1, n_boot=5, accelerator="cpu",
                      skip_missing=True)  # fmt: skip
    result = train_cv(cfg)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train: warning:")]
    assert warnings == [
        "train: warning: 1 slide(s) left out of training and metrics, no feature file (--skip-missing): ghost "
        '(listed in metrics.json under "excluded")',
        "train: warning: 2 slide(s) left out of training and metrics, no patches (its feature file holds no "
        'instance): empty_a, empty_b (listed in metrics.json under "excluded")',
    ]
    excluded = json.loads((cfg.out / "metrics.json").read_text())["excluded"]
    assert (
        excluded
        == result["excluded"]
        == [
            {"slide_id": "ghost", "reason": "no feature file (--skip-missing)"},
            {"slide_id": "empty_a", "reason": "no patches (its feature file holds no instance)"},
            {"slide_id": "empty_b", "reason": "no patches (its feature file holds no instance)"},
        ]
    )
    with open(cfg.out / "predictions.csv") as f:
        predicted = {r["slide_id"] for r in csv.DictReader(f)}
    assert len(predicted) == 32 and not predicted & {"empty_a", "empty_b", "ghost"}
    assert not set(load_splits(cfg.out / "splits.json").slide_patient) & {"empty_a", "empty_b", "ghost"}


def test_no_slide_with_patches_is_an_error(tmp_path):
    (tmp_path / "f" / "pt_files").mkdir(parents=True)
    write_clam_pt(tmp_path / "f" / "pt_files" / "a.pt", np.zeros((0, 4), np.float32))
    (tmp_path / "s.csv").write_text("slide_id,patient_id,label\na,p,1\n")
    with pytest.raises(PathattnError, match="every slide's feature file is empty"):
        train_cv(TrainConfig(tmp_path / "s.csv", tmp_path / "f", tmp_path / "run"))


def _snapshot(run):
    """Every file of a run folder with its bytes."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_a_second_run_is_refused_and_overwrite_replaces_the_run_whole(tmp_path):
    (tmp_path / "run").mkdir()  # an empty folder is used
    train_cv(config(tmp_path, max_epochs=1, n_boot=5))
    first = _snapshot(tmp_path / "run")
    assert "fold_2/checkpoints/best.ckpt" in first
    with pytest.raises(PathattnError) as error:
        train_cv(config(tmp_path, max_epochs=1, n_boot=5))
    assert str(error.value) == (
        f"--out {tmp_path / 'run'} already holds a run (or other files); pass --overwrite to replace it, "
        "or choose another --out"
    )
    assert _snapshot(tmp_path / "run") == first
    result = train_cv(config(tmp_path, max_epochs=1, n_boot=5, n_folds=2, overwrite=True))
    second = _snapshot(tmp_path / "run")
    assert len(result["folds"]) == 2 and not any(name.startswith("fold_2") for name in second)
    assert not [name for name in second if "-v1" in name]
    with open(tmp_path / "run" / "predictions.csv") as f:
        checkpoints = {r["checkpoint"] for r in csv.DictReader(f)}
    assert all(Path(c).is_file() and Path(c).parent.parent.parent == (tmp_path / "run").resolve() for c in checkpoints)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "run", "samples.csv"]


def test_a_run_that_fails_or_was_killed_leaves_the_old_run_intact(tmp_path, monkeypatch):
    from pathattn.train.mil import crossval

    train_cv(config(tmp_path, max_epochs=1, n_boot=5))
    first = _snapshot(tmp_path / "run")

    def fail(*args, **kwargs):
        raise RuntimeError("the machine went away")

    with monkeypatch.context() as patch:
        patch.setattr(crossval, "_predict", fail)
        with pytest.raises(RuntimeError):
            train_cv(config(tmp_path, max_epochs=1, n_boot=5, overwrite=True))
    assert _snapshot(tmp_path / "run") == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "run", "samples.csv"]
    killed = tmp_path / ".run.partial"  # what a killed run leaves
    (killed / "fold_0").mkdir(parents=True)
    (killed / "fold_0" / "stale.ckpt").write_text("x")
    train_cv(config(tmp_path, max_epochs=1, n_boot=5, overwrite=True))
    assert not (tmp_path / "run" / "fold_0" / "stale.ckpt").exists() and not killed.exists()


@pytest.mark.parametrize("out", ["file", "file/run"])
def test_out_naming_a_file_is_refused(tmp_path, out):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PathattnError, match=f"--out .*{out}: .*file is a file; pass a folder for the run"):
        train_cv(config(tmp_path, out=out))


@pytest.mark.parametrize("norm", ["standardize", "none"])
def test_checkpoints_carry_the_training_folds_feature_statistics(tmp_path, norm):
    import torch

    from pathattn.io.bags import read_bag
    from pathattn.train.mil.system import MILSystem

    cfg = config(tmp_path, max_epochs=1, feature_norm=norm)
    train_cv(cfg)
    fold = load_splits(cfg.out / "splits.json").folds[0]
    system = MILSystem.load(cfg.out / "fold_0" / "checkpoints" / "last.ckpt")
    pooled = np.concatenate([read_bag(cfg.features / "pt_files" / f"{s}.pt").features for s in fold.train])
    x = torch.randn(1, 5, pooled.shape[1])
    if norm == "none":
        assert torch.equal(system.normalize(x), x)
        return
    np.testing.assert_allclose(system.feature_mean.numpy(), pooled.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(system.feature_std.numpy(), pooled.std(0), rtol=1e-4)
    expected = (x - torch.from_numpy(pooled.mean(0))) / torch.from_numpy(pooled.std(0))
    torch.testing.assert_close(system.normalize(x), expected, rtol=1e-4, atol=1e-5)


def test_logging_every_few_steps_changes_the_logs_and_nothing_else(tmp_path):
    def losses_logged(run):
        with open(next((run / "fold_0" / "logs").rglob("metrics.csv"))) as f:
            return [row["step"] for row in csv.DictReader(f) if row.get("train/loss")]

    every, sparse = (
        config(tmp_path, out=out, max_epochs=2, val_fraction=0.0, threads=1) for out in ("every", "sparse")
    )
    train_cv(every)
    train_cv(replace(sparse, log_every_n_steps=7))
    assert (every.out / "predictions.csv").read_text().replace("/every/", "/sparse/") == (
        sparse.out / "predictions.csv"
    ).read_text()
    steps = losses_logged(every.out)
    assert losses_logged(sparse.out) == [s for s in steps if (int(s) + 1) % 7 == 0] and len(steps) > 7
