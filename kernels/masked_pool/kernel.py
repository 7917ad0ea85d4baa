"""Triton kernels of ``masked_pool`` (the launchers are in :mod:`.function`).

Dense masks run FlashDecoding-style: :func:`partials_kernel` reduces a block of masks over one split of the N
instances with an online log-sum-exp (running max, sum of exponentials, weighted sum of values), and
:func:`combine_kernel` merges the splits. The rules never read an (M, N) mask: :func:`removed_kernel` and
:func:`added_kernel` update the pooling of the base bag (from the dense kernels with one mask) by the instances
each set removes or adds. Accumulation is in ``ACC`` (float32, or float64 for float64 inputs).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def partials_kernel(
    logits_ptr, values_ptr, masks_ptr, peak_ptr, total_ptr, acc_ptr,
    n_masks, n_instances, n_heads, n_values, span,
    stride_ln, stride_lh, stride_vn, stride_vc, stride_mm, stride_mn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """One (mask block, split of N, head x value block): running max, sum of exponentials and weighted values.

    Writes peak and total (S, M, H) and acc (S, M, H, C) at this program's split S.
    """
    split = tl.program_id(1)
    n_blocks_c = tl.cdiv(n_values, BLOCK_C)
    head = tl.program_id(2) // n_blocks_c
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = (tl.program_id(2) % n_blocks_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok, col_ok = rows < n_masks, cols < n_values
    peak = tl.full([BLOCK_M], float("-inf"), ACC)
    total = tl.zeros([BLOCK_M], ACC)
    acc = tl.zeros([BLOCK_M, BLOCK_C], ACC)
    for offset in range(0, span, BLOCK_N):
        inst = split * span + offset + tl.arange(0, BLOCK_N)
        inst_ok = inst < n_instances
        a = tl.load(logits_ptr + inst * stride_ln + head * stride_lh, mask=inst_ok, other=0.0).to(ACC)
        member_ptr = masks_ptr + rows[:, None] * stride_mm + inst[None, :] * stride_mn
        member = tl.load(member_ptr, mask=row_ok[:, None] & inst_ok[None, :], other=0) != 0
        scores = tl.where(member, a[None, :], float("-inf"))  # (BLOCK_M, BLOCK_N)
        new_peak = tl.maximum(peak, tl.max(scores, axis=1))
        shift = tl.where(new_peak == float("-inf"), 0.0, new_peak)  # no member yet: keep everything at 0
        rescale = tl.exp(peak - shift)
        weights = tl.exp(scores - shift[:, None])
        value_ptr = values_ptr + inst[:, None] * stride_vn + cols[None, :] * stride_vc
        v = tl.load(value_ptr, mask=inst_ok[:, None] & col_ok[None, :], other=0.0).to(ACC)  # (BLOCK_N, BLOCK_C)
        total = total * rescale + tl.sum(weights, axis=1)
        acc = acc * rescale[:, None] + tl.sum(weights[:, :, None] * v[None, :, :], axis=1)
        peak = new_peak
    slot = (split * n_masks + rows) * n_heads + head  # (BLOCK_M,) into (S, M, H)
    tl.store(peak_ptr + slot, peak, mask=row_ok)
    tl.store(total_ptr + slot, total, mask=row_ok)
    tl.store(acc_ptr + slot[:, None] * n_values + cols[None, :], acc, mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def combine_kernel(
    peak_ptr, total_ptr, acc_ptr, out_ptr, lse_ptr, n_splits, n_rows, n_values,
    BLOCK_S: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """One (mask x head row, value block): merge the splits into the pooled values and the log-sum-exp.

    Writes out (M * H, C) (zeros where a mask keeps nothing) and lse (M * H,) (-inf there).
    """
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    splits = tl.arange(0, BLOCK_S)
    split_ok, col_ok = splits < n_splits, cols < n_values
    peaks = tl.load(peak_ptr + splits * n_rows + row, mask=split_ok, other=float("-inf"))
    top = tl.max(peaks, axis=0)
    shift = tl.where(top == float("-inf"), 0.0, top)
    rescale = tl.exp(peaks - shift)  # (BLOCK_S,), 0 for an empty split
    total = tl.sum(rescale * tl.load(total_ptr + splits * n_rows + row, mask=split_ok, other=0.0), axis=0)
    acc_ptrs = acc_ptr + (splits[:, None] * n_rows + row) * n_values + cols[None, :]
    accs = tl.load(acc_ptrs, mask=split_ok[:, None] & col_ok[None, :], other=0.0)
    pooled = tl.sum(rescale[:, None] * accs, axis=0) / tl.where(total > 0, total, 1.0)
    tl.store(out_ptr + row * n_values + cols, pooled.to(out_ptr.dtype.element_ty), mask=col_ok)
    lse = tl.where(total > 0, shift + tl.log(tl.where(total > 0, total, 1.0)), float("-inf"))
    tl.store(lse_ptr + row, lse.to(ACC))


@triton.jit
def removed_kernel(
    logits_ptr, values_ptr, keep_ptr, indices_ptr, offsets_ptr, base_ptr, lse_ptr, out_ptr, remaining_ptr,
    n_heads, n_values, stride_ln, stride_lh, stride_vn, stride_vc,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """One (set, head x value block): ``(p - sum_j w_j v_j) / (1 - sum_j w_j)`` over the set's instances j.

    ``base`` (H, C) and ``lse`` (H,) are the pooling and log-sum-exp of ``keep``; writes out (M, H, C) and the
    remaining attention share (M, H).
    """
    index = tl.program_id(0)
    n_blocks_c = tl.cdiv(n_values, BLOCK_C)
    head = tl.program_id(1) // n_blocks_c
    cols = (tl.program_id(1) % n_blocks_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < n_values
    lse = tl.load(lse_ptr + head)
    share = tl.zeros([BLOCK_R], ACC)
    gone = tl.zeros([BLOCK_R, BLOCK_C], ACC)
    for position in range(tl.load(offsets_ptr + index), tl.load(offsets_ptr + index + 1), BLOCK_R):
        members = position + tl.arange(0, BLOCK_R)
        member_ok = members < tl.load(offsets_ptr + index + 1)
        instance = tl.load(indices_ptr + members, mask=member_ok, other=0)
        kept = member_ok & (tl.load(keep_ptr + instance, mask=member_ok, other=0) != 0)
        a = tl.load(logits_ptr + instance * stride_ln + head * stride_lh, mask=kept, other=0.0).to(ACC)
        weight = tl.where(kept, tl.exp(a - lse), 0.0)
        value_ptr = values_ptr + instance[:, None] * stride_vn + cols[None, :] * stride_vc
        v = tl.load(value_ptr, mask=kept[:, None] & col_ok[None, :], other=0.0).to(ACC)
        share += weight
        gone += weight[:, None] * v
    remaining = 1.0 - tl.sum(share, axis=0)
    base = tl.load(base_ptr + head * n_values + cols, mask=col_ok, other=0.0).to(ACC)
    pooled = (base - tl.sum(gone, axis=0)) / tl.where(remaining > 0, remaining, 1.0)
    slot = index * n_heads + head
    tl.store(out_ptr + slot * n_values + cols, pooled.to(out_ptr.dtype.element_ty), mask=col_ok)
    tl.store(remaining_ptr + slot, remaining)


@triton.jit
def added_kernel(
    logits_ptr, values_ptr, keep_ptr, indices_ptr, base_ptr, lse_ptr, out_ptr,
    n_added, n_heads, n_values, stride_ln, stride_lh, stride_vn, stride_vc,
    BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """One (block of added instances, head x value block): ``p + t (v_j - p)``, ``t = sigmoid(a_j - L)``."""
    n_blocks_c = tl.cdiv(n_values, BLOCK_C)
    head = tl.program_id(1) // n_blocks_c
    cols = (tl.program_id(1) % n_blocks_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    rows = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    row_ok, col_ok = rows < n_added, cols < n_values
    instance = tl.load(indices_ptr + rows, mask=row_ok, other=0)
    kept = tl.load(keep_ptr + instance, mask=row_ok, other=0) != 0
    a = tl.load(logits_ptr + instance * stride_ln + head * stride_lh, mask=row_ok, other=0.0).to(ACC)
    share = tl.where(kept, 0.0, tl.sigmoid(a - tl.load(lse_ptr + head)))  # 1 for an empty keep (lse = -inf)
    both = row_ok[:, None] & col_ok[None, :]
    v = tl.load(values_ptr + instance[:, None] * stride_vn + cols[None, :] * stride_vc, mask=both, other=0.0)
    base = tl.load(base_ptr + head * n_values + cols, mask=col_ok, other=0.0).to(ACC)
    pooled = base[None, :] + share[:, None] * (v.to(ACC) - base[None, :])
    out = out_ptr + (rows[:, None] * n_heads + head) * n_values + cols[None, :]
    tl.store(out, pooled.to(out_ptr.dtype.element_ty), mask=both)
