"""Triton kernels of the fused ABMIL attention pooling (``@triton.jit`` code only; launchers in ``function.py``).

Shapes: features x (T, D) of packed bags, encoder W_e (L, D), V and U (H, L), score weights w (K, H); every tensor is
contiguous. A block of BLOCK_N instances is embedded as ``h`` (BLOCK_N, L_PAD) in x's dtype (the encoder GEMM loops
over D in tiles of BLOCK_D; without an encoder ``h`` is x itself), and the gates loop over H in tiles of BLOCK_H; the
K heads are padded to K_PAD >= 16 columns so that every product is a ``tl.dot``. Products accumulate in fp32 (TF32
for fp32 inputs on a GPU, ``tl.dot``'s default); softmax statistics and gradients are fp32.
"""

import triton
import triton.language as tl


@triton.jit
def _embed(
    x, enc_w, enc_b, rows, valid, D, L,
    HAS_ENCODER: tl.constexpr, HAS_ENCODER_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, L_PAD: tl.constexpr,
):  # fmt: skip
    """h = ReLU(x W_e^T + b_e), or x without an encoder: (BLOCK_N, L_PAD) in x's dtype, 0 beyond L."""
    cols = tl.arange(0, L_PAD)
    if HAS_ENCODER:
        acc = tl.zeros((BLOCK_N, L_PAD), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + tl.arange(0, BLOCK_D)
            tile = tl.load(x + rows[:, None] * D + d[None, :], mask=valid[:, None] & (d < D)[None, :], other=0.0)
            w_mask = (cols < L)[None, :] & (d < D)[:, None]
            w_t = tl.load(enc_w + cols[None, :] * D + d[:, None], mask=w_mask, other=0.0)
            acc = tl.dot(tile, w_t, acc)
        if HAS_ENCODER_BIAS:
            acc += tl.load(enc_b + cols, mask=cols < L, other=0.0).to(tl.float32)[None, :]
        return tl.maximum(acc, 0.0).to(x.dtype.element_ty)
    return tl.load(x + rows[:, None] * L + cols[None, :], mask=valid[:, None] & (cols < L)[None, :], other=0.0)


@triton.jit
def _used(keep, rows, valid, heads, K: tl.constexpr, HAS_KEEP: tl.constexpr, KEEP_PER_HEAD: tl.constexpr):
    """Which (instance, head) pairs are pooled: (BLOCK_N, K_PAD) bool from ``keep`` (T,) or (T, K) bytes."""
    used = valid[:, None] & (heads < K)[None, :]
    if HAS_KEEP:
        if KEEP_PER_HEAD:
            used = used & (tl.load(keep + rows[:, None] * K + heads[None, :], mask=used, other=0) != 0)
        else:
            used = used & (tl.load(keep + rows, mask=valid, other=0) != 0)[:, None]
    return used


@triton.jit
def _gates(
    h, tanh_w, tanh_b, gate_w, gate_b, h0, L, H,
    GATED: tl.constexpr, BLOCK_H: tl.constexpr, L_PAD: tl.constexpr,
):  # fmt: skip
    """tanh(V h + b_V) and sigmoid(U h + b_U) (1 for plain attention) on hidden units h0.. : (BLOCK_N, BLOCK_H) fp32."""
    cols = tl.arange(0, L_PAD)
    units = h0 + tl.arange(0, BLOCK_H)
    tile_mask = (units < H)[None, :] & (cols < L)[:, None]
    v_t = tl.load(tanh_w + units[None, :] * L + cols[:, None], mask=tile_mask, other=0.0)
    pre = tl.dot(h, v_t) + tl.load(tanh_b + units, mask=units < H, other=0.0).to(tl.float32)[None, :]
    tanh = 2.0 * tl.sigmoid(2.0 * pre) - 1.0
    if GATED:
        u_t = tl.load(gate_w + units[None, :] * L + cols[:, None], mask=tile_mask, other=0.0)
        gate = tl.dot(h, u_t) + tl.load(gate_b + units, mask=units < H, other=0.0).to(tl.float32)[None, :]
        return tanh, tl.sigmoid(gate)
    return tanh, tl.full(tanh.shape, 1.0, tl.float32)


@triton.jit
def _score_tile(score_w, h0, H, K: tl.constexpr, BLOCK_H: tl.constexpr, K_PAD: tl.constexpr):
    """The score weights of hidden units h0.. as (K_PAD, BLOCK_H) fp32, 0 beyond K and H."""
    heads = tl.arange(0, K_PAD)
    units = h0 + tl.arange(0, BLOCK_H)
    mask = (heads < K)[:, None] & (units < H)[None, :]
    return tl.load(score_w + heads[:, None] * H + units[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _scores(
    h, tanh_w, tanh_b, gate_w, gate_b, score_w, score_b, L, H,
    K: tl.constexpr, GATED: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr, L_PAD: tl.constexpr,
    K_PAD: tl.constexpr,
):  # fmt: skip
    """Raw attention logits w . (tanh * sigmoid) + b of the embedded block h: (BLOCK_N, K_PAD) fp32."""
    heads = tl.arange(0, K_PAD)
    logits = tl.zeros((BLOCK_N, K_PAD), dtype=tl.float32)
    for h0 in range(0, H, BLOCK_H):
        tanh, gate = _gates(h, tanh_w, tanh_b, gate_w, gate_b, h0, L, H, GATED, BLOCK_H, L_PAD)
        w_t = tl.trans(_score_tile(score_w, h0, H, K, BLOCK_H, K_PAD))
        logits = tl.dot((tanh * gate).to(h.dtype), w_t.to(h.dtype), logits)
    return logits + tl.load(score_b + heads, mask=heads < K, other=0.0).to(tl.float32)[None, :]


@triton.jit
def forward_kernel(
    x, enc_w, enc_b, tanh_w, tanh_b, gate_w, gate_b, score_w, score_b, offsets, keep,
    logits, peak, total, partial, n_splits, D, L, H,
    K: tl.constexpr, HAS_ENCODER: tl.constexpr, HAS_ENCODER_BIAS: tl.constexpr, GATED: tl.constexpr,
    HAS_KEEP: tl.constexpr, KEEP_PER_HEAD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_H: tl.constexpr, L_PAD: tl.constexpr, K_PAD: tl.constexpr,
):  # fmt: skip
    """One split of one bag: its logits (T, K), and its softmax peak, sum-exp (B, S, K) and pooled sum (B, S, K, L).

    Bag b's instances are cut into ``n_splits`` spans of whole blocks; the online softmax keeps a running peak per
    head and rescales the sums when it rises (the FlashDecoding split; :func:`combine_kernel` merges the splits).
    """
    bag, split = tl.program_id(0), tl.program_id(1)
    start, end = tl.load(offsets + bag), tl.load(offsets + bag + 1)
    span = tl.cdiv(tl.cdiv(end - start, n_splits), BLOCK_N) * BLOCK_N
    lo = start + split * span
    hi = tl.minimum(lo + span, end)
    heads = tl.arange(0, K_PAD)
    cols = tl.arange(0, L_PAD)
    run_peak = tl.full((K_PAD,), float("-inf"), tl.float32)
    run_total = tl.zeros((K_PAD,), dtype=tl.float32)
    acc = tl.zeros((K_PAD, L_PAD), dtype=tl.float32)
    for r0 in range(lo, hi, BLOCK_N):
        rows = r0 + tl.arange(0, BLOCK_N)
        valid = rows < hi
        h = _embed(x, enc_w, enc_b, rows, valid, D, L, HAS_ENCODER, HAS_ENCODER_BIAS, BLOCK_N, BLOCK_D, L_PAD)
        a = _scores(h, tanh_w, tanh_b, gate_w, gate_b, score_w, score_b, L, H, K, GATED, BLOCK_N, BLOCK_H, L_PAD,
                    K_PAD)  # fmt: skip
        a = tl.where(_used(keep, rows, valid, heads, K, HAS_KEEP, KEEP_PER_HEAD), a, float("-inf"))
        tl.store(logits + rows[:, None] * K + heads[None, :], a, mask=valid[:, None] & (heads < K)[None, :])
        new_peak = tl.maximum(run_peak, tl.max(a, axis=0))
        shift = tl.where(new_peak == float("-inf"), 0.0, new_peak)  # a head with nothing kept yet stays at 0
        p = tl.exp(a - shift[None, :])
        rescale = tl.exp(run_peak - shift)
        run_total = run_total * rescale + tl.sum(p, axis=0)
        acc = acc * rescale[:, None] + tl.dot(tl.trans(p).to(h.dtype), h)
        run_peak = new_peak
    slot = bag * n_splits + split
    tl.store(peak + slot * K + heads, run_peak, mask=heads < K)
    tl.store(total + slot * K + heads, run_total, mask=heads < K)
    out = partial + (slot * K + heads[:, None]) * L + cols[None, :]
    tl.store(out, acc, mask=(heads < K)[:, None] & (cols < L)[None, :])


@triton.jit
def combine_kernel(
    peak, total, partial, pooled, lse, n_splits, L, K: tl.constexpr, BLOCK_L: tl.constexpr, K_PAD: tl.constexpr
):
    """Merge a bag's splits (log-sum-exp): pooled (B, K, L) fp32 on BLOCK_L columns, and lse (B, K) (-inf if empty)."""
    bag, block = tl.program_id(0), tl.program_id(1)
    heads = tl.arange(0, K_PAD)
    cols = block * BLOCK_L + tl.arange(0, BLOCK_L)
    head_ok = heads < K
    tile_mask = head_ok[:, None] & (cols < L)[None, :]
    top = tl.full((K_PAD,), float("-inf"), tl.float32)
    for split in range(n_splits):
        top = tl.maximum(top, tl.load(peak + (bag * n_splits + split) * K + heads, mask=head_ok, other=float("-inf")))
    shift = tl.where(top == float("-inf"), 0.0, top)
    sum_exp = tl.zeros((K_PAD,), dtype=tl.float32)
    acc = tl.zeros((K_PAD, BLOCK_L), dtype=tl.float32)
    for split in range(n_splits):
        slot = bag * n_splits + split
        scale = tl.exp(tl.load(peak + slot * K + heads, mask=head_ok, other=float("-inf")) - shift)
        sum_exp += scale * tl.load(total + slot * K + heads, mask=head_ok, other=0.0)
        part = tl.load(partial + (slot * K + heads[:, None]) * L + cols[None, :], mask=tile_mask, other=0.0)
        acc += scale[:, None] * part
    result = acc / tl.maximum(sum_exp, 1e-30)[:, None]  # a bag with nothing kept: 0 / tiny = 0
    tl.store(pooled + (bag * K + heads[:, None]) * L + cols[None, :], result, mask=tile_mask)
    log_total = tl.where(sum_exp > 0.0, shift + tl.log(tl.maximum(sum_exp, 1e-30)), float("-inf"))
    tl.store(lse + bag * K + heads, log_total, mask=head_ok & (block == 0))


@triton.jit
def backward_kernel(
    x, enc_w, enc_b, tanh_w, tanh_b, gate_w, gate_b, score_w, bag_of, keep, logits, lse, delta, d_pooled,
    d_logits, h_out, d_gates, d_pre, d_x, partials, row0, n_rows, D, L, H,
    K: tl.constexpr, HAS_ENCODER: tl.constexpr, HAS_ENCODER_BIAS: tl.constexpr, GATED: tl.constexpr,
    HAS_KEEP: tl.constexpr, KEEP_PER_HEAD: tl.constexpr, HAS_D_LOGITS: tl.constexpr, NEEDS_D_X: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_H: tl.constexpr, L_PAD: tl.constexpr, K_PAD: tl.constexpr,
):  # fmt: skip
    """Row-local gradients of BLOCK_N instances of rows row0 .. row0 + n_rows, h and the gates recomputed from x.

    With p the attention weights (from the saved logits and lse) and ``delta = d_pooled . pooled`` per bag and head:
    ``d_logits += p (d_pooled . h - delta)``, then back through w, the gates, V and U to dh (plus the pooling's
    ``sum_k p_k d_pooled_k``) and through the ReLU to the encoder's pre-activation. Written: h (rows, L) and the
    pre-activation gradient (rows, L) with an encoder, the gate pre-activation gradients (rows, 2H) [V | U], and dx
    when NEEDS_D_X; for the host's weight GEMMs. This program's row of ``partials`` (fp32) holds its sums of
    dw (K x H), db_V (H), db_U (H), db_e (L) and db_k (K), in that order.
    """
    block = tl.program_id(0)
    local = block * BLOCK_N + tl.arange(0, BLOCK_N)
    valid = local < n_rows
    rows = row0 + local.to(tl.int64)
    heads = tl.arange(0, K_PAD)
    cols = tl.arange(0, L_PAD)
    head_ok = heads < K
    h = _embed(x, enc_w, enc_b, rows, valid, D, L, HAS_ENCODER, HAS_ENCODER_BIAS, BLOCK_N, BLOCK_D, L_PAD)
    h32 = h.to(tl.float32)
    bags = tl.load(bag_of + rows, mask=valid, other=0).to(tl.int64)
    stat = bags[:, None] * K + heads[None, :]
    used = _used(keep, rows, valid, heads, K, HAS_KEEP, KEEP_PER_HEAD)
    a = tl.load(logits + rows[:, None] * K + heads[None, :], mask=used, other=float("-inf"))
    p = tl.where(used, tl.exp(a - tl.load(lse + stat, mask=used, other=0.0)), 0.0)
    d_h = tl.zeros((BLOCK_N, L_PAD), dtype=tl.float32)
    d_p = tl.zeros((BLOCK_N, K_PAD), dtype=tl.float32)
    row_mask = valid[:, None] & (cols < L)[None, :]
    for k in tl.static_range(K):
        grad = tl.load(d_pooled + (bags[:, None] * K + k) * L + cols[None, :], mask=row_mask, other=0.0)
        p_k = tl.sum(tl.where(heads[None, :] == k, p, 0.0), axis=1)
        d_h += p_k[:, None] * grad
        d_p += tl.where(heads[None, :] == k, tl.sum(grad * h32, axis=1)[:, None], 0.0)
    d_a = p * (d_p - tl.load(delta + stat, mask=used, other=0.0))
    if HAS_D_LOGITS:
        d_a += tl.load(d_logits + rows[:, None] * K + heads[None, :], mask=used, other=0.0)
    out = partials + block * (K * H + 2 * H + L + K)
    tl.store(out + K * H + 2 * H + L + heads, tl.sum(d_a, axis=0), mask=head_ok)
    for h0 in range(0, H, BLOCK_H):
        units = h0 + tl.arange(0, BLOCK_H)
        unit_ok = units < H
        tanh, gate = _gates(h, tanh_w, tanh_b, gate_w, gate_b, h0, L, H, GATED, BLOCK_H, L_PAD)
        d_q = tl.dot(d_a, _score_tile(score_w, h0, H, K, BLOCK_H, K_PAD))
        d_w = tl.dot(tl.trans(d_a), tanh * gate)
        tl.store(out + heads[:, None] * H + units[None, :], d_w, mask=head_ok[:, None] & unit_ok[None, :])
        d_v = d_q * gate * (1.0 - tanh * tanh)
        tl.store(out + K * H + units, tl.sum(d_v, axis=0), mask=unit_ok)
        gate_rows = d_gates + local[:, None] * (2 * H) + units[None, :]
        tl.store(gate_rows, d_v.to(d_gates.dtype.element_ty), mask=valid[:, None] & unit_ok[None, :])
        tile_mask = unit_ok[:, None] & (cols < L)[None, :]
        v = tl.load(tanh_w + units[:, None] * L + cols[None, :], mask=tile_mask, other=0.0)
        d_h = tl.dot(d_v.to(h.dtype), v, d_h)
        if GATED:
            d_u = d_q * tanh * gate * (1.0 - gate)
            tl.store(out + K * H + H + units, tl.sum(d_u, axis=0), mask=unit_ok)
            tl.store(gate_rows + H, d_u.to(d_gates.dtype.element_ty), mask=valid[:, None] & unit_ok[None, :])
            u = tl.load(gate_w + units[:, None] * L + cols[None, :], mask=tile_mask, other=0.0)
            d_h = tl.dot(d_u.to(h.dtype), u, d_h)
    if HAS_ENCODER:
        d_h = tl.where(h32 > 0.0, d_h, 0.0)  # through the ReLU: the pre-activation's gradient
        tl.store(out + K * H + 2 * H + cols, tl.sum(d_h, axis=0), mask=cols < L)
        tl.store(h_out + local[:, None] * L + cols[None, :], h, mask=row_mask)
        tl.store(d_pre + local[:, None] * L + cols[None, :], d_h.to(d_pre.dtype.element_ty), mask=row_mask)
        if NEEDS_D_X:
            d_pre_cast = d_h.to(h.dtype)
            for d0 in range(0, D, BLOCK_D):
                d = d0 + tl.arange(0, BLOCK_D)
                w = tl.load(enc_w + cols[:, None] * D + d[None, :], mask=(cols < L)[:, None] & (d < D)[None, :],
                            other=0.0)  # fmt: skip
                d_x_tile = tl.dot(d_pre_cast, w)
                tl.store(d_x + rows[:, None] * D + d[None, :], d_x_tile.to(d_x.dtype.element_ty),
                         mask=valid[:, None] & (d < D)[None, :])  # fmt: skip
    elif NEEDS_D_X:
        tl.store(d_x + rows[:, None] * L + cols[None, :], d_h.to(d_x.dtype.element_ty), mask=row_mask)
