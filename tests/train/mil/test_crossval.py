"""Cross-validated training on small synthetic bags: outputs, learning, reuse of splits, bad input."""

import csv
import json

import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.bags import write_clam_pt
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.crossval import train_cv
from pathattn.train.splits import load_splits


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
        (lambda t: t, {"task": "survival", "survival_loss": "cox"}, "--batch-size"),
        (lambda t: t, {"monitor": "c_index"}, "--monitor c_index does not fit"),
    ],
)
def test_bad_input(tmp_path, edit, kwargs, needle):
    cfg = config(tmp_path, max_epochs=1, **kwargs)
    cfg.samples.write_text(edit(cfg.samples.read_text()))
    with pytest.raises(PathattnError, match=needle):
        train_cv(cfg)


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
