"""``abmil_pool``: ABMIL's instance encoder, gated attention and softmax pooling in one pass over the features.

For every instance x (D,) of a bag: ``h = ReLU(W_e x + b_e)`` (or ``h = x`` without an encoder), K attention logits
``a_k = w_k . (tanh(V h + b_V) * sigmoid(U h + b_U)) + b_k`` (plain tanh attention without U), and per bag and head
the pooled embedding ``sum_i softmax_i(a_k) h_i`` (B, K, L) over its kept instances; the raw logits come back too
(heatmaps, ACMIL's branches), -inf where an instance is not kept. A bag (head) with nothing kept pools to zeros.

Bags come padded, features (B, N, D) with a mask (B, N), or packed, features (T, D) with CSR offsets (B + 1,) and a
mask (T,); the padded layout is the packed one with ``offsets = N * arange(B + 1)`` (a view, no copy). The mask is
padding and instance masking at once (counterfactual removal): False instances get no attention. A mask with a
trailing K axis, (B, N, K) or (T, K), masks each head on its own (ACMIL's STKIM drops different instances per branch).

The Triton path (:mod:`.kernel`, :mod:`.function`) streams the instances of each bag in splits with an online softmax
and merges the splits by log-sum-exp (FlashDecoding); it saves only the logits and the per-bag log-sum-exp for the
backward, which recomputes h and the gates from the features (FlashAttention style): O(N) saved scalars instead of
O(N (L + H)) activations. It has no dropout: the models call it only where no dropout is active. fp32 inputs use TF32
tensor-core products on a GPU (``tl.dot``'s default: about 1e-3 relative error); bf16 and fp16 accumulate in fp32.
The torch reference is :func:`pathattn.kernels.reference.abmil_pool`.

On a GPU the launchers try their block configurations from the most shared memory to the least
(:meth:`.function.Config.gpu`) and use the first that the device can load. Where none fits (on a card with 99 KiB
a block: bf16 above L = 1024, fp32 above L = 512; ``python kernels/bench/resources.py`` lists what sizes need),
``PATHATTN_KERNELS=auto`` runs the torch reference with a warning and ``PATHATTN_KERNELS=triton`` raises
:class:`~..dispatch.KernelResourceError`.
"""

from __future__ import annotations

import warnings

import torch

from .. import reference
from ..dispatch import KernelResourceError, kernel_choice, use_triton
from ..reference import ABMILWeights


def abmil_pool(
    features: torch.Tensor,
    weights: ABMILWeights,
    *,
    mask: torch.Tensor | None = None,
    offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused ABMIL attention pooling of padded or packed bags (module docstring).

    Args:
        features: (B, N, D) padded bags, or (T, D) packed bags (then ``offsets`` is required).
        weights: encoder and attention parameters (cast to the features' dtype), see
            :class:`~pathattn.kernels.reference.ABMILWeights`.
        mask: bool, (B, N) or (T,), True for the instances that are pooled, or (B, N, K) or (T, K) per head; None: all.
        offsets: (B + 1,) int64, packed bags only: bag b is ``features[offsets[b]:offsets[b + 1]]`` (0, rising, T).

    Returns:
        pooled: (B, K, L) per-head bag embeddings, and logits: (B, N, K) or (T, K) raw attention logits, -inf where
        ``mask`` is False; both in the features' dtype.

    Raises:
        ValueError: shapes, dtypes or offsets that do not fit (see Args).
    """
    padded = features.ndim == 3
    _check(features, weights, mask, offsets)
    if padded:
        batch, n_slots = features.shape[:2]
        offsets = torch.arange(batch + 1, device=features.device) * n_slots
        features = features.reshape(batch * n_slots, -1)
        mask = None if mask is None else mask.reshape(batch * n_slots, *mask.shape[2:])
    weights = ABMILWeights(*(None if w is None else w.to(features.dtype) for w in weights))
    if use_triton(features, offsets, mask, *weights):
        pooled, logits = _fused(features, offsets, weights, mask)
    else:
        pooled, logits = reference.abmil_pool(features, offsets, weights, mask)
    return pooled, (logits.view(batch, n_slots, -1) if padded else logits)


def _check(
    features: torch.Tensor, weights: ABMILWeights, mask: torch.Tensor | None, offsets: torch.Tensor | None
) -> None:
    """Raise ValueError where the arguments of :func:`abmil_pool` do not fit each other."""
    if features.ndim not in (2, 3) or not features.is_floating_point():
        raise ValueError(f"features must be floating (B, N, D) or (T, D), got {tuple(features.shape)} {features.dtype}")
    if (features.ndim == 3) == (offsets is not None):
        raise ValueError("pass offsets with packed (T, D) features, and only with them")
    n_heads, n_hidden = weights.score_weight.shape
    shapes = (features.shape[:-1], (*features.shape[:-1], n_heads))
    if mask is not None and (mask.dtype != torch.bool or mask.shape not in shapes):
        raise ValueError(f"mask must be bool {' or '.join(str(tuple(s)) for s in shapes)}, got {tuple(mask.shape)} "
                         f"{mask.dtype}")  # fmt: skip
    if offsets is not None:
        if offsets.dtype != torch.int64 or offsets.ndim != 1 or len(offsets) == 0:
            raise ValueError(f"offsets must be (B + 1,) int64, got {tuple(offsets.shape)} {offsets.dtype}")
        if int(offsets[0]) != 0 or int(offsets[-1]) != len(features) or bool((offsets.diff() < 0).any()):
            raise ValueError(f"offsets must rise from 0 to T = {len(features)}")
    n_embed = features.shape[-1] if weights.encoder_weight is None else weights.encoder_weight.shape[0]
    expected = {
        "tanh_weight": (n_hidden, n_embed),
        "tanh_bias": (n_hidden,),
        "score_bias": (n_heads,),
        "gate_weight": (n_hidden, n_embed),
        "gate_bias": (n_hidden,),
        "encoder_weight": (n_embed, features.shape[-1]),
        "encoder_bias": (n_embed,),
    }
    for name, shape in expected.items():
        tensor = getattr(weights, name)
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must be {shape}, got {tuple(tensor.shape)}")
    if (weights.gate_weight is None) != (weights.gate_bias is None):
        raise ValueError("gate_weight and gate_bias come together (gated attention) or not at all (plain)")
    if weights.encoder_weight is None and weights.encoder_bias is not None:
        raise ValueError("encoder_bias needs encoder_weight")


def _fused(
    features: torch.Tensor, offsets: torch.Tensor, weights: ABMILWeights, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Triton path; with ``PATHATTN_KERNELS=auto``, the reference (and a warning) where no kernel fits the GPU."""
    from .function import ABMILPoolFunction  # triton imports only where it runs

    inputs = (t if t is None else t.contiguous() for t in (features, offsets, mask, *weights))
    try:
        pooled, logits = ABMILPoolFunction.apply(*inputs)
    except KernelResourceError as error:
        if kernel_choice() == "triton":
            raise
        warnings.warn(f"{error}. Running the torch reference (PATHATTN_KERNELS=auto).", RuntimeWarning, stacklevel=3)
        return reference.abmil_pool(features, offsets, weights, mask)
    return pooled.to(features.dtype), logits.to(features.dtype)
