"""A crafted checkpoint never runs its code: pickled objects are refused by every loader of the train stage."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.io.bags import write_clam_pt
from pathattn.train.mil.system import MILSystem


class _CreatesAFile:
    """Unpickling this creates ``path`` (what a hostile checkpoint would do, but harmless)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204 - the pickle protocol
        return (builtins.open, (self.path, "w"))


def _crafted(tmp_path, name: str):
    """A Lightning-like checkpoint whose ``state_dict`` unpickles to a call of ``open(marker, "w")``."""
    marker = tmp_path / f"{name}.created"
    path = tmp_path / f"{name}.ckpt"
    torch.save({"state_dict": _CreatesAFile(str(marker)), "hyper_parameters": {}}, path)
    return path, marker


def test_the_crafted_checkpoint_would_run_its_code_if_unpickled(tmp_path):
    path, marker = _crafted(tmp_path, "control")
    torch.load(path, weights_only=False)  # what MILSystem.load did before: the file is created
    assert marker.exists()


def test_milsystem_load_refuses_a_pickle_checkpoint_without_running_it(tmp_path):
    path, marker = _crafted(tmp_path, "evil")
    with pytest.raises(PathattnError) as error:
        MILSystem.load(path)
    message = str(error.value)
    assert message.startswith(f"cannot read weights file {path}: it holds the Python object ")
    assert "never unpickled for safety" in message
    assert "\n" not in message and not marker.exists()


def test_predict_refuses_a_pickle_checkpoint_without_running_it(tmp_path, capsys):
    path, marker = _crafted(tmp_path, "evil")
    write_clam_pt(tmp_path / "features" / "pt_files" / "s1.pt", np.ones((3, 4), np.float32))
    args = ["predict", "--checkpoint", str(path), "--features", str(tmp_path / "features"), "--out"]
    assert main([*args, str(tmp_path / "pred")]) != 0  # predict reports it per slide (exit 1) or as a whole (2)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("pathattn predict: error: ") and f"cannot read weights file {path}: " in last
    assert "never unpickled for safety" in last and not marker.exists()
