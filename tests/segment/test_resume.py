"""``pathattn segment fit --resume``: a fit interrupted in its second epoch continues from its ``last.ckpt``.

The tiny run of the tests (:data:`tests.conftest.TINY_SEGMENTATION`, 2 epochs) is interrupted as Ctrl-C would when
epoch 1 starts: the command exits 130, and its staging folder keeps the options, the splits and ``last.ckpt`` of
epoch 0. Resuming with another option is refused in one line, the interrupted run kept; resuming with the same options
trains epoch 1 only and publishes the run.
"""

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import LambdaCallback

from pathattn.cli.main import main
from pathattn.segment import fit


@pytest.fixture
def interrupt_epoch_1(monkeypatch: pytest.MonkeyPatch):
    """Make the next ``segment fit`` raise Ctrl-C when epoch 1 starts, once (the SIGINT handler restored after)."""
    done: list[bool] = []

    def interrupt(trainer, module) -> None:  # noqa: ANN001 - Lightning's hook arguments
        if trainer.current_epoch == 1 and not done:
            done.append(True)
            raise KeyboardInterrupt

    def build(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - as build_trainer
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.append(LambdaCallback(on_train_epoch_start=interrupt))
        return trainer

    build_trainer, handler = fit.build_trainer, signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(fit, "build_trainer", build)
    yield
    signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C once it has handled one


def trained_epochs(folder: Path) -> list[list[int]]:
    """The epochs each ``logs/version_*`` of a fold's fit trained (one version per start or resumption)."""
    versions = sorted((folder / "logs").glob("version_*"))
    epochs = []
    for version in versions:
        with (version / "metrics.csv").open() as f:
            epochs.append(sorted({int(r["epoch"]) for r in csv.DictReader(f) if r["train/loss"]}))
    return epochs


def test_an_interrupted_fit_resumes_with_the_same_options_only(
    segmentation_cohort: Path, segmentation_options: list[str], tmp_path: Path, interrupt_epoch_1, capsys
) -> None:
    out, staging = tmp_path / "run", tmp_path / ".run.partial"
    args = ["segment", "fit", "--samples", str(segmentation_cohort / "samples.csv"), "--out", str(out),
            "--max-epochs", "2", *segmentation_options]  # fmt: skip
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err and not out.exists()
    assert {p.name for p in staging.iterdir()} == {"config.json", "splits.json", "fold_0"}
    last = staging / "fold_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 0

    assert main([*args, "--resume", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"pathattn segment: error: --resume: the interrupted run in {staging} was started with other --lr; "
                   "pass the same options, or drop --resume to start the run again")  # fmt: skip
    assert last.is_file() and not out.exists()  # the interrupted run is kept
    saved = (staging / "splits.json").read_text()
    document = json.loads(saved)
    document["folds"][0]["train"] = document["folds"][0]["train"][::-1]
    document["seed"] += 1
    (staging / "splits.json").write_text(json.dumps(document))  # as if the sheet had split otherwise
    assert main([*args, "--resume"]) == 2
    assert "split other volumes" in capsys.readouterr().err and last.is_file()
    (staging / "splits.json").write_text(saved)

    assert main([*args, "--resume", "--workers", "0"]) == 0  # workers may change
    assert not staging.exists()
    assert trained_epochs(out / "fold_0") == [[0], [1]]  # epoch 0 before the interruption, epoch 1 resumed
    assert torch.load(out / "fold_0" / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["resume"] == "True" and metrics["folds"][0]["cases"] > 0
