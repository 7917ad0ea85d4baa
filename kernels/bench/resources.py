"""Compiled resources of every Triton kernel for a CUDA target, without a GPU: shared memory, registers, spills.

A kernel whose shared memory exceeds the device's per-block limit fails at launch ("out of resource"), and one
that spills registers to local memory runs slowly; neither shows in the CPU interpreter. This script runs the
ops' real launchers on CPU tensors at the sizes below, with every launch compiled (never run) for the chosen
CUDA architecture by Triton's own compiler and ``ptxas`` (both ship with the triton wheel), and prints, per
kernel and case, the shared memory a program needs, the registers a thread uses and the bytes it spills
(``cuobjdump -res-usage`` of the cubin). Output buffers are left unfilled: nothing is computed.

    python kernels/bench/resources.py                 # sm_80 and sm_90, every case, a table
    python kernels/bench/resources.py --arch 90 --json

Per-block shared-memory limits (opt-in): 99 KiB on sm_86/sm_89 (RTX 30xx/40xx, A6000, L40), 163 KiB on
sm_80 (A100), 227 KiB on sm_90 (H100/H200). ``--limit`` (default 99 KiB: every one of them) is the limit the
launchers are held to here: a kernel above it counts as not fitting, and the launcher falls back to its next
configuration, as on a device with that limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compile, never interpret (before triton is imported)
os.environ["PATHATTN_KERNELS"] = "triton"  # a kernel that fits nowhere is an error here, not the reference

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402
from triton.runtime.errors import OutOfResources  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

from pathattn.kernels import ABMILWeights, abmil_pool, attention_gate, masked_pool  # noqa: E402
from pathattn.kernels.dispatch import KernelResourceError  # noqa: E402

OPS = ("abmil_pool", "attention_gate", "masked_pool")
KIB = 1024
MULTIPROCESSORS = 132  # an H100 SXM's, for the launch widths that depend on it


@dataclass(frozen=True)
class Usage:
    """One compiled kernel of one case (``kernel`` "-" and ``error`` set: the case failed)."""

    arch: int
    case: str
    kernel: str
    shared: int = 0
    registers: int = 0
    spill_bytes: int = 0
    num_warps: int = 0
    num_stages: int = 0
    blocks: str = ""
    error: str = ""


class CompileOnly:
    """A Triton driver stand-in that reports a CUDA target, so that launches compile (``warmup``) only.

    Its device number is the architecture, so that kernels compiled for one are never reused for another.
    """

    def __init__(self, arch: int) -> None:
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_device(self) -> int:
        return self.target.arch

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return self.target

    def get_active_torch_device(self) -> torch.device:
        return torch.device("cpu")


def _resources(cubin: bytes) -> tuple[int, int]:
    """Registers per thread and spill (stack) bytes per thread of a cubin, from ``cuobjdump -res-usage``."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as file:
        file.write(cubin)
        file.flush()
        report = subprocess.run([tool, "-res-usage", file.name], capture_output=True, text=True, check=True).stdout
    registers, stack = (int(re.search(rf"{key}:(\d+)", report).group(1)) for key in ("REG", "STACK"))
    return registers, stack


def _cases() -> Iterator[tuple[str, Callable[[], None]]]:
    """(name, run) for every case: each run calls an op forward (and backward where it has one) on CPU tensors."""

    def abmil(dtype: torch.dtype, n_features: int, n_embed: int | None, n_hidden: int, n_heads: int, gated: bool):
        def run() -> None:
            def param(*shape: int) -> torch.Tensor:
                return torch.randn(*shape, dtype=dtype, requires_grad=True)

            width = n_embed or n_features
            weights = ABMILWeights(
                param(n_hidden, width), param(n_hidden), param(n_heads, n_hidden), param(n_heads),
                *((param(n_hidden, width), param(n_hidden)) if gated else (None, None)),
                *((param(width, n_features), param(width)) if n_embed else (None, None)),
            )  # fmt: skip
            features = torch.randn(2, 64, n_features, dtype=dtype, requires_grad=True)
            mask = torch.ones(2, 64, n_heads, dtype=torch.bool) if n_heads > 1 else None
            pooled, logits = abmil_pool(features, weights, mask=mask)
            (pooled.sum() + logits.sum()).backward()

        return run

    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        name = str(dtype).removeprefix("torch.")
        yield f"abmil_pool HIPPO D=1024 L=512 H=384 K=1 gated {name}", abmil(dtype, 1024, 512, 384, 1, True)
    yield "abmil_pool D=1024 L=128 H=128 K=5 gated bf16", abmil(torch.bfloat16, 1024, 128, 128, 5, True)
    yield "abmil_pool no encoder L=D=1024 H=256 K=1 plain bf16", abmil(torch.bfloat16, 1024, None, 256, 1, False)
    yield "abmil_pool no encoder L=D=1536 H=256 K=1 gated bf16", abmil(torch.bfloat16, 1536, None, 256, 1, True)

    def gate(dtype: torch.dtype, spatial: tuple[int, ...], factor: int):
        def run() -> None:
            coarse = tuple(s // factor for s in spatial)
            theta_x = torch.randn(2, 32, *coarse, dtype=dtype, requires_grad=True)
            phi_g = torch.randn(2, 32, *coarse, dtype=dtype, requires_grad=True)
            psi = torch.randn(32, dtype=dtype, requires_grad=True), torch.randn(1, dtype=dtype, requires_grad=True)
            x = torch.randn(2, 64, *spatial, dtype=dtype, requires_grad=True)
            gated, alpha = attention_gate(theta_x, phi_g, *psi, x)
            (gated.sum() + alpha.sum()).backward()

        return run

    for dtype in (torch.bfloat16, torch.float32):
        name = str(dtype).removeprefix("torch.")
        yield f"attention_gate 2-D factor 2 {name}", gate(dtype, (32, 32), 2)
        yield f"attention_gate 3-D factor 2 {name}", gate(dtype, (16, 16, 8), 2)

    def pool(dtype: torch.dtype, rule: str):
        def run() -> None:
            logits, values = torch.randn(1000, 1, dtype=dtype), torch.randn(1000, 2, dtype=dtype)
            if rule == "masks":
                masked_pool(logits, values, torch.rand(64, 1000) < 0.9)
            elif rule == "remove_sets":
                indices = torch.randperm(1000)[:256]
                masked_pool(logits, values, rule=rule, indices=indices, offsets=torch.arange(0, 257, 8))
            else:
                masked_pool(logits, values, rule=rule, indices=torch.arange(100))

        return run

    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        for rule in ("masks", "remove_sets", "add_one"):
            yield f"masked_pool {rule} {str(dtype).removeprefix('torch.')}", pool(dtype, rule)


def compile_all(arch: int, limit: int) -> list[Usage]:
    """Every case compiled for ``sm_{arch}`` with ``limit`` bytes of shared memory a block: the kernels it used.

    A compiled kernel above ``limit`` raises Triton's ``OutOfResources``, as loading it on such a device does, so
    the launchers fall back to their leaner configurations exactly as they would there.
    """
    for op in OPS:  # the ops take the Triton path on CPU tensors
        sys.modules[f"pathattn.kernels.{op}"].use_triton = lambda *tensors: True
    from pathattn.kernels.abmil_pool import function as abmil_function

    abmil_function.Config.candidates = classmethod(lambda cls, device, n_embed: cls.gpu(n_embed, MULTIPROCESSORS))
    abmil_function._FITTING.clear()  # the tensors are on the CPU whatever the architecture: no outcome carries over
    used: list[tuple[str, object, dict[str, object]]] = []
    launch = JITFunction.run

    def compile_only(self: JITFunction, *args: object, grid: object, warmup: bool, **kwargs: object) -> object:
        kernel = launch(self, *args, grid=grid, warmup=True, **kwargs)
        if kernel.metadata.shared > limit:
            raise OutOfResources(kernel.metadata.shared, limit, "shared memory")
        used.append((self.__name__, kernel, kwargs))
        return kernel

    driver.set_active(CompileOnly(arch))
    JITFunction.run = compile_only
    usages = []
    try:
        for case, run in _cases():
            used.clear()
            try:
                run()
            except KernelResourceError as error:
                usages.append(Usage(arch, case, "-", error=str(error)))
            for name, kernel, kw in {(name, id(kernel)): (name, kernel, kw) for name, kernel, kw in used}.values():
                registers, spill = _resources(kernel.asm["cubin"])
                blocks = " ".join(f"{k.removeprefix('BLOCK_')}={v}" for k, v in kw.items() if k.startswith("BLOCK_"))
                meta = kernel.metadata
                usages.append(Usage(arch, case, name, meta.shared, registers, spill, meta.num_warps, meta.num_stages,
                                    blocks))  # fmt: skip
    finally:
        JITFunction.run = launch
    return usages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities, e.g. 80 90")
    parser.add_argument("--limit", type=int, default=99 * KIB, help="shared-memory bytes per block to flag")
    parser.add_argument("--json", action="store_true", help="one JSON object per compiled kernel")
    args = parser.parse_args()
    for arch in args.arch:
        for usage in compile_all(arch, args.limit):
            if args.json:
                print(json.dumps(asdict(usage)))
            elif usage.error:
                print(f"sm_{arch}  {usage.case:<52} {usage.error}")
            else:
                print(f"sm_{arch}  {usage.case:<52} {usage.kernel:<22} {usage.blocks:<28} stages {usage.num_stages} "
                      f"warps {usage.num_warps}  shared {usage.shared / KIB:5.1f} KiB  regs {usage.registers:3d}  "
                      f"spill {usage.spill_bytes:4d} B")  # fmt: skip


if __name__ == "__main__":
    main()
