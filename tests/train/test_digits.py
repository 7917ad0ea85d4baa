"""A learning check on digit bags: ABMIL finds the bags that hold a 9, and its attention points at the 9s.

Bags are built from scikit-learn's bundled 8x8 digits (64 features scaled to [0, 1], no download), in the
spirit of Ilse et al.'s MNIST bags: a bag is positive when it holds at least one 9. They are written as
CLAM ``.pt`` files, features only, so the check also covers bags without coordinates.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from pathattn.io.bags import write_clam_pt
from pathattn.train.mil.config import TrainConfig
from pathattn.train.mil.crossval import train_cv
from pathattn.train.mil.system import MILSystem

TARGET = 9
SEED = 0
N_BAGS = 200
BAG_SIZES = (10, 20)  # inclusive range of instances per bag
TARGETS_PER_POSITIVE = (1, 3)  # inclusive range of 9s in a positive bag


@dataclass(frozen=True)
class DigitBags:
    """A cohort of digit bags on disk.

    Args:
        samples: the sample sheet (slide_id, patient_id = slide_id, label).
        features: the feature folder (``pt_files/{slide_id}.pt``).
        is_target: slide id → (N,) bool, True where the instance is a 9.
    """

    samples: Path
    features: Path
    is_target: dict[str, np.ndarray]


def make_bag(rng: np.random.Generator, targets: np.ndarray, others: np.ndarray, positive: bool) -> np.ndarray:
    """Indices into the digits of one bag, shuffled: some 9s when ``positive``, the rest other digits.

    Args:
        rng: the random generator.
        targets: indices of the 9s.
        others: indices of every other digit.
        positive: whether the bag holds 9s.

    Returns:
        (N,) digit indices, N in ``BAG_SIZES``.
    """
    size = int(rng.integers(BAG_SIZES[0], BAG_SIZES[1] + 1))
    n_targets = int(rng.integers(TARGETS_PER_POSITIVE[0], TARGETS_PER_POSITIVE[1] + 1)) if positive else 0
    chosen = np.concatenate([rng.choice(targets, n_targets), rng.choice(others, size - n_targets)])
    return rng.permutation(chosen)


def write_digit_bags(folder: Path, n_bags: int = N_BAGS, seed: int = SEED) -> DigitBags:
    """Write ``n_bags`` digit bags (half of them positive) and their sample sheet under ``folder``.

    Args:
        folder: where ``samples.csv`` and ``features/pt_files/`` go.
        n_bags: number of bags (= patients).
        seed: seed of the bag contents.

    Returns:
        The cohort, with the instance labels kept in memory.
    """
    digits = load_digits()
    features = (digits.data / 16.0).astype(np.float32)
    targets, others = np.flatnonzero(digits.target == TARGET), np.flatnonzero(digits.target != TARGET)
    rng = np.random.default_rng(seed)
    rows, is_target = [], {}
    for i in range(n_bags):
        slide, positive = f"bag{i:03d}", i % 2 == 1
        indices = make_bag(rng, targets, others, positive)
        write_clam_pt(folder / "features" / "pt_files" / f"{slide}.pt", features[indices])
        is_target[slide] = digits.target[indices] == TARGET
        rows.append({"slide_id": slide, "patient_id": slide, "label": "positive" if positive else "negative"})
    with open(folder / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["slide_id", "patient_id", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return DigitBags(folder / "samples.csv", folder / "features", is_target)


def digit_config(cohort: DigitBags, out: Path, seed: int = SEED) -> TrainConfig:
    """Settings under which ABMIL learns the digit bags reliably in a few seconds per fold on a CPU."""
    return TrainConfig(
        cohort.samples, cohort.features, out, model="abmil",
        model_args={"embed_dim": 128, "attn_dim": 64, "dropout": 0.1, "attention_dropout": 0.0},
        n_folds=3, val_fraction=0.2, seed=seed, max_epochs=40, patience=10, batch_size=4, lr=3e-3,
        weight_decay=1e-4, n_boot=50, accelerator="cpu",
    )  # fmt: skip


@torch.inference_mode()
def attention_auroc(checkpoint: str | Path, cohort: DigitBags, slides: list[str]) -> float:
    """Instance-level AUROC of the raw attention for "is a 9", pooled over ``slides``.

    Args:
        checkpoint: a fold's checkpoint.
        cohort: the digit bags.
        slides: held-out bags of that fold (each should hold a 9).

    Returns:
        The AUROC of the raw (pre-softmax) attention logits against the instance labels.
    """
    system = MILSystem.load(checkpoint).eval()
    scores, labels = [], []
    for slide in slides:
        features = torch.load(cohort.features / "pt_files" / f"{slide}.pt", weights_only=True)
        scores.append(system(features[None]).attention[0, :, 0].numpy())
        labels.append(cohort.is_target[slide])
    return float(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))


def held_out_positives(run: Path) -> dict[int, list[str]]:
    """Fold → its test bags that are positive, from the run's out-of-fold predictions."""
    with open(run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    folds = sorted({int(r["fold"]) for r in rows})
    return {k: [r["slide_id"] for r in rows if int(r["fold"]) == k and r["label"] == "positive"] for k in folds}


def best_checkpoint(run: Path, fold: int) -> Path:
    """The checkpoint selected on the validation loss of ``fold``."""
    return run / f"fold_{fold}" / "checkpoints" / "best.ckpt"


def test_abmil_learns_digit_bags_and_attends_to_the_nines(tmp_path: Path) -> None:
    cohort = write_digit_bags(tmp_path)
    cfg = digit_config(cohort, tmp_path / "run")
    result = train_cv(cfg)
    assert result["classes"] == ["negative", "positive"]  # AUROC is of the second class
    auroc = result["summary"]["auroc"]["mean"]
    assert auroc >= 0.9, f"out-of-fold AUROC {auroc:.3f} < 0.9: {json.dumps(result['folds'])}"
    for fold, slides in held_out_positives(cfg.out).items():
        assert best_checkpoint(cfg.out, fold).exists()
        instance_auroc = attention_auroc(best_checkpoint(cfg.out, fold), cohort, slides)
        assert instance_auroc >= 0.8, f"fold {fold}: attention AUROC for 9s {instance_auroc:.3f} < 0.8"
