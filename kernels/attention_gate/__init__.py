"""``attention_gate``: the element-wise part of Attention U-Net's additive grid gate, fused, 2-D and 3-D.

Between the gate's convolutions (theta, phi and the output transform W stay cuDNN's), with ``theta_x`` and ``phi_g``
on the coarse grid S_c and the skip feature ``x`` on the fine grid S::

    alpha_c = sigmoid(psi . ReLU(theta_x + phi_g) + b_psi)     (B, 1, *S_c)
    alpha   = alpha_c resampled (bi/trilinear, align_corners=False) to S       (B, 1, *S)
    gated   = alpha * x                                         (B, F_x, *S)

The Triton path (:mod:`.function`) runs this in two kernels forward (coarse: add, ReLU, psi dot, sigmoid; fine:
upsampling fused with the product) and two backward (fine: the x gradient and alpha's; coarse: the upsampling's
transpose, sigmoid, psi and ReLU gradients), saving only alpha_c (fp32, one value per coarse voxel) besides the
inputs; alpha and the ReLU are recomputed. Arithmetic is fp32 for float16, bfloat16 and float32 storage.

Supported on the Triton path: any sizes and resampling ratios, up or down, integer or not (the source index is
``F.interpolate``'s ``max((j + 0.5) * n_coarse / n_fine - 0.5, 0)`` in fp32), contiguous or not (inputs are made
contiguous). float64 inputs always run the torch reference (the kernels compute in fp32).
"""

from __future__ import annotations

import torch

from .. import reference
from ..dispatch import use_triton

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def attention_gate(
    theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gate's coefficients and the gated skip feature (module docstring), differentiable on both paths.

    Args:
        theta_x: (B, F_int, *S_c) x's strided projection, on the coarse grid S_c (2 or 3 spatial dims).
        phi_g: (B, F_int, *S_c) the gating signal's projection, already resampled to theta_x's grid.
        psi_weight: (F_int,) psi's 1 x 1 convolution weights.
        psi_bias: (1,) psi's bias.
        x: (B, F_x, *S) the skip feature on the fine grid S.

    Returns:
        gated: (B, F_x, *S) ``alpha * x`` in the promoted dtype of theta_x and x, and alpha: (B, 1, *S) in (0, 1),
        in theta_x's dtype.

    Raises:
        ValueError: shapes that do not fit together (see Args).
    """
    _check(theta_x, phi_g, psi_weight, psi_bias, x)
    tensors = (theta_x, phi_g, psi_weight, psi_bias, x)
    if any(t.dtype not in KERNEL_DTYPES for t in tensors) or not use_triton(*tensors):
        return reference.attention_gate(*tensors)
    from .function import AttentionGateFunction  # triton imports only where it runs

    return AttentionGateFunction.apply(*tensors)


def _check(
    theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor, x: torch.Tensor
) -> None:
    """Raise ValueError where the arguments' shapes do not fit together (see :func:`attention_gate`)."""
    if theta_x.dim() not in (4, 5) or x.dim() != theta_x.dim():
        raise ValueError(f"theta_x and x must both be 4-D or 5-D, got {tuple(theta_x.shape)} and {tuple(x.shape)}")
    if phi_g.shape != theta_x.shape:
        raise ValueError(f"phi_g {tuple(phi_g.shape)} must have theta_x's shape {tuple(theta_x.shape)}")
    if x.shape[0] != theta_x.shape[0]:
        raise ValueError(f"x and theta_x must share the batch, got {x.shape[0]} and {theta_x.shape[0]}")
    if psi_weight.shape != theta_x.shape[1:2] or psi_bias.shape != (1,):
        raise ValueError(f"psi_weight must be ({theta_x.shape[1]},) and psi_bias (1,), got "
                         f"{tuple(psi_weight.shape)} and {tuple(psi_bias.shape)}")  # fmt: skip
