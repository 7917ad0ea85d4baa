"""Training throughput of a MIL model: bags/s and peak memory at bag sizes of 1k, 10k and 100k instances.

A full training step is what ``pathattn.train`` runs per batch, without the data loading and the Lightning
loop: ``MILSystem.training_step`` (forward and every loss term), backward, and an AdamW step, on random
bags already on the device. Beside it, in the same process, the forward pass alone (training mode, autograd
on, no loss, no backward): the ratio step/forward makes figures comparable across machines.

Each bag size runs in a fresh process (spawned), so on the CPU the growth of the peak resident set size
(``ru_maxrss``) belongs to that size alone. It is an upper bound on what training needs: it includes the
allocator's caches and the math libraries' workspaces. On CUDA the peak is ``max_memory_allocated`` (tensors
only: model, optimizer state, bag, activations; not the CUDA context). Usage::

    python benchmarks/train_mil.py                                   # abmil, D = 1024, sizes 1k 10k 100k
    python benchmarks/train_mil.py --device cuda --precision bf16 --steps 50
    python benchmarks/train_mil.py --device cpu --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from pathattn.registry import create_model
from pathattn.train.mil.system import MILSystem


@dataclass(frozen=True)
class Setup:
    """What one measurement runs.

    Args:
        model: a registered MIL model.
        size: instances per bag.
        dim: feature size D.
        batch_size: bags per step (all of ``size`` instances).
        steps: timed steps (and timed forward passes).
        warmup: untimed steps before timing.
        device: ``cpu`` or ``cuda``.
        precision: ``fp32``, or ``bf16`` (autocast; features and weights stay float32).
        threads: CPU threads of torch (None: torch's default).
    """

    model: str
    size: int
    dim: int
    batch_size: int
    steps: int
    warmup: int
    device: str
    precision: str
    threads: int | None


@dataclass(frozen=True)
class Result:
    """Timings and memory of one bag size.

    Args:
        step_s: seconds per full training step.
        forward_s: seconds per forward pass alone.
        peak_bytes: peak memory (CUDA: allocated; CPU: growth of the peak RSS, an upper bound).
        parameters: trainable parameters of the model.
        threads: CPU threads torch used.
    """

    step_s: float
    forward_s: float
    peak_bytes: int
    parameters: int
    threads: int


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return device


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model name from ``/proc/cpuinfo`` where there is one."""
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def random_batch(setup: Setup, n_classes: int) -> dict[str, torch.Tensor]:
    """A batch as ``collate_bags`` builds it, of random float32 features, already on the device."""
    device, n = torch.device(setup.device), setup.batch_size
    generator = torch.Generator(device).manual_seed(0)
    return {
        "features": torch.randn(n, setup.size, setup.dim, device=device, generator=generator),
        "mask": torch.ones(n, setup.size, dtype=torch.bool, device=device),
        "label": torch.randint(0, n_classes, (n,), device=device, generator=generator),
        "time": torch.ones(n, device=device),
        "event": torch.ones(n, dtype=torch.long, device=device),
        "index": torch.arange(n, device=device),
    }


def autocast(setup: Setup) -> AbstractContextManager[object]:
    """The precision context of the forward pass."""
    if setup.precision == "bf16":
        return torch.autocast(setup.device, dtype=torch.bfloat16)
    return nullcontext()


def synchronize(device: str) -> None:
    """Wait for the device's queued work (timing boundaries)."""
    if device == "cuda":
        torch.cuda.synchronize()


def time_per_call(function: Callable[[], object], calls: int, device: str) -> float:
    """Mean seconds per call of ``function`` over ``calls`` calls (the device synchronised at both ends)."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        function()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def rss_peak_bytes() -> int:
    """The process's peak resident set size so far (``ru_maxrss`` is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024


def measure(setup: Setup) -> Result:
    """Time training steps and forward passes of one bag size and record the peak memory (in a fresh process).

    Args:
        setup: what to run.

    Returns:
        The timings and the peak memory.
    """
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; there is no Trainer here
    if setup.threads:
        torch.set_num_threads(setup.threads)
    torch.manual_seed(0)
    if setup.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = rss_peak_bytes()
    system = MILSystem(create_model(setup.model, in_dim=setup.dim, n_classes=2)).to(setup.device).train()
    optimizer = torch.optim.AdamW(system.model.parameters(), lr=1e-4, weight_decay=1e-5)
    batch = random_batch(setup, n_classes=2)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(setup):
            loss = system.training_step(batch, 0)
        loss.backward()
        optimizer.step()

    def forward() -> None:
        with autocast(setup):
            system.model(batch["features"], batch["mask"])

    for _ in range(setup.warmup):
        step()
        forward()
    step_s = time_per_call(step, setup.steps, setup.device)
    forward_s = time_per_call(forward, setup.steps, setup.device)
    if setup.device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = rss_peak_bytes() - rss_before
    parameters = sum(p.numel() for p in system.model.parameters() if p.requires_grad)
    return Result(step_s, forward_s, peak, parameters, torch.get_num_threads())


def measure_in_fresh_process(setup: Setup) -> Result:
    """:func:`measure` in a spawned process of its own, so that its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measure, setup).result()


def format_row(setup: Setup, result: Result) -> str:
    """One line of the results table."""
    bags_s = setup.batch_size / result.step_s
    ratio, peak_mib = result.step_s / result.forward_s, result.peak_bytes / 2**20
    return (
        f"{setup.size:>9,} | {bags_s:>9.2f} | {result.step_s * 1e3:>9.1f} | {bags_s * setup.size:>12,.0f} | "
        f"{result.forward_s * 1e3:>9.1f} | {ratio:>8.2f} | {peak_mib:>9,.0f}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="instances per bag")
    parser.add_argument("--dim", type=int, default=1024, help="feature size D")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (and timed forward passes) per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--model", default="abmil", help="a registered MIL model")
    parser.add_argument("--batch-size", type=int, default=1, help="bags per step")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    setups = [
        Setup(args.model, size, args.dim, args.batch_size, args.steps, args.warmup, device, args.precision,
              args.threads)
        for size in args.sizes
    ]  # fmt: skip
    results = [measure_in_fresh_process(setup) for setup in setups]
    memory = "peak CUDA memory allocated" if device == "cuda" else "peak RSS growth (upper bound)"
    print(f"device: {device} ({device_name(device)}), torch {torch.__version__}, threads {results[0].threads}")
    print(f"model: {args.model} ({results[0].parameters:,} parameters), D = {args.dim}, batch {args.batch_size}, "
          f"precision {args.precision}, {args.steps} timed steps after {args.warmup} warm-up")  # fmt: skip
    print("step = training_step (forward + loss) + backward + AdamW; forward = forward alone (train mode, autograd)")
    print(f"memory: {memory}, MiB")
    print(" bag size |    bags/s |   ms/step |  instances/s |    fwd ms | step/fwd |  peak MiB")
    for setup, result in zip(setups, results, strict=True):
        print(format_row(setup, result))


if __name__ == "__main__":
    main()
