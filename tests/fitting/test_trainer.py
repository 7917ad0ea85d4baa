"""The shared Trainer: checkpoints, early stopping and loggers by whether there is a validation set; bad options."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from pathattn.errors import PathattnError
from pathattn.fitting.config import TrainerSettings
from pathattn.fitting.trainer import LastEpoch, build_trainer, is_global_zero


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
    assert module.saved_at == [0, 1, 4]  # best.ckpt at epochs 0 and 1; last.ckpt once, after the 4 epochs
    weights = {name: torch.load(folder / name, weights_only=False)["state_dict"] for name in ("best.ckpt", "last.ckpt")}
    assert not torch.equal(weights["best.ckpt"]["layer.weight"], weights["last.ckpt"]["layer.weight"])
    assert torch.equal(weights["last.ckpt"]["layer.weight"], module.layer.weight.detach())
    assert trainer.checkpoint_callback.best_model_path == str(folder / "best.ckpt")
