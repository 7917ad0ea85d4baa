"""A training configuration no run could use is refused when it is made, naming the option as it is typed."""

from pathlib import Path

import pytest

from pathattn.errors import PathattnError
from pathattn.train.mil.config import TrainConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_epochs": 0}, "--max-epochs must be at least 1; got 0"),
        ({"max_epochs": -3}, "--max-epochs must be at least 1; got -3"),
        ({"lr": 0.0}, "--lr must be a positive number"),
        ({"lr": -0.1}, "--lr must be a positive number"),
        ({"lr": float("nan")}, "--lr must be a positive number"),
        ({"n_boot": 0}, "--n-boot must be at least 1"),
        ({"n_boot": -5}, "--n-boot must be at least 1"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"n_folds": 1}, "--n-folds must be at least 2; got 1"),
        ({"val_fraction": 1.0}, "--val-fraction must be 0 (no validation set) or in (0, 0.5]; got 1.0"),
        ({"val_fraction": 0.7}, "--val-fraction must be 0 (no validation set) or in (0, 0.5]; got 0.7"),
        ({"val_fraction": -0.1}, "--val-fraction must be 0 (no validation set) or in (0, 0.5]"),
        ({"patience": -1}, "--patience must be 0 or more"),
        ({"max_instances": 0}, "--max-instances must be at least 1, or null"),
        ({"weight_decay": -1e-5}, "--weight-decay must be 0 or a positive number"),
        ({"n_bins": 0}, "--n-bins must be at least 1"),
        ({"aem_lambda": -0.1}, "--aem-lambda must be 0 (off) or a positive number"),
        ({"monitor": "c_index"}, "--monitor c_index does not fit --task classification; use loss or auroc"),
        ({"task": "survival", "survival_loss": "cox"}, "--survival-loss cox needs several bags per step"),
        ({"model_args": {"in_dim": 3}}, "--model-args sets in_dim, which the data sets; remove it"),
        ({"log_every_n_steps": 0}, "--log-every-n-steps must be at least 1 (every step), e.g. 50; got 0"),
        ({"threads": 0}, "--threads must be at least 1, or null (torch's default); got 0"),
    ],
)
def test_bad_values_are_refused_naming_the_option(kwargs, message):
    with pytest.raises(PathattnError) as error:
        TrainConfig(Path("s.csv"), Path("f"), Path("o"), **kwargs)
    assert str(error.value).startswith(message)


def test_the_edges_of_each_range_are_allowed():
    cfg = TrainConfig(Path("s.csv"), Path("f"), Path("o"), n_folds=2, val_fraction=0.0, max_epochs=1, patience=0,
                      max_instances=1, weight_decay=0.0, n_bins=1, aem_lambda=0.0, n_boot=1, lr=1e-9,
                      log_every_n_steps=1, threads=1)  # fmt: skip
    assert cfg.trainer_settings.max_epochs == 1 and cfg.trainer_settings.log_every_n_steps == 1
