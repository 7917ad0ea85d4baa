"""Benchmark of masked_pool: torch eager vs torch.compile vs the Triton kernels, one bag under many masks.

The counterfactual engine's case: one bag of N instances with cached attention logits (N, H=1) and head
contributions (N, C=2), pooled under

* ``masks``: K explicit (K, N) bool masks (each instance kept with probability 0.9);
* ``all_but_one``: one greedy removal round, each of the N instances removed from the full bag in turn (M = N);
* ``remove_sets``: K sets of S scattered instances each removed from the full bag (CSR indices and offsets).

Eager is the torch reference (:func:`pathattn.kernels.reference.masked_pool` for ``masks``,
:func:`~pathattn.kernels.reference.masked_pool_removed` for the two rules), compile is ``torch.compile`` of the same
function (static shapes), triton the launchers of :mod:`pathattn.kernels.masked_pool.function` on CUDA tensors.
All three are called with the same checked arguments, so the op's argument checks (which synchronise) are not timed.

The op is memory-bound, so the roofline is HBM bandwidth. Each row prints the median time (after warm-up,
synchronising CUDA), the compulsory traffic divided by the time and that rate as a fraction of the H100 SXM's
3.35 TB/s, the peak memory allocated beyond the inputs (CUDA only) and the speed-up over eager. Compulsory traffic:
every input read once and the (M, H, C) output written once, that is for ``masks`` the (K, N) bool mask (one byte
an element), logits and values; for the rules the (N,) bool ``keep``, logits and values, the int64 indices (and the
(K + 1,) int64 offsets of ``remove_sets``). The issue's goal is ``masks`` at K=1024, N=100k at >= 70% of HBM.

    python kernels/bench/masked_pool.py           # N=100k, K=1024, sets of 64, H=1, C=2, fp32 (needs a GPU)
    python kernels/bench/masked_pool.py --small   # N=4000, K=64, sets of 8, fp32: CPU-sized
    python kernels/bench/masked_pool.py --small --threads 1   # on a busy CPU: eager's many small ops otherwise
                                                              # wait on OpenMP threads of loaded cores
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import measure

from pathattn.kernels import reference

HBM_BYTES_PER_S = 3.35e12  # H100 SXM
GOAL = 0.70  # of HBM bandwidth, rule masks at K=1024, N=100k (the goal)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
RULES = ("masks", "all_but_one", "remove_sets")
FUNCTIONS = {"masks": "masked_pool", "all_but_one": "masked_pool_removed", "remove_sets": "masked_pool_removed"}
Pool = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Shape:
    """One bag of N instances, H heads and C values; K masks (or sets) of S instances for ``remove_sets``."""

    N: int
    K: int
    S: int
    H: int = 1
    C: int = 2

    def inputs(self, rule: str, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The reference's arguments for ``rule``: logits (N, H), values (N, C), then masks, or keep and the sets."""
        logits = torch.randn(self.N, self.H, device=device, dtype=dtype)
        values = torch.randn(self.N, self.C, device=device, dtype=dtype)
        if rule == "masks":
            return logits, values, torch.rand(self.K, self.N, device=device) < 0.9
        keep = torch.ones(self.N, dtype=torch.bool, device=device)
        if rule == "all_but_one":
            return logits, values, keep, torch.arange(self.N, device=device)
        # set m: a random start plus S distinct offsets, modulo N (distinct within the set, scattered over the bag)
        members = torch.randperm(self.N, device=device)[: self.S]
        indices = (torch.randint(self.N, (self.K, 1), device=device) + members) % self.N
        offsets = torch.arange(self.K + 1, device=device) * self.S
        return logits, values, keep, indices.flatten(), offsets

    def rows(self, rule: str) -> int:
        """M, the bags pooled under ``rule``: one per mask or set, one per instance for ``all_but_one``."""
        return self.N if rule == "all_but_one" else self.K

    def moved_bytes(self, rule: str, inputs: tuple[torch.Tensor, ...]) -> int:
        """Compulsory traffic: every input read once and the (M, H, C) output written once."""
        written = self.rows(rule) * self.H * self.C * inputs[1].element_size()
        return sum(t.numel() * t.element_size() for t in inputs) + written


def implementations(device: torch.device, compile_mode: str) -> dict[str, dict[str, Pool] | None]:
    """Per implementation, the function of each rule: eager, compile, and triton (None without a CUDA device)."""
    # one compiled wrapper per rule, static shapes: each rule's shapes are fixed, so specialise rather than have
    # dynamo generalise masked_pool_removed's shapes when the second rule recompiles it
    pools: dict[str, dict[str, Pool] | None] = {
        "eager": {rule: getattr(reference, name) for rule, name in FUNCTIONS.items()},
        "compile": {
            rule: torch.compile(getattr(reference, name), mode=compile_mode, dynamic=False)
            for rule, name in FUNCTIONS.items()
        },
        "triton": None,
    }
    if device.type == "cuda":
        from pathattn.kernels.masked_pool import function

        pools["triton"] = {rule: getattr(function, name) for rule, name in FUNCTIONS.items()}
    return pools


def _one_line(error: Exception) -> str:
    """The exception's type and first line of message, at most 100 characters."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:100]


def main() -> None:
    """Print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="N=4000, K=64, sets of 8, fp32, 5 repeats (for a CPU)")
    parser.add_argument("--n", type=int, default=100_000, help="instances in the bag")
    parser.add_argument("--k", type=int, default=1024, help="masks of rule masks, sets of rule remove_sets")
    parser.add_argument("--set-size", type=int, default=64, help="instances in each set of remove_sets")
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--values", type=int, default=2, help="C, values per instance")
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode, e.g. max-autotune")
    parser.add_argument("--threads", type=int, help="CPU threads of torch (default: torch's choice)")
    args = parser.parse_args()
    if args.small:
        args.n, args.k, args.set_size, args.dtype, args.repeats = 4000, 64, 8, "fp32", 5
    if args.set_size > args.n:
        parser.error(f"--set-size {args.set_size} exceeds --n {args.n}")
    shape = Shape(args.n, args.k, args.set_size, args.heads, args.values)
    dtype, device = DTYPES[args.dtype], torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"masked_pool, {shape}, {dtype}, {name}; roofline: H100 SXM HBM {HBM_BYTES_PER_S / 1e12:.2f} TB/s")
    print(f"{'rule':<13}{'M':>8}  {'impl':<9}{'ms':>10}{'MB':>9}{'GB/s':>9}{'of HBM':>8}{'peak MiB':>10}"
          f"{'vs eager':>10}")  # fmt: skip
    pools = implementations(device, args.compile_mode)
    goal: float | None = None
    for rule in args.rules:
        inputs = shape.inputs(rule, dtype, device)
        moved = shape.moved_bytes(rule, inputs)
        label = f"{rule:<13}{shape.rows(rule):>8}  "
        eager_ms = None
        for impl, functions in pools.items():
            if functions is None:
                print(f"{label}{impl:<9}  Triton: needs a CUDA device")
                continue
            try:
                with torch.no_grad():
                    ms, peak = measure(functools.partial(functions[rule], *inputs), device, args.repeats)
            except Exception as error:  # torch.compile may lack a C++ compiler (CPU), or fail otherwise
                if impl != "compile":
                    raise
                print(f"{label}{impl:<9}  compile failed: {_one_line(error)}")
                continue
            eager_ms = eager_ms or ms
            rate = moved / ms / 1e6
            memory = "-" if peak is None else f"{peak:.0f}"
            print(f"{label}{impl:<9}{ms:>10.3f}{moved / 1e6:>9.3g}{rate:>9.3g}{rate * 1e9 / HBM_BYTES_PER_S:>8.1%}"
                  f"{memory:>10}{eager_ms / ms:>9.2f}x")  # fmt: skip
            if rule == "masks" and impl == "triton":
                goal = rate * 1e9 / HBM_BYTES_PER_S
    if "masks" in args.rules:
        verdict = "needs a CUDA device" if goal is None else f"{goal:.1%}, {'met' if goal >= GOAL else 'not met'}"
        print(
            f"goal (issue, at K=1024, N=100k): rule masks at >= {GOAL:.0%} of HBM with triton; this run "
            f"(K={shape.K}, N={shape.N}): {verdict}"
        )


if __name__ == "__main__":
    main()
