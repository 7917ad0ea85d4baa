"""Timing and memory helpers shared by the benchmark scripts (imported as ``timing`` beside them)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (timing boundaries)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def rate(work: Callable[[], object], items: int, steps: int, warmup: int, device: torch.device | str) -> float:
    """Items per second of ``work`` (``items`` per call) over ``steps`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        work()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        work()
    synchronize(device)
    return items * steps / (time.perf_counter() - start)


def saved_for_backward(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct tensors autograd saves for the backward pass of ``forward()`` (its training
    activations, measured the same way on any device)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta" and tensor.untyped_storage().nbytes():
            seen[(tensor.untyped_storage().data_ptr(), tensor.device.index or 0)] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(seen.values())
