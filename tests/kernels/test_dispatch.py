"""Kernel dispatch: PATHATTN_KERNELS picks the torch reference or the Triton kernel, never silently."""

import pytest
import torch

from pathattn.kernels.dispatch import KernelChoiceError, use_triton


def test_auto_runs_the_reference_on_cpu_tensors(monkeypatch):
    monkeypatch.delenv("PATHATTN_KERNELS", raising=False)
    assert not use_triton(torch.zeros(2), None)


def test_torch_choice_always_runs_the_reference(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "torch")
    assert not use_triton(torch.zeros(2))


def test_triton_choice_runs_the_interpreter_on_cpu(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert use_triton(torch.zeros(2))


def test_triton_choice_without_interpreter_or_gpu_is_an_error(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(KernelChoiceError, match="TRITON_INTERPRET=1"):
        use_triton(torch.zeros(2))


def test_unknown_choice_names_the_variable(monkeypatch):
    monkeypatch.setenv("PATHATTN_KERNELS", "cuda")
    with pytest.raises(KernelChoiceError, match="PATHATTN_KERNELS='cuda' is not one of auto, torch, triton"):
        use_triton(torch.zeros(2))
