"""Launchers of the fused ABMIL pooling kernels and its ``torch.autograd.Function``.

Forward: ``forward_kernel`` over (bag, split) programs, then ``combine_kernel`` per (bag, column block). Saved for
the backward: the fp32 logits (T, K), the per-bag log-sum-exp (B, K) and the fp32 pooled output (B, K, L), O(T K)
scalars beside the inputs, never the (T, L) embeddings or the (T, H) gates. Backward: ``backward_kernel`` recomputes
h and the gates from x, chunk by chunk of at most ``CHUNK_ROWS`` instances, and writes the row-local gradients that
the weight gradients reduce over instances; those reductions (dV, dU, dW_e) are cuBLAS GEMMs on the chunk, added up
in fp32, and the small ones (dw and the biases) are per-program partial sums: deterministic, and the backward's
transient memory is O(CHUNK_ROWS (L + H)) whatever the bag size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

import torch
import triton
from torch.autograd.function import FunctionCtx, once_differentiable
from triton.runtime.errors import OutOfResources

from ..dispatch import KernelResourceError
from ..reference import ABMILWeights
from .kernel import backward_kernel, combine_kernel, forward_kernel

CHUNK_ROWS = 16384  # instances per backward chunk (a multiple of every BLOCK_N)
BLOCK_L = 64  # columns per combine program
Result = TypeVar("Result")
_FITTING: dict[Hashable, int | KernelResourceError] = {}  # first_fitting's outcomes: config index, or the error


@dataclass(frozen=True)
class Config:
    """Block sizes and the launch width of one call (fixed, untuned choices; the interpreter gets small blocks).

    Args:
        block_n: instances per block (>= 16, for ``tl.dot``).
        block_d: feature columns per encoder tile.
        block_h: hidden units per gate tile.
        num_warps: warps per program on a GPU.
        num_stages: software-pipelining stages of the loops on a GPU (more stages: more shared memory).
        programs: the programs to aim for (four per streaming multiprocessor; four on the CPU interpreter).
    """

    block_n: int
    block_d: int
    block_h: int
    num_warps: int
    num_stages: int
    programs: int

    @classmethod
    def candidates(cls, device: torch.device, n_embed: int) -> tuple[Config, ...]:
        """The configurations for tensors on ``device`` and L = ``n_embed``, the preferred first."""
        if device.type == "cuda":
            return cls.gpu(n_embed, torch.cuda.get_device_properties(device).multi_processor_count)
        return (cls(64, 32, 32, 4, 1, 4),)  # the interpreter's time goes by blocks, not by their size

    @classmethod
    def gpu(cls, n_embed: int, multiprocessors: int) -> tuple[Config, ...]:
        """GPU configurations for L = ``n_embed`` on ``multiprocessors`` SMs, from the most shared memory to the least.

        A launcher uses the first whose kernel fits the device's shared memory (:func:`first_fitting`). The first
        keeps a block's (BLOCK_N, L) fp32 tiles within about 64 registers a thread and pipelines its loads over 3
        stages; the others halve the gate tiles, then pipeline less, then shrink every block.
        """
        block_n = max(16, min(64, 16384 // triton.next_power_of_2(n_embed)))
        shapes = ((block_n, 32, 32, 8, 3), (block_n, 32, 16, 8, 2), (block_n, 32, 16, 8, 1), (16, 16, 16, 4, 1))
        return tuple(cls(*shape, 4 * multiprocessors) for shape in shapes)

    def launch(self) -> dict[str, int]:
        """The block sizes and launch options a kernel of the op takes."""
        return {"BLOCK_N": self.block_n, "BLOCK_D": self.block_d, "BLOCK_H": self.block_h,
                "num_warps": self.num_warps, "num_stages": self.num_stages}  # fmt: skip


def first_fitting(run: Callable[[Config], Result], configs: tuple[Config, ...], what: str, key: Hashable) -> Result:
    """``run(config)`` with the first of ``configs`` whose kernels fit the device.

    Triton checks a compiled kernel's shared memory and threads against the device when it first loads it, before
    launching anything, so a configuration that does not fit fails with nothing written. The outcome is remembered
    per ``key`` (the kernel's compile-time arguments and device), so later calls start at the configuration that
    fitted, or fail at once, instead of retrying the larger ones on every step.

    Raises:
        KernelResourceError: none fits (``what`` names the op and its sizes).
    """
    known = _FITTING.get(key, 0)
    if isinstance(known, KernelResourceError):
        raise known
    for index in range(known, len(configs)):
        try:
            result = run(configs[index])
        except OutOfResources as error:
            short = error
            continue
        _FITTING[key] = index
        return result
    _FITTING[key] = KernelResourceError(
        f"{what} needs {short.required} of {short.name} a program even in its leanest configuration, the GPU allows "
        f"{short.limit}; set PATHATTN_KERNELS=torch to run the torch reference"
    )
    raise _FITTING[key]


@dataclass(frozen=True)
class Shapes:
    """The sizes of one call: T instances of D features in B bags, L-wide embeddings, H hidden units, K heads."""

    T: int
    D: int
    B: int
    L: int
    H: int
    K: int

    @classmethod
    def of(cls, features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights) -> Shapes:
        """The sizes of features (T, D), offsets (B + 1,) and weights."""
        (n_heads, n_hidden), n_embed = weights.score_weight.shape, weights.tanh_weight.shape[1]
        return cls(*features.shape, len(offsets) - 1, n_embed, n_hidden, n_heads)

    def describe(self, what: str, features: torch.Tensor) -> str:
        """``abmil_pool <what> (D=.., L=.., H=.., K=.., dtype)`` for messages."""
        dtype = str(features.dtype).removeprefix("torch.")
        return f"abmil_pool {what} (D={self.D}, L={self.L}, H={self.H}, K={self.K}, {dtype})"

    def constexprs(self, weights: ABMILWeights, keep: torch.Tensor | None) -> dict[str, object]:
        """The compile-time arguments every kernel of the call shares."""
        return {
            "K": self.K,
            "HAS_ENCODER": weights.encoder_weight is not None,
            "HAS_ENCODER_BIAS": weights.encoder_bias is not None,
            "GATED": weights.gate_weight is not None,
            "HAS_KEEP": keep is not None,
            "KEEP_PER_HEAD": keep is not None and keep.ndim == 2,
            "L_PAD": max(16, triton.next_power_of_2(self.L)),
            "K_PAD": max(16, triton.next_power_of_2(self.K)),
        }


def _pointers(features: torch.Tensor, weights: ABMILWeights) -> tuple[torch.Tensor, ...]:
    """The weights in kernel argument order, a placeholder (``features``) for those that are None."""
    w = weights
    order = (w.encoder_weight, w.encoder_bias, w.tanh_weight, w.tanh_bias, w.gate_weight, w.gate_bias, w.score_weight)
    return tuple(features if t is None else t for t in order)


def forward(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, keep: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pooled (B, K, L) fp32, logits (T, K) fp32 (-inf where not kept) and lse (B, K) fp32 of contiguous inputs."""
    size = Shapes.of(features, offsets, weights)
    run = functools.partial(_forward, features, offsets, weights, keep, size)
    what = size.describe("forward", features)
    key = (what, features.device, *size.constexprs(weights, keep).items())
    return first_fitting(run, Config.candidates(features.device, size.L), what, key)


def _forward(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, keep: torch.Tensor | None, size: Shapes,
    config: Config,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`forward` with ``config``."""
    fp32 = {"device": features.device, "dtype": torch.float32}
    logits = torch.empty(size.T, size.K, **fp32)
    pooled = torch.empty(size.B, size.K, size.L, **fp32)
    lse = torch.empty(size.B, size.K, **fp32)
    if size.B == 0:
        return pooled, logits, lse
    splits = max(1, min(triton.cdiv(config.programs, size.B), triton.cdiv(size.T, size.B * config.block_n)))
    peak = torch.empty(size.B, splits, size.K, **fp32)
    total = torch.empty_like(peak)
    partial = torch.empty(size.B, splits, size.K, size.L, **fp32)
    constexprs = size.constexprs(weights, keep)
    forward_kernel[(size.B, splits)](
        features, *_pointers(features, weights), weights.score_bias, offsets, features if keep is None else keep,
        logits, peak, total, partial, splits, size.D, size.L, size.H, **constexprs, **config.launch(),
    )  # fmt: skip
    combine_kernel[(size.B, triton.cdiv(size.L, BLOCK_L))](
        peak, total, partial, pooled, lse, splits, size.L, K=size.K, BLOCK_L=BLOCK_L, K_PAD=constexprs["K_PAD"]
    )
    return pooled, logits, lse


def _sum_over_rows(grad_rows: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``grad_rows^T inputs`` (P, Q) in fp32 of (n, P) and (n, Q): one chunk's share of a weight gradient."""
    return (grad_rows.T @ inputs).float()


@dataclass
class Gradients:
    """fp32 accumulators of the weight gradients over the backward's chunks (None: no instance at all).

    Args:
        gates: (2H, L) [dV | dU] (dV only for plain attention).
        encoder: (L, D) dW_e.
        small: the per-program partial sums, added up: dw (K x H), db_V (H), db_U (H), db_e (L), db_k (K).
    """

    gates: torch.Tensor | None
    encoder: torch.Tensor | None
    small: torch.Tensor

    def split(self, size: Shapes, weights: ABMILWeights) -> tuple[torch.Tensor | None, ...]:
        """The gradients of the ABMILWeights fields, in their order and dtypes (None for absent weights)."""
        kh, h = size.K * size.H, size.H
        small = self.small
        gates = (None, None) if self.gates is None else (self.gates[:h], self.gates[h:])
        found = (gates[0], small[kh : kh + h], small[:kh].view(size.K, size.H), small[-size.K :], gates[1],
                 small[kh + h : kh + 2 * h], self.encoder, small[kh + 2 * h : kh + 2 * h + size.L])  # fmt: skip
        return tuple(None if w is None or g is None else g.to(w.dtype) for w, g in zip(weights, found, strict=True))


def backward(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, keep: torch.Tensor | None,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor], d_pooled: torch.Tensor, d_logits: torch.Tensor | None,
    needs_d_x: bool,
) -> tuple[torch.Tensor | None, tuple[torch.Tensor | None, ...]]:  # fmt: skip
    """dx (T, D) (None unless ``needs_d_x``) and the weight gradients (ABMILWeights order) of contiguous inputs.

    ``saved`` is the forward's (pooled, logits, lse), fp32.
    """
    size = Shapes.of(features, offsets, weights)
    run = functools.partial(_backward, features, offsets, weights, keep, saved, d_pooled, d_logits, needs_d_x, size)
    what = size.describe("backward", features)
    key = (what, features.device, d_logits is None, needs_d_x, *size.constexprs(weights, keep).items())
    return first_fitting(run, Config.candidates(features.device, size.L), what, key)


def _backward(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, keep: torch.Tensor | None,
    saved: tuple[torch.Tensor, torch.Tensor, torch.Tensor], d_pooled: torch.Tensor, d_logits: torch.Tensor | None,
    needs_d_x: bool, size: Shapes, config: Config,
) -> tuple[torch.Tensor | None, tuple[torch.Tensor | None, ...]]:  # fmt: skip
    """:func:`backward` with ``config``."""
    pooled, logits, lse = saved
    delta = (d_pooled * pooled).sum(dim=-1)  # (B, K)
    bag_of = torch.repeat_interleave(
        torch.arange(size.B, device=features.device, dtype=torch.int32), offsets.diff(), output_size=size.T
    )
    chunk = min(size.T, CHUNK_ROWS)
    has_encoder = weights.encoder_weight is not None
    buffer = {"device": features.device, "dtype": features.dtype}
    h_rows = torch.empty(chunk, size.L, **buffer) if has_encoder else features
    d_pre = torch.empty(chunk, size.L, **buffer) if has_encoder else features
    d_gates = torch.empty(chunk, 2 * size.H, **buffer)
    d_x = torch.empty_like(features) if needs_d_x else features
    n_gates = 2 * size.H if weights.gate_weight is not None else size.H
    grads = Gradients(
        torch.zeros(n_gates, size.L, device=features.device) if chunk else None,
        torch.zeros(size.L, size.D, device=features.device) if has_encoder and chunk else None,
        torch.zeros(size.K * size.H + 2 * size.H + size.L + size.K, device=features.device),
    )
    for row0 in range(0, size.T, max(chunk, 1)):
        n_rows = min(chunk, size.T - row0)
        programs = triton.cdiv(n_rows, config.block_n)
        partials = torch.zeros(programs, len(grads.small), device=features.device)
        backward_kernel[(programs,)](
            features, *_pointers(features, weights), bag_of, features if keep is None else keep, logits, lse, delta,
            d_pooled, features if d_logits is None else d_logits, h_rows, d_gates, d_pre, d_x, partials, row0,
            n_rows, size.D, size.L, size.H, **size.constexprs(weights, keep), HAS_D_LOGITS=d_logits is not None,
            NEEDS_D_X=needs_d_x, **config.launch(),
        )  # fmt: skip
        grads.small += partials.sum(dim=0)
        inputs = features[row0 : row0 + n_rows]
        embedded = h_rows[:n_rows] if has_encoder else inputs
        grads.gates += _sum_over_rows(d_gates[:n_rows, :n_gates], embedded)
        if grads.encoder is not None:
            grads.encoder += _sum_over_rows(d_pre[:n_rows], inputs)
    return (d_x if needs_d_x else None), grads.split(size, weights)


class ABMILPoolFunction(torch.autograd.Function):
    """Fused ABMIL pooling with its fused backward (arguments as :func:`pathattn.kernels.reference.abmil_pool`).

    The weights are passed one by one (ABMILWeights order, None for absent ones) so that autograd sees them.
    Returns pooled (B, K, L) and logits (T, K), both fp32.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, features: torch.Tensor, offsets: torch.Tensor, keep: torch.Tensor | None,
        *weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(pooled, logits); saves the inputs, pooled, logits and lse."""
        keep_bytes = None if keep is None else keep.view(torch.uint8)
        pooled, logits, lse = forward(features, offsets, ABMILWeights(*weights), keep_bytes)
        ctx.save_for_backward(features, offsets, keep_bytes, pooled, logits, lse, *weights)
        ctx.set_materialize_grads(False)
        return pooled, logits

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, d_pooled: torch.Tensor | None, d_logits: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        """Gradients of features (when it requires grad) and of every weight; None for offsets and keep."""
        features, offsets, keep, pooled, logits, lse, *weights = ctx.saved_tensors
        if d_pooled is None:
            d_pooled = torch.zeros_like(pooled)
        d_logits = None if d_logits is None else d_logits.float().contiguous()
        saved = (pooled, logits, lse)
        d_x, d_weights = backward(features, offsets, ABMILWeights(*weights), keep, saved, d_pooled.float().contiguous(),
                                  d_logits, ctx.needs_input_grad[0])  # fmt: skip
        return d_x, None, None, *d_weights
