"""Triton kernels of the fused attention gate (``@triton.jit`` code only; the launchers are in ``function.py``).

Every tensor is contiguous (B, C, D, H, W), a 2-D input being depth 1. The coarse grid (Dc, Hc, Wc) is theta_x's,
the fine grid (D, H, W) is x's. Programs run over (blocks of BLOCK_V voxels, batch samples) and loop over channels
in tiles of BLOCK_C. Arithmetic is fp32 whatever the storage dtype.

Linear resampling is ``F.interpolate(..., align_corners=False)``'s, axis by axis: fine index ``j`` reads the coarse
source ``s = max(scale * (j + 0.5) - 0.5, 0)`` with ``scale = n_coarse / n_fine`` (fp32, computed on the host as
torch does), lower index ``floor(s)``, upper index ``min(lower + 1, n_coarse - 1)``, upper weight ``s - lower``.
Its transpose (the backward) gathers, for each coarse voxel, the fine voxels that read it: along an axis those
are at most ``reach`` consecutive indices from :func:`_first_fine`, each weighted by the forward's own formula.
"""

import triton
import triton.language as tl


@triton.jit
def _source(fine, scale, n_coarse):
    """The coarse neighbours of fine indices along one axis: lower index, upper index, weight of the upper."""
    src = tl.maximum(scale * (fine.to(tl.float32) + 0.5) - 0.5, 0.0)
    low = tl.minimum(src.to(tl.int32), n_coarse - 1)
    high = tl.minimum(low + 1, n_coarse - 1)
    lam = tl.minimum(tl.maximum(src - low.to(tl.float32), 0.0), 1.0)
    return low, high, lam


@triton.jit
def _bilinear(plane, h0, h1, lh, w0, w1, lw, Wc, mask):
    """Bilinear interpolation in one coarse (Hc, Wc) plane (pointers ``plane``) at the given neighbours."""
    top = (1.0 - lw) * tl.load(plane + h0 * Wc + w0, mask=mask, other=0.0)
    top += lw * tl.load(plane + h0 * Wc + w1, mask=mask, other=0.0)
    bottom = (1.0 - lw) * tl.load(plane + h1 * Wc + w0, mask=mask, other=0.0)
    bottom += lw * tl.load(plane + h1 * Wc + w1, mask=mask, other=0.0)
    return (1.0 - lh) * top + lh * bottom


@triton.jit
def _upsample(coarse, offs, mask, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w, IS_3D: tl.constexpr):
    """One sample's coarse map (fp32, at ``coarse``) resampled to the fine voxels ``offs`` (BLOCK_V,)."""
    h0, h1, lh = _source((offs // W) % H, scale_h, Hc)
    w0, w1, lw = _source(offs % W, scale_w, Wc)
    if IS_3D:
        d0, d1, ld = _source(offs // (W * H), scale_d, Dc)
        low = _bilinear(coarse + d0 * Hc * Wc, h0, h1, lh, w0, w1, lw, Wc, mask)
        high = _bilinear(coarse + d1 * Hc * Wc, h0, h1, lh, w0, w1, lw, Wc, mask)
        return (1.0 - ld) * low + ld * high
    return _bilinear(coarse, h0, h1, lh, w0, w1, lw, Wc, mask)


@triton.jit
def _first_fine(coarse, n_coarse, n_fine):
    """The first fine index whose interpolation reads coarse index ``coarse`` with a nonzero weight (exact)."""
    num = (2 * coarse.to(tl.int64) - 1) * n_fine - n_coarse
    return tl.where(num < 0, 0, num // (2 * n_coarse) + 1).to(tl.int32)


@triton.jit
def _weight(fine, coarse, scale, n_coarse, n_fine):
    """The weight with which fine indices ``fine`` read coarse indices ``coarse`` along one axis (0 off the grid)."""
    low, high, lam = _source(fine, scale, n_coarse)
    weight = tl.where(low == coarse, 1.0 - lam, 0.0) + tl.where(high == coarse, lam, 0.0)
    return tl.where(fine < n_fine, weight, 0.0)


@triton.jit
def _downsample_transposed(fine, offs, mask, D, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w, REACH_D, REACH_H, REACH_W):
    """The transpose of :func:`_upsample`: one sample's fine map (fp32) summed onto coarse voxels ``offs``."""
    cw = offs % Wc
    ch = (offs // Wc) % Hc
    cd = offs // (Wc * Hc)
    first_d = _first_fine(cd, Dc, D)
    first_h = _first_fine(ch, Hc, H)
    first_w = _first_fine(cw, Wc, W)
    total = tl.zeros(offs.shape, dtype=tl.float32)
    for rd in range(REACH_D):
        fd = first_d + rd
        wd = _weight(fd, cd, scale_d, Dc, D)
        for rh in range(REACH_H):
            fh = first_h + rh
            wdh = wd * _weight(fh, ch, scale_h, Hc, H)
            for rw in range(REACH_W):
                fw = first_w + rw
                weight = wdh * _weight(fw, cw, scale_w, Wc, W)
                read = mask & (weight != 0.0)
                total += weight * tl.load(fine + (fd * H + fh) * W + fw, mask=read, other=0.0)
    return total


@triton.jit
def _channel_tile(base, c0, n_channels, n_vox, offs, mask, BLOCK_C: tl.constexpr):
    """Offsets (BLOCK_C, BLOCK_V) of channels c0.. at voxels ``offs`` from ``base``, the channel index and the mask."""
    chans = c0 + tl.arange(0, BLOCK_C)
    tile = base + chans.to(tl.int64)[:, None] * n_vox + offs[None, :]
    return tile, chans, (chans < n_channels)[:, None] & mask[None, :]


@triton.jit
def _pre_activation(theta, phi, tile, tile_mask):
    """theta_x + phi_g (fp32) on a channel tile."""
    pre = tl.load(theta + tile, mask=tile_mask, other=0.0).to(tl.float32)
    return pre + tl.load(phi + tile, mask=tile_mask, other=0.0).to(tl.float32)


@triton.jit
def coarse_forward_kernel(
    theta, phi, psi_w, psi_b, alpha_c, n_coarse, F_INT, BLOCK_V: tl.constexpr, BLOCK_C: tl.constexpr
):
    """alpha_c = sigmoid(psi . ReLU(theta_x + phi_g) + b_psi) (fp32, (B, n_coarse)) on BLOCK_V coarse voxels."""
    b = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask = offs < n_coarse
    base = b * F_INT * n_coarse
    logit = tl.zeros([BLOCK_V], dtype=tl.float32)
    for c0 in range(0, F_INT, BLOCK_C):
        tile, chans, tile_mask = _channel_tile(base, c0, F_INT, n_coarse, offs, mask, BLOCK_C)
        relu = tl.maximum(_pre_activation(theta, phi, tile, tile_mask), 0.0)
        weight = tl.load(psi_w + chans, mask=chans < F_INT, other=0.0).to(tl.float32)
        logit += tl.sum(relu * weight[:, None], axis=0)
    logit += tl.load(psi_b).to(tl.float32)
    tl.store(alpha_c + b * n_coarse + offs, tl.sigmoid(logit), mask=mask)


@triton.jit
def gate_forward_kernel(
    x, alpha_c, gated, alpha, n_vox, n_coarse, F_X, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w,
    IS_3D: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """alpha = alpha_c resampled to x's grid (B, n_vox) and gated = alpha * x (B, F_X, n_vox) on BLOCK_V voxels."""
    b = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask = offs < n_vox
    a = _upsample(alpha_c + b * n_coarse, offs, mask, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w, IS_3D)
    tl.store(alpha + b * n_vox + offs, a.to(alpha.dtype.element_ty), mask=mask)
    base = b * F_X * n_vox
    for c0 in range(0, F_X, BLOCK_C):
        tile, _, tile_mask = _channel_tile(base, c0, F_X, n_vox, offs, mask, BLOCK_C)
        value = tl.load(x + tile, mask=tile_mask, other=0.0).to(tl.float32)
        tl.store(gated + tile, (a[None, :] * value).to(gated.dtype.element_ty), mask=tile_mask)


@triton.jit
def gate_backward_kernel(
    x, alpha_c, d_gated, d_alpha, d_x, d_fine, n_vox, n_coarse, F_X, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w,
    HAS_D_ALPHA: tl.constexpr, IS_3D: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """d_x = d_gated * alpha, and d_fine = sum_c d_gated * x (+ d_alpha): the fine grid's alpha gradient (fp32)."""
    b = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask = offs < n_vox
    a = _upsample(alpha_c + b * n_coarse, offs, mask, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w, IS_3D)
    base = b * F_X * n_vox
    total = tl.zeros([BLOCK_V], dtype=tl.float32)
    for c0 in range(0, F_X, BLOCK_C):
        tile, _, tile_mask = _channel_tile(base, c0, F_X, n_vox, offs, mask, BLOCK_C)
        grad = tl.load(d_gated + tile, mask=tile_mask, other=0.0).to(tl.float32)
        tl.store(d_x + tile, (grad * a[None, :]).to(d_x.dtype.element_ty), mask=tile_mask)
        total += tl.sum(grad * tl.load(x + tile, mask=tile_mask, other=0.0).to(tl.float32), axis=0)
    if HAS_D_ALPHA:
        total += tl.load(d_alpha + b * n_vox + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(d_fine + b * n_vox + offs, total, mask=mask)


@triton.jit
def coarse_backward_kernel(
    theta, phi, psi_w, alpha_c, d_fine, d_pre, d_psi, n_coarse, n_vox, F_INT, D, H, W, Dc, Hc, Wc,
    scale_d, scale_h, scale_w, REACH_D, REACH_H, REACH_W, BLOCK_V: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """d_pre = d(theta_x + phi_g) (B, F_INT, n_coarse) and this program's row of psi gradient partial sums.

    ``d_psi`` is (programs, F_INT + 1) fp32: the weight gradients, then the bias gradient, of BLOCK_V coarse voxels.
    """
    b = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask = offs < n_coarse
    d_coarse = _downsample_transposed(
        d_fine + b * n_vox, offs, mask, D, H, W, Dc, Hc, Wc, scale_d, scale_h, scale_w, REACH_D, REACH_H, REACH_W
    )
    a = tl.load(alpha_c + b * n_coarse + offs, mask=mask, other=0.0)
    d_logit = d_coarse * a * (1.0 - a)
    row = d_psi + (b * tl.num_programs(0) + tl.program_id(0)) * (F_INT + 1)
    tl.store(row + F_INT, tl.sum(d_logit, axis=0))
    base = b * F_INT * n_coarse
    for c0 in range(0, F_INT, BLOCK_C):
        tile, chans, tile_mask = _channel_tile(base, c0, F_INT, n_coarse, offs, mask, BLOCK_C)
        pre = _pre_activation(theta, phi, tile, tile_mask)
        weight = tl.load(psi_w + chans, mask=chans < F_INT, other=0.0).to(tl.float32)
        grad = tl.where(pre > 0.0, d_logit[None, :] * weight[:, None], 0.0)
        tl.store(d_pre + tile, grad.to(d_pre.dtype.element_ty), mask=tile_mask)
        tl.store(row + chans, tl.sum(tl.maximum(pre, 0.0) * d_logit[None, :], axis=1), mask=chans < F_INT)
