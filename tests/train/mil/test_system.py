"""MILSystem under DDP: validation metrics are those of the whole validation set, whichever process saw a bag."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pathattn.fitting.config import TrainerSettings
from pathattn.fitting.trainer import build_trainer
from pathattn.io.bags import write_clam_pt
from pathattn.registry import create_model
from pathattn.train.mil.data import BagDataset, Sample, collate_bags
from pathattn.train.mil.system import MILSystem


@pytest.mark.slow
def test_validation_metrics_over_two_processes_equal_one_process(tmp_path):
    """Five bags on two processes: Lightning's sampler gives each process three (one bag twice)."""
    rng = np.random.default_rng(0)
    samples = [Sample(f"s{i}", f"p{i}", label=label) for i, label in enumerate([0, 1, 0, 1, 1])]
    paths = {s.slide_id: tmp_path / f"{s.slide_id}.pt" for s in samples}
    for path in paths.values():
        write_clam_pt(path, rng.normal(size=(int(rng.integers(3, 9)), 4)).astype(np.float32))
    loader = DataLoader(BagDataset(samples, paths, 4), batch_size=1, collate_fn=collate_bags)
    torch.manual_seed(0)
    system = MILSystem(create_model("abmil", in_dim=4, n_classes=2))
    settings = TrainerSettings(accelerator="cpu")
    (one,) = build_trainer(settings, tmp_path / "one", validate=True).validate(system, loader, verbose=False)
    two_processes = TrainerSettings(accelerator="cpu", devices=2, strategy="ddp_spawn")
    (two,) = build_trainer(two_processes, tmp_path / "two", validate=True).validate(system, loader, verbose=False)
    metrics = ("val/auroc", "val/auprc", "val/accuracy", "val/balanced_accuracy", "val/macro_f1")
    assert {name: two[name] for name in metrics} == pytest.approx({name: one[name] for name in metrics})
