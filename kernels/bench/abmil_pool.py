"""Benchmark of fused ABMIL pooling: torch eager vs torch.compile vs the fused Triton op, forward and training step.

One bag of N instances (B = 1, no padding), HIPPO's gated ABMIL by default: features (N, D=1024), encoder
``ReLU(W_e x + b_e)`` to L=512, gated attention with H=384 hidden units, K=1 head. Eager is what the models run
without the fused op (Linear, ReLU, Linear, tanh, Linear, sigmoid, mul, Linear, softmax, einsum); compile is
``torch.compile`` of that function; triton is :func:`pathattn.kernels.abmil_pool` on CUDA tensors.

The op is compute-bound (about 500 FLOP per byte of features in bf16), so the roofline is the tensor cores: each row
prints the median time, the model FLOPs per second and their fraction of the H100 SXM's 989 TFLOP/s (bf16 dense),
the features' bytes per second (forward: x read once; training step: twice, since the fused backward re-reads x)
as a fraction of its 3.35 TB/s, the peak memory allocated beyond the inputs (CUDA only) and the speed-up over eager.
Model FLOPs: forward ``N (2DL + 2LH (2 if gated) + 2HK + 2KL)``; training step with frozen features (weights
require grad, x does not) ``3 x forward - 2NDL`` (no input gradient of the encoder); the fused backward's recompute
is not counted. The last table is the training step's memory at ``--memory-n`` instances: what the forward leaves
for the backward (activations and outputs) and the step's peak, both beyond the inputs and weights.

    python kernels/bench/abmil_pool.py           # N=100k, D=1024, L=512, H=384, bf16; memory at N=200k (needs a GPU)
    python kernels/bench/abmil_pool.py --small   # N=3000, D=64, L=48, H=40, fp32: CPU-sized (eager and compile)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import measure

from pathattn.kernels import ABMILWeights, abmil_pool, reference

TENSOR_FLOPS = 989e12  # H100 SXM, bf16 dense
HBM_BYTES_PER_S = 3.35e12  # H100 SXM
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Pool = Callable[[torch.Tensor, ABMILWeights], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Shape:
    """One bag: N instances of D features, L-wide embeddings, H hidden attention units, K heads, gated or plain."""

    N: int
    D: int
    L: int
    H: int
    K: int = 1
    gated: bool = True

    def inputs(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ABMILWeights]:
        """features (1, N, D) (no grad: frozen) and the weights (requiring grad), nn.Linear-scaled."""

        def weight(*shape: int) -> torch.Tensor:
            return (torch.randn(shape, device=device) / shape[-1] ** 0.5).to(dtype).requires_grad_()

        gate = (weight(self.H, self.L), weight(self.H)) if self.gated else (None, None)
        tail = (weight(self.L, self.D), weight(self.L))
        attention = (weight(self.H, self.L), weight(self.H), weight(self.K, self.H), weight(self.K))
        return torch.randn(1, self.N, self.D, device=device, dtype=dtype), ABMILWeights(*attention, *gate, *tail)

    def forward_flops(self) -> float:
        """Model FLOPs of the forward pass."""
        gates = 2 * self.L * self.H * (2 if self.gated else 1)
        return float(self.N * (2 * self.D * self.L + gates + 2 * self.K * (self.H + self.L)))

    def step_flops(self) -> float:
        """Model FLOPs of a training step with frozen features."""
        return 3 * self.forward_flops() - 2.0 * self.N * self.D * self.L


def eager(features: torch.Tensor, weights: ABMILWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfused computation of padded bags (B, N, D): pooled (B, K, L) and logits (B, N, K)."""
    embeddings, logits = reference.abmil_scores(features, weights)
    return torch.einsum("bnk,bnl->bkl", torch.softmax(logits, dim=1), embeddings), logits


def step(pool: Pool, features: torch.Tensor, weights: ABMILWeights, train: bool) -> Callable[[], object]:
    """A call: forward only (no autograd graph), or a training step (forward, backward to the weights)."""
    leaves = [w for w in weights if w is not None]
    if train:
        return lambda: torch.autograd.grad(pool(features, weights)[0].float().sum(), leaves)

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return pool(features, weights)

    return forward


def kept_for_backward(pool: Pool, features: torch.Tensor, weights: ABMILWeights) -> float:
    """MiB the forward leaves for the backward beyond inputs and weights: CUDA allocations, else saved tensors."""
    if features.is_cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(features.device)
        outputs = pool(features, weights)
        torch.cuda.synchronize()
        kept = torch.cuda.memory_allocated(features.device) - before
        del outputs
        return kept / 2**20
    inputs = {t.untyped_storage().data_ptr() for t in (features, *(w for w in weights if w is not None))}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in inputs:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pool(features, weights)
    return sum(saved.values()) / 2**20


def implementations(device: torch.device, compile_mode: str) -> dict[str, Pool | None]:
    """eager, torch.compile of it, and the fused Triton op (None without a CUDA device)."""
    return {
        "eager": eager,
        "compile": torch.compile(eager, mode=compile_mode),
        "triton": abmil_pool if device.type == "cuda" else None,
    }


def speed_table(
    shape: Shape, dtype: torch.dtype, device: torch.device, pools: dict[str, Pool | None], repeats: int
) -> None:
    """Time forward and training step of every implementation (module docstring)."""
    features, weights = shape.inputs(dtype, device)
    x_bytes = features.numel() * features.element_size()
    print(f"{'pass':<15}{'impl':<9}{'ms':>10}{'TFLOP/s':>9}{'of TC':>7}{'GB/s':>8}{'of HBM':>8}{'peak MiB':>10}"
          f"{'vs eager':>10}")  # fmt: skip
    for label, train in (("forward", False), ("training step", True)):
        flops, moved = (shape.step_flops(), 2 * x_bytes) if train else (shape.forward_flops(), x_bytes)
        eager_ms = None
        for impl, pool in pools.items():
            if pool is None:
                print(f"{label:<15}{impl:<9}  Triton: needs a CUDA device")
                continue
            ms, peak = measure(step(pool, features, weights, train), device, repeats)
            eager_ms = eager_ms or ms
            tflops, rate = flops / ms / 1e9, moved / ms / 1e6
            memory = "-" if peak is None else f"{peak:.0f}"
            print(f"{label:<15}{impl:<9}{ms:>10.3f}{tflops:>9.3g}{tflops * 1e12 / TENSOR_FLOPS:>7.1%}{rate:>8.0f}"
                  f"{rate * 1e9 / HBM_BYTES_PER_S:>8.1%}{memory:>10}{eager_ms / ms:>9.2f}x")  # fmt: skip


def memory_table(shape: Shape, dtype: torch.dtype, device: torch.device, pools: dict[str, Pool | None]) -> None:
    """Training-step memory of every implementation at ``shape`` (module docstring)."""
    features, weights = shape.inputs(dtype, device)
    print(f"\ntraining-step memory at N={shape.N}: kept for backward (MiB), step peak (MiB), eager / impl")
    eager_kept = None
    for impl, pool in pools.items():
        if pool is None:
            print(f"  {impl:<9}Triton: needs a CUDA device")
            continue
        if impl == "compile" and device.type != "cuda":
            print(f"  {impl:<9}- (saved tensors of a compiled graph are not visible on the CPU)")
            continue
        kept = kept_for_backward(pool, features, weights)
        eager_kept = eager_kept or kept
        _, peak = measure(step(pool, features, weights, True), device, 1)
        ratio = f"{eager_kept / kept:.0f}x" if kept else "-"
        print(f"  {impl:<9}{kept:>10.1f}{'-' if peak is None else f'{peak:.0f}':>10}{ratio:>8}")


def main() -> None:
    """Print the tables (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="N=3000, D=64, L=48, H=40, fp32, memory at N=6000 (CPU)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--l", type=int, default=512)
    parser.add_argument("--h", type=int, default=384)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="plain tanh attention instead of gated")
    parser.add_argument("--memory-n", type=int, default=200_000, help="N of the training-step memory comparison")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode, e.g. max-autotune")
    args = parser.parse_args()
    if args.small:
        args.n, args.d, args.l, args.h, args.memory_n, args.dtype, args.repeats = 3000, 64, 48, 40, 6000, "fp32", 3
    shape = Shape(args.n, args.d, args.l, args.h, args.k, not args.plain)
    dtype, device = DTYPES[args.dtype], torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"abmil_pool, {shape}, {dtype}, {name}; roofline: H100 SXM {TENSOR_FLOPS / 1e12:.0f} TFLOP/s bf16 (TC), "
          f"HBM {HBM_BYTES_PER_S / 1e12:.2f} TB/s")  # fmt: skip
    pools = implementations(device, args.compile_mode)
    speed_table(shape, dtype, device, pools, args.repeats)
    memory_table(Shape(args.memory_n, args.d, args.l, args.h, args.k, not args.plain), dtype, device, pools)


if __name__ == "__main__":
    main()
