"""The timing helper of the kernel benchmarks (imported as ``timing`` by the scripts beside it)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def measure(
    run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 3
) -> tuple[float, float | None]:
    """Median milliseconds of ``run`` after ``warmup`` calls, and its peak memory beyond what is held (MiB, CUDA).

    Args:
        run: one call of the timed work.
        device: where it runs (CUDA work is synchronised at every timing boundary).
        repeats: timed calls.
        warmup: untimed calls first (compilation, autotuning, caches).

    Returns:
        The median in milliseconds, and the peak allocation during the timed calls beyond what was allocated
        before them, in MiB (None off CUDA).
    """
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else lambda: None
    for _ in range(warmup):
        run()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    held = torch.cuda.memory_allocated(device) if cuda else 0
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    peak = (torch.cuda.max_memory_allocated(device) - held) / 2**20 if cuda else None
    return statistics.median(times), peak
