"""Launchers of the ``masked_pool`` Triton kernels (inference only: no autograd, see the package docstring).

Each launcher takes the op's checked arguments (logits (N, H), values (N, C), and the mask or rule tensors, all
on one device) and returns (M, H, C) in the dtype of ``values``; the block sizes are fixed, untuned choices.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference import cancellation, removal_masks
from .kernel import added_kernel, combine_kernel, partials_kernel, removed_kernel

BLOCK_M = 16  # masks per program of the dense kernel
TILE = 4096  # elements of the dense kernel's (BLOCK_M, BLOCK_N, BLOCK_C) product
MAX_BLOCK_C = 16  # values per program (wider values take more programs)
BLOCK_R = 16  # set members per step of the removal kernel
BLOCK_K = 64  # added instances per program


def _accumulator(values: torch.Tensor) -> tuple[torch.dtype, tl.dtype]:
    """The accumulation dtype, in torch and Triton: float64 for float64 values, float32 otherwise."""
    return (torch.float64, tl.float64) if values.dtype == torch.float64 else (torch.float32, tl.float32)


def _block_c(n_values: int) -> int:
    return min(MAX_BLOCK_C, triton.next_power_of_2(n_values))


def _splits(n_programs: int, n_instances: int, block_n: int, device: torch.device) -> int:
    """Splits of N that give about four programs per streaming multiprocessor (one per CPU core otherwise)."""
    target = 4 * torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2
    return max(1, min(triton.cdiv(target, n_programs), triton.cdiv(n_instances, block_n)))


def dense(
    logits: torch.Tensor, values: torch.Tensor, masks: torch.Tensor, out_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled values (M, H, C) in ``out_dtype`` and log-sum-exp (M, H) of the bag under each mask (M, N)."""
    (n_instances, n_heads), n_values, n_masks = logits.shape, values.shape[1], len(masks)
    acc_dtype, acc = _accumulator(values)
    block_c = _block_c(n_values)
    block_n = max(16, TILE // (BLOCK_M * block_c))
    grid_m, grid_hc = triton.cdiv(n_masks, BLOCK_M), n_heads * triton.cdiv(n_values, block_c)
    n_splits = _splits(grid_m * grid_hc, n_instances, block_n, logits.device)
    span = triton.cdiv(triton.cdiv(n_instances, n_splits), block_n) * block_n
    peak = torch.empty(n_splits, n_masks, n_heads, dtype=acc_dtype, device=logits.device)
    total = torch.empty_like(peak)
    partial = torch.empty(n_splits, n_masks, n_heads, n_values, dtype=acc_dtype, device=logits.device)
    member = masks.view(torch.uint8)
    partials_kernel[(grid_m, n_splits, grid_hc)](
        logits, values, member, peak, total, partial, n_masks, n_instances, n_heads, n_values, span,
        *logits.stride(), *values.stride(), *member.stride(),
        BLOCK_M=BLOCK_M, BLOCK_N=block_n, BLOCK_C=block_c, ACC=acc,
    )  # fmt: skip
    out = torch.empty(n_masks, n_heads, n_values, dtype=out_dtype, device=logits.device)
    lse = torch.empty(n_masks, n_heads, dtype=acc_dtype, device=logits.device)
    combine_kernel[(n_masks * n_heads, triton.cdiv(n_values, block_c))](
        peak, total, partial, out, lse, n_splits, n_masks * n_heads, n_values,
        BLOCK_S=triton.next_power_of_2(n_splits), BLOCK_C=block_c, ACC=acc,
    )  # fmt: skip
    return out, lse


def masked_pool(logits: torch.Tensor, values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The pooling of the bag under each of the masks (M, N) bool: (M, H, C)."""
    return dense(logits, values, masks, values.dtype)[0]


def masked_pool_removed(
    logits: torch.Tensor,
    values: torch.Tensor,
    keep: torch.Tensor,
    indices: torch.Tensor,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pooling of ``keep`` (N,) without each CSR set (``indices`` (T,), ``offsets`` (M + 1,)): (M, H, C).

    ``offsets`` None: one instance per set (``all_but_one``).

    Sets whose remaining attention share is below :func:`~pathattn.kernels.reference.cancellation` are recomputed
    by the dense kernel from their (few) materialised masks, as in the reference.
    """
    sets = torch.arange(len(indices) + 1, device=indices.device) if offsets is None else offsets
    (n_heads, n_values), n_sets = (logits.shape[1], values.shape[1]), len(sets) - 1
    acc_dtype, acc = _accumulator(values)
    base, lse = dense(logits, values, keep[None], acc_dtype)
    out = torch.empty(n_sets, n_heads, n_values, dtype=values.dtype, device=values.device)
    remaining = torch.empty(n_sets, n_heads, dtype=acc_dtype, device=values.device)
    block_c = _block_c(n_values)
    removed_kernel[(n_sets, n_heads * triton.cdiv(n_values, block_c))](
        logits, values, keep.view(torch.uint8), indices, sets, base, lse, out, remaining,
        n_heads, n_values, *logits.stride(), *values.stride(),
        BLOCK_R=BLOCK_R, BLOCK_C=block_c, ACC=acc,
    )  # fmt: skip
    rows = (remaining.amin(dim=1) <= cancellation(acc_dtype)).nonzero()[:, 0]
    if len(rows):
        out[rows] = masked_pool(logits, values, removal_masks(keep, indices, offsets, rows))
    return out


def masked_pool_added(
    logits: torch.Tensor, values: torch.Tensor, keep: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """The pooling of ``keep`` (N,) with each of ``indices`` (M,) added: (M, H, C)."""
    (n_heads, n_values), n_added = (logits.shape[1], values.shape[1]), len(indices)
    acc_dtype, acc = _accumulator(values)
    base, lse = dense(logits, values, keep[None], acc_dtype)
    out = torch.empty(n_added, n_heads, n_values, dtype=values.dtype, device=values.device)
    block_c = _block_c(n_values)
    added_kernel[(triton.cdiv(n_added, BLOCK_K), n_heads * triton.cdiv(n_values, block_c))](
        logits, values, keep.view(torch.uint8), indices, base, lse, out,
        n_added, n_heads, n_values, *logits.stride(), *values.stride(),
        BLOCK_K=BLOCK_K, BLOCK_C=block_c, ACC=acc,
    )  # fmt: skip
    return out
