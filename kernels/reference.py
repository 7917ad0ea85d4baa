"""Pure-torch specification of pathattn's attention ops (the fallback and the test oracle).

Bags of different sizes share a batch through a padding mask: ``mask[b, n]`` is True for a real
instance and False for padding. Padding never receives attention, and a bag with no real instance
pools to zeros rather than NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Softmax over instances that ignores padding.

    Args:
        logits: (..., N, ...) raw attention scores.
        mask: boolean, broadcastable to ``logits``; True marks real instances. None: no padding.
        dim: the instance dimension.

    Returns:
        weights: same shape as ``logits``, summing to 1 over real instances (0 where masked; all 0 for a
        bag without real instances).
    """
    if mask is None:
        return torch.softmax(logits, dim=dim)
    mask = mask.to(torch.bool)
    filled = logits.masked_fill(~mask, float("-inf"))
    peak = filled.amax(dim=dim, keepdim=True).nan_to_num(neginf=0.0).detach()
    exp = torch.exp(filled - peak) * mask
    total = exp.sum(dim=dim, keepdim=True)
    return exp / total.clamp_min(torch.finfo(exp.dtype).tiny)


def attention_pool(
    logits: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention-weighted mean of instance features (ABMIL pooling).

    Args:
        logits: (B, N, H) raw attention of H heads (branches or classes).
        values: (B, N, D) instance features.
        mask: (B, N) bool, True for real instances; None when no bag is padded.

    Returns:
        pooled: (B, H, D) per-head bag embeddings, and weights: (B, N, H) attention weights.
    """
    weights = masked_softmax(logits, None if mask is None else mask[..., None], dim=1)
    return torch.einsum("bnh,bnd->bhd", weights, values), weights


def attention_gate(
    theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The element-wise part of Attention U-Net's additive grid gate (Oktay et al. 2018), 2-D or 3-D.

    ``alpha_c = sigmoid(psi . ReLU(theta_x + phi_g) + b_psi)`` on the coarse grid, ``alpha`` = ``alpha_c``
    resampled (bi/trilinear, ``align_corners=False``) to x's grid, and ``gated = alpha * x``: exactly what
    ``GridAttentionGate`` computes between its convolutions (theta, phi and the output transform stay outside).

    Args:
        theta_x: (B, F_int, *S_c) x's strided projection, on the coarse grid S_c (2 or 3 spatial dims).
        phi_g: (B, F_int, *S_c) the gating signal's projection, already resampled to theta_x's grid.
        psi_weight: (F_int,) psi's 1 x 1 convolution weights.
        psi_bias: (1,) psi's bias.
        x: (B, F_x, *S) the skip feature on the fine grid S.

    Returns:
        gated: (B, F_x, *S) ``alpha * x``, and alpha: (B, 1, *S) in (0, 1), in theta_x's dtype.
    """
    relu = torch.relu(theta_x + phi_g)
    spatial = relu.dim() - 2
    conv = torch.conv2d if spatial == 2 else torch.conv3d
    weight = psi_weight.to(relu.dtype).reshape(1, -1, *([1] * spatial))
    alpha = torch.sigmoid(conv(relu, weight, psi_bias.to(relu.dtype)))
    if alpha.shape[2:] != x.shape[2:]:
        mode = "bilinear" if spatial == 2 else "trilinear"
        alpha = torch.nn.functional.interpolate(alpha, size=x.shape[2:], mode=mode, align_corners=False)
    return alpha * x, alpha


def cancellation(dtype: torch.dtype) -> float:
    """The remaining attention share below which :func:`masked_pool_removed` recomputes a set exactly.

    ``1 - sum of removed weights`` loses ``eps / share`` of relative precision; float64 keeps 1e-13, float32 ~1e-5.
    """
    return 1e-3 if dtype == torch.float64 else 2.0**-6


def masked_pool(logits: torch.Tensor, values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Softmax-attention pooling of one bag under M masks: the dense definition.

    Args:
        logits: (N, H) attention logits of H heads.
        values: (N, C) instance values (head contributions, or embeddings).
        masks: (M, N) bool, True for the instances each mask keeps.

    Returns:
        (M, H, C) pooled values in the dtype of ``values`` (zeros for a mask that keeps nothing).
    """
    compute = torch.promote_types(values.dtype, torch.float32)
    weights = masked_softmax(logits.to(compute)[None], masks[..., None], dim=1)  # (M, N, H)
    return torch.einsum("mnh,nc->mhc", weights, values.to(compute)).to(values.dtype)


def removal_masks(
    keep: torch.Tensor, indices: torch.Tensor, offsets: torch.Tensor | None, rows: torch.Tensor
) -> torch.Tensor:
    """(R, N) bool masks of the sets ``rows`` (R,): ``keep`` (N,) without ``indices[offsets[r]:offsets[r + 1]]``.

    ``offsets`` None: one instance per set (``indices[r]``).
    """
    if offsets is None:
        offsets = torch.arange(len(indices) + 1, device=keep.device)
    counts = offsets[rows + 1] - offsets[rows]
    owner = torch.repeat_interleave(torch.arange(len(rows), device=keep.device), counts)  # (T_rows,)
    first = torch.cumsum(counts, 0) - counts  # each row's first position among the gathered members
    positions = offsets[rows][owner] + torch.arange(len(owner), device=keep.device) - first[owner]
    masks = keep.expand(len(rows), -1).clone()
    masks[owner, indices[positions]] = False
    return masks


def masked_pool_removed(
    logits: torch.Tensor,
    values: torch.Tensor,
    keep: torch.Tensor,
    indices: torch.Tensor,
    offsets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pooling of ``keep`` without each of M sets, in O((N + T) H C) time and memory (no (M, N) mask).

    With ``w`` the softmax of the logits over ``keep`` and ``p = sum_i w_i v_i``, removing a set S gives
    ``(p - sum_{j in S} w_j v_j) / (1 - sum_{j in S} w_j)``. Where the remaining share is below
    :func:`cancellation` (a set holding nearly all the attention, or all of ``keep``), the subtraction would lose
    digits and the set is recomputed by :func:`masked_pool`.

    Args:
        logits: (N, H) attention logits.
        values: (N, C) instance values.
        keep: (N,) bool, the bag the sets are removed from.
        indices: (T,) int64 instances of the sets, set m at ``indices[offsets[m]:offsets[m + 1]]`` (distinct within
            a set; an instance outside ``keep`` changes nothing).
        offsets: (M + 1,) int64 CSR offsets into ``indices``; None: one instance per set (``all_but_one``).

    Returns:
        (M, H, C) pooled values in the dtype of ``values``.
    """
    compute = torch.promote_types(values.dtype, torch.float32)
    # instances last ((H, N), (C, N)): every pass below then runs along contiguous rows, several times faster on a
    # CPU than (N, H, C) with its size-1 broadcasts (free when the caller passes transposed (H, N) and (C, N) data)
    a, v = logits.to(compute).T, values.to(compute).T
    outside = ~keep
    shift = a.masked_fill(outside, float("-inf")).amax(dim=1, keepdim=True).nan_to_num(neginf=0.0).detach()
    exp = torch.exp(a - shift).masked_fill(outside, 0.0)  # (H, N): the unnormalised weights w
    total = exp.sum(dim=1, keepdim=True)  # (H, 1)
    share = exp.index_select(1, indices)  # (H, T)
    gone = share[:, None] * v.index_select(1, indices)  # (H, C, T)
    if offsets is not None:
        sets = torch.repeat_interleave(torch.arange(len(offsets) - 1, device=keep.device), offsets.diff())  # (T,)
        share = share.new_zeros(len(share), len(offsets) - 1).index_add_(1, sets, share)
        gone = gone.new_zeros(*gone.shape[:2], len(offsets) - 1).index_add_(2, sets, gone)
    remaining = total - share  # (H, M), unnormalised like the weights: one pass fewer than normalising them
    pooled = ((exp @ v.T)[..., None] - gone) / remaining.clamp_min(torch.finfo(compute).tiny)[:, None]  # (H, C, M)
    pooled = pooled.permute(2, 0, 1)  # (M, H, C), a view
    rows = (remaining <= cancellation(compute) * total).any(dim=0).nonzero()[:, 0]
    if len(rows):
        pooled[rows] = masked_pool(a.T, v.T, removal_masks(keep, indices, offsets, rows))
    return pooled.to(values.dtype)


def masked_pool_added(
    logits: torch.Tensor, values: torch.Tensor, keep: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """Pooling of ``keep`` with each of ``indices`` (M,) added, in O((N + M) H C) (no (M, N) mask).

    With ``L`` the log-sum-exp of the logits over ``keep`` and ``p`` its pooling, adding j gives
    ``p + t (v_j - p)``, ``t = sigmoid(a_j - L)`` (1 for an empty ``keep``; 0 for an instance already kept).

    Args:
        logits: (N, H) attention logits.
        values: (N, C) instance values.
        keep: (N,) bool, the bag the instances are added to.
        indices: (M,) int64 instances, one per output row.

    Returns:
        (M, H, C) pooled values in the dtype of ``values``.
    """
    compute = torch.promote_types(values.dtype, torch.float32)
    a, v = logits.to(compute), values.to(compute)
    pooled = masked_softmax(a, keep[:, None], dim=0).T @ v  # (H, C)
    lse = torch.logsumexp(a.masked_fill(~keep[:, None], float("-inf")), dim=0)  # (H,), -inf for an empty keep
    share = torch.sigmoid(a.index_select(0, indices) - lse).masked_fill(keep[indices, None], 0.0)  # (M, H)
    return (pooled + share[..., None] * (v.index_select(0, indices)[:, None] - pooled)).to(values.dtype)


class ABMILWeights(NamedTuple):
    """The parameters of ABMIL's instance encoder and attention scorer, as :func:`abmil_pool` takes them.

    Attributes:
        tanh_weight: (H, L) V.
        tanh_bias: (H,) b_V.
        score_weight: (K, H) w, one row per attention head.
        score_bias: (K,) b_k.
        gate_weight: (H, L) U for gated attention; None: plain tanh attention.
        gate_bias: (H,) b_U, given with ``gate_weight``.
        encoder_weight: (L, D) W_e of the encoder ``h = ReLU(W_e x + b_e)``; None: no encoder (``h = x``, L = D).
        encoder_bias: (L,) b_e, or None (no bias, or no encoder).
    """

    tanh_weight: torch.Tensor
    tanh_bias: torch.Tensor
    score_weight: torch.Tensor
    score_bias: torch.Tensor
    gate_weight: torch.Tensor | None = None
    gate_bias: torch.Tensor | None = None
    encoder_weight: torch.Tensor | None = None
    encoder_bias: torch.Tensor | None = None


def abmil_scores(features: torch.Tensor, weights: ABMILWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """ABMIL's instance embeddings and raw attention logits.

    Args:
        features: (T, D) instance features.
        weights: the encoder and attention parameters.

    Returns:
        embeddings: (T, L) ``h``, and logits: (T, K) ``w_k . (tanh(V h + b_V) * sigmoid(U h + b_U)) + b_k``.
    """
    linear = torch.nn.functional.linear
    h = features
    if weights.encoder_weight is not None:
        h = torch.relu(linear(features, weights.encoder_weight, weights.encoder_bias))
    hidden = torch.tanh(linear(h, weights.tanh_weight, weights.tanh_bias))
    if weights.gate_weight is not None:
        hidden = hidden * torch.sigmoid(linear(h, weights.gate_weight, weights.gate_bias))
    return h, linear(hidden, weights.score_weight, weights.score_bias)


def abmil_pool(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, keep: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """ABMIL's attention pooling of packed bags: bag b is ``features[offsets[b]:offsets[b + 1]]``.

    ``pooled[b, k] = sum_i softmax_i(a[:, k]) h_i`` over the kept instances of bag b (zeros for a bag with none).

    Args:
        features: (T, D) instance features of all bags, one after the other.
        offsets: (B + 1,) int64, rising from 0 to T.
        weights: the encoder and attention parameters.
        keep: (T,) bool, True for the instances that are pooled, or (T, K) per head; None: all.

    Returns:
        pooled: (B, K, L) per-head bag embeddings, and logits: (T, K) raw attention logits, -inf where ``keep`` is
        False.
    """
    h, logits = abmil_scores(features, weights)
    n_bags = len(offsets) - 1
    bag = torch.repeat_interleave(torch.arange(n_bags, device=offsets.device), offsets.diff(), output_size=len(h))
    if keep is not None:
        logits = logits.masked_fill(~(keep if keep.ndim == 2 else keep[:, None]), float("-inf"))
    peak = logits.new_full((n_bags, logits.shape[1]), float("-inf"))
    peak = peak.scatter_reduce(0, bag[:, None].expand_as(logits), logits.detach(), "amax").nan_to_num(neginf=0.0)
    exp = torch.exp(logits - peak[bag])  # 0 where not kept
    total = exp.new_zeros(peak.shape).index_add(0, bag, exp)
    attention = exp / total.clamp_min(torch.finfo(exp.dtype).tiny)[bag]
    zeros = h.new_zeros(n_bags, h.shape[1])
    heads = [zeros.index_add(0, bag, attention[:, k, None] * h) for k in range(logits.shape[1])]
    return torch.stack(heads, dim=1), logits
