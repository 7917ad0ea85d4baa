"""The shared Trainer: checkpoints, early stopping and loggers by whether there is a validation set; bad options;
an interrupted fit resumed from ``last.ckpt``."""

import os
import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from pathattn.errors import PathattnError
from pathattn.fitting.config import TrainerSettings
from pathattn.fitting.trainer import LastEpoch, build_trainer, fit, is_global_zero


def _callbacks(trainer: L.Trainer, kind: type) -> list:
    return [c for c in trainer.callbacks if isinstance(c, kind)]


@pytest.mark.parametrize("validate", [True, False])
def test_checkpoints_early_stopping_and_logs(tmp_path, validate):
    settings = TrainerSettings(max_epochs=3, accelerator="cpu", patience=2, monitor="val/auroc", monitor_mode="max")
    trainer = build_trainer(settings, tmp_path, validate=validate)
    (checkpoint,) = _callbacks(trainer, ModelCheckpoint)
    assert checkpoint.dirpath == str(tmp_path / "checkpoints") and checkpoint.filename == "best"
    assert checkpoint.monitor == ("val/auroc" if validate else None) and checkpoint.save_last is not validate
    last = [c.path for c in _callbacks(trainer, LastEpoch)]
    assert last == ([tmp_path / "checkpoints" / "last.ckpt"] if validate else [])
    stopping = _callbacks(trainer, EarlyStopping)
    assert [(s.monitor, s.patience, s.mode) for s in stopping] == ([("val/auroc", 2, "max")] if validate else [])
    assert [type(logger) for logger in trainer.loggers] == [CSVLogger, TensorBoardLogger]
    assert all(logger.root_dir.startswith(str(tmp_path)) for logger in trainer.loggers)
    assert trainer.max_epochs == 3 and trainer.num_devices == 1 and trainer.precision == "32-true"
    assert is_global_zero()


def test_options_this_machine_lacks_are_user_errors(tmp_path):
    with pytest.raises(PathattnError, match=r"^--accelerator mps --devices 1 .*; choose options this machine has$"):
        build_trainer(TrainerSettings(accelerator="mps"), tmp_path, validate=True)


class Tiny(L.LightningModule):
    """A linear model that counts the checkpoints written of it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.saved_at: list[int] = []

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def on_save_checkpoint(self, checkpoint):
        self.saved_at.append(checkpoint["epoch"])


def test_without_validation_the_checkpoints_are_written_once_after_the_last_epoch(tmp_path):
    settings = TrainerSettings(max_epochs=3, accelerator="cpu", log_every_n_steps=2)
    trainer = build_trainer(settings, tmp_path, validate=False)
    assert trainer.log_every_n_steps == 2
    module = Tiny()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    trainer.fit(module, data)
    assert module.saved_at == [2, 2]  # best.ckpt and last.ckpt, both of the last epoch
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


class Peaked(Tiny):
    """Tiny with a validation score that is best at epoch 1 and worse after."""

    def validation_step(self, batch, batch_idx):
        self.log("val/auroc", 1.0 - abs(self.current_epoch - 1) / 10)


def test_with_validation_last_ckpt_is_the_last_epoch_not_a_copy_of_the_best(tmp_path):
    settings = TrainerSettings(max_epochs=4, accelerator="cpu", patience=10, monitor="val/auroc", monitor_mode="max")
    trainer = build_trainer(settings, tmp_path, validate=True)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    module = Peaked()
    trainer.fit(module, data, data)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert module.saved_at == [0, 0, 1, 1, 2, 3]  # best.ckpt at epochs 0 and 1; last.ckpt after every epoch
    weights = {name: torch.load(folder / name, weights_only=False)["state_dict"] for name in ("best.ckpt", "last.ckpt")}
    assert not torch.equal(weights["best.ckpt"]["layer.weight"], weights["last.ckpt"]["layer.weight"])
    assert torch.equal(weights["last.ckpt"]["layer.weight"], module.layer.weight.detach())
    assert trainer.checkpoint_callback.best_model_path == str(folder / "best.ckpt")


class Interrupt(L.Callback):
    """Interrupt the fit when epoch ``at`` starts, as Ctrl-C or a scheduler's SIGTERM would."""

    def __init__(self, at: int, how: str) -> None:
        self.at, self.how = at, how

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at:
            if self.how == "ctrl-c":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler stops the fit at the next batch


class Counted(Peaked):
    """Peaked that records the epochs it trains."""

    def __init__(self) -> None:
        super().__init__()
        self.trained: list[int] = []

    def on_train_epoch_start(self):
        self.trained.append(self.current_epoch)


@pytest.fixture
def restore_sigint():
    """Lightning ignores Ctrl-C once it has handled one; give the test session its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def _fit(folder, max_epochs: int, patience: int = 10, interrupt: Interrupt | None = None, resume=None) -> tuple:
    settings = TrainerSettings(max_epochs=max_epochs, accelerator="cpu", patience=patience, monitor="val/auroc",
                               monitor_mode="max")  # fmt: skip
    trainer = build_trainer(settings, folder, validate=True)
    if interrupt is not None:
        trainer.callbacks.append(interrupt)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    module = Counted()
    torch.manual_seed(0)
    module.layer.reset_parameters()
    fit(trainer, module, data, data, resume=resume)
    assert trainer.checkpoint_callback.best_model_path == str(folder / "checkpoints" / "best.ckpt")
    return module, trainer.checkpoint_callback.best_model_score


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_fit_resumes_from_last_ckpt_where_it_stopped(tmp_path, how, restore_sigint):
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path / "run", 4, interrupt=Interrupt(2, how))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # the last finished epoch
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.ckpt", "last.ckpt"]  # nothing half-written
    resumed, resumed_best = _fit(tmp_path / "run", 4, resume=last)
    assert resumed.trained == [2, 3]
    whole, whole_best = _fit(tmp_path / "whole", 4)
    assert whole.trained == [0, 1, 2, 3]
    assert torch.equal(resumed.layer.weight, whole.layer.weight)  # optimiser and weights carried over
    assert resumed_best == whole_best == 1.0  # the best score of epoch 1 survived the interruption
    best = {f: torch.load(tmp_path / f / "checkpoints" / "best.ckpt", weights_only=False) for f in ("run", "whole")}
    assert best["run"]["epoch"] == best["whole"]["epoch"] == 1


def test_a_fit_that_stopped_early_trains_no_further_when_resumed(tmp_path):
    stopped, _ = _fit(tmp_path, 10, patience=1)
    assert stopped.trained == [0, 1, 2]  # best at epoch 1, one worse epoch
    resumed, _ = _fit(tmp_path, 10, patience=1, resume=tmp_path / "checkpoints" / "last.ckpt")
    assert resumed.trained == []
    assert torch.equal(resumed.layer.weight, stopped.layer.weight)
