"""Benchmark of the attention gate's element-wise part: torch eager vs torch.compile vs the fused Triton kernels.

One Attention U-Net level in 3-D: theta_x, phi_g (B, F_int, *S_c) and x (B, F_x, *S) with S = 2 S_c, forward
(``gated, alpha``) and forward + backward (the loss through ``gated``, gradients of theta_x, phi_g, psi and x).
The convolutions around the gate are not timed: they stay cuDNN's.

The op is memory-bound (a few FLOPs per byte), so the roofline is HBM bandwidth. Each row prints the median time,
the peak memory allocated beyond the inputs (CUDA only), the compulsory traffic divided by the time (every input read
once and every output written once: theta_x, phi_g, x -> gated, alpha forward; theta_x, phi_g, x, d_gated ->
d_pre, d_x backward, theta_x's and phi_g's gradients being one tensor) and that rate as a fraction of the H100 SXM's
3.35 TB/s, and the speed-up over eager.

    python kernels/bench/attention_gate.py            # B=2, F_int=32, F_x=64, x 128^3, bf16 (needs a GPU)
    python kernels/bench/attention_gate.py --small    # B=1, F_int=8, F_x=16, x 24^3, fp32: CPU-sized
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timing import measure

from pathattn.kernels import reference

HBM_BYTES_PER_S = 3.35e12  # H100 SXM
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Gate = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Shape:
    """One gate call: batch, channels of theta/phi and of x, and the fine grid's edge (the coarse one is half)."""

    batch: int
    f_int: int
    f_x: int
    edge: int

    def inputs(self, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
        """theta_x, phi_g (B, F_int, *S_c), psi weight (F_int,), bias (1,), x (B, F_x, *S), all requiring grad."""
        coarse, fine = (self.edge // 2,) * 3, (self.edge,) * 3
        shapes = [(self.batch, self.f_int, *coarse)] * 2 + [(self.f_int,), (1,), (self.batch, self.f_x, *fine)]
        return [torch.randn(s, device=device, dtype=dtype).requires_grad_() for s in shapes]

    def forward_bytes(self, itemsize: int) -> int:
        """Compulsory forward traffic: theta_x, phi_g and x read, gated and alpha written."""
        fine, coarse = self.batch * self.edge**3, self.batch * (self.edge // 2) ** 3
        return itemsize * (2 * self.f_int * coarse + 2 * self.f_x * fine + fine)

    def backward_bytes(self, itemsize: int) -> int:
        """Compulsory backward traffic: theta_x, phi_g, x and d_gated read, d_pre and d_x written."""
        fine, coarse = self.batch * self.edge**3, self.batch * (self.edge // 2) ** 3
        return itemsize * (3 * self.f_int * coarse + 3 * self.f_x * fine)


def step(gate: Gate, inputs: list[torch.Tensor], backward: bool) -> Callable[[], object]:
    """A call of ``gate``: forward only (no autograd graph), or forward and backward through ``gated``."""
    if not backward:
        return lambda: _forward(gate, inputs)
    d_gated = torch.randn_like(inputs[-1])
    return lambda: torch.autograd.grad(gate(*inputs)[0], inputs, d_gated)


def _forward(gate: Gate, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return gate(*inputs)


def implementations(device: torch.device, compile_mode: str) -> dict[str, Gate | None]:
    """eager (the torch reference), torch.compile of it, and the fused Triton op (None without a CUDA device)."""
    gates: dict[str, Gate | None] = {
        "eager": reference.attention_gate,
        "compile": torch.compile(reference.attention_gate, mode=compile_mode),
        "triton": None,
    }
    if device.type == "cuda":
        from pathattn.kernels.attention_gate.function import AttentionGateFunction

        gates["triton"] = AttentionGateFunction.apply
    return gates


def main() -> None:
    """Print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="B=1, F_int=8, F_x=16, x 24^3, fp32 (for a CPU)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--f-int", type=int, default=32)
    parser.add_argument("--f-x", type=int, default=64)
    parser.add_argument("--edge", type=int, default=128, help="x's edge (even); theta_x's is half")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode, e.g. max-autotune")
    args = parser.parse_args()
    shape = Shape(1, 8, 16, 24) if args.small else Shape(args.batch, args.f_int, args.f_x, args.edge)
    dtype = torch.float32 if args.small else DTYPES[args.dtype]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    inputs = shape.inputs(dtype, device)
    itemsize = inputs[0].element_size()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"attention gate, {shape}, {dtype}, {name}; roofline: H100 SXM HBM {HBM_BYTES_PER_S / 1e12:.2f} TB/s")
    print(f"{'pass':<18}{'impl':<9}{'ms':>10}{'peak MiB':>10}{'GB/s':>9}{'of HBM':>8}{'vs eager':>10}")
    gates = implementations(device, args.compile_mode)
    for label, backward in (("forward", False), ("forward+backward", True)):
        moved = shape.forward_bytes(itemsize) + (shape.backward_bytes(itemsize) if backward else 0)
        eager_ms = None
        for impl, gate in gates.items():
            if gate is None:
                print(f"{label:<18}{impl:<9}  Triton: needs a CUDA device")
                continue
            ms, peak = measure(step(gate, inputs, backward), device, args.repeats)
            eager_ms = eager_ms or ms
            rate = moved / ms / 1e6
            memory = "-" if peak is None else f"{peak:.0f}"
            print(f"{label:<18}{impl:<9}{ms:>10.3f}{memory:>10}{rate:>9.1f}{rate * 1e9 / HBM_BYTES_PER_S:>8.1%}"
                  f"{eager_ms / ms:>9.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
