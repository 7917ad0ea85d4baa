"""Weights files: every checkpoint layout reads back, and a mismatch names the keys."""

from __future__ import annotations

import argparse
import hashlib

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from pathattn.errors import PathattnError
from pathattn.io.weights import describe_mismatch, load_state_dict_strict, read_state_dict, sha256_file


def _net(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.BatchNorm2d(width), nn.Flatten(), nn.LazyLinear(2))


@pytest.fixture
def state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4), "bn.running_mean": torch.zeros(4)}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sha256_streams_the_file(tmp_path):
    file = tmp_path / "w.bin"
    file.write_bytes(b"x" * 3_000_001)
    assert sha256_file(file, chunk_size=1000) == hashlib.sha256(b"x" * 3_000_001).hexdigest()


@pytest.mark.parametrize(
    ("suffix", "wrap"),
    [
        (".pth", lambda sd: sd),
        (".pt", lambda sd: {"state_dict": sd, "epoch": 3}),
        (".pth", lambda sd: {"model": sd, "optimizer": {"lr": torch.tensor(0.1)}}),
        (".ckpt", lambda sd: {"module": sd}),
        (".pth", lambda sd: {"teacher": sd, "student": {}}),
        (".pth", lambda sd: {"model": {"state_dict": sd}}),
        (".pth", lambda sd: {f"module.{k}": v for k, v in sd.items()}),
        (".bin", lambda sd: sd),
    ],
    ids=["raw", "state_dict", "model", "module", "teacher", "nested", "dataparallel", "bin"],
)
def test_torch_wrappers_unwrap(tmp_path, state, suffix, wrap):
    file = tmp_path / f"w{suffix}"
    torch.save(wrap(state), file)
    assert _same(read_state_dict(file), state)


def test_safetensors_reads(tmp_path, state):
    file = tmp_path / "w.safetensors"
    save_file({f"module.{k}": v for k, v in state.items()}, str(file))
    assert _same(read_state_dict(file), state)


def test_module_prefix_kept_unless_on_every_key(tmp_path, state):
    file = tmp_path / "w.pth"
    torch.save({"module.a": torch.ones(1), "b": torch.ones(1)}, file)
    assert set(read_state_dict(file)) == {"module.a", "b"}


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.pth", None, "not found"),
        ("w.npz", b"data", "unknown suffix '.npz'"),
        ("w.pth", b"not a checkpoint", "damaged or not a PyTorch checkpoint"),
        ("w.pt", b"", "(EOFError); the file is damaged"),
        ("w.safetensors", b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}", "not a safetensors file"),
    ],
)
def test_unreadable_files_fail_in_one_line(tmp_path, name, content, needle):
    file = tmp_path / name
    if content is not None:
        file.write_bytes(content)
    with pytest.raises(PathattnError, match="weights file") as error:
        read_state_dict(file)
    assert needle in str(error.value) and str(file) in str(error.value) and "\n" not in str(error.value)


def test_file_without_tensors_lists_its_keys(tmp_path):
    file = tmp_path / "w.pth"
    torch.save({"epoch": 3, "best": 0.5}, file)
    with pytest.raises(PathattnError, match=r"holds no state dict of tensors \(top-level keys: epoch, best\)"):
        read_state_dict(file)


def test_pickled_objects_are_refused_with_the_fix(tmp_path, state):
    file = tmp_path / "w.pth"
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1)}, file)
    with pytest.raises(
        PathattnError, match=r"Python object argparse.Namespace .* save only torch.save\(model.state_dict\(\), FILE\)"
    ):
        read_state_dict(file)


def test_strict_load_copies_values():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    load_state_dict_strict(target, source.state_dict(), "w.pth")
    assert torch.equal(source.weight, target.weight)


def test_mismatch_lists_missing_unexpected_and_shapes():
    model = nn.Sequential(nn.Linear(3, 12), nn.Linear(12, 2))
    found = {"0.weight": torch.zeros(10, 3), "0.bias": torch.zeros(12), "extra.weight": torch.zeros(1)}
    with pytest.raises(PathattnError) as error:
        load_state_dict_strict(model, found, "w.pth", target="encoder 'x'", fix="choose the matching --encoder")
    assert str(error.value) == (
        "weights file w.pth does not fit encoder 'x': 2 missing keys (1.weight, 1.bias), 1 unexpected key "
        "(extra.weight), 1 shape mismatch (0.weight: file (10, 3) vs model (12, 3)); choose the matching --encoder"
    )


def test_long_key_lists_are_truncated():
    expected = {f"k{i}": torch.zeros(1) for i in range(20)}
    assert describe_mismatch(expected, {}) == "20 missing keys (k0, k1, k2, k3, k4, k5, k6, k7, … and 12 more)"
    assert describe_mismatch(expected, dict(expected)) == ""


def test_ignored_prefixes_are_dropped_before_comparing():
    source = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    target = nn.Sequential(nn.Linear(3, 3))
    load_state_dict_strict(target, source.state_dict(), "w.pth", ignore_prefixes=("1.",))
    assert torch.equal(target[0].weight, source[0].weight)


def test_batchnorm_counter_may_be_missing():
    source, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    source.running_mean.fill_(2.0)
    old_style = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    load_state_dict_strict(target, old_style, "w.pth")
    assert torch.equal(target.running_mean, source.running_mean)
