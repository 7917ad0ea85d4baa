"""Launchers of the fused attention gate's kernels and its ``torch.autograd.Function``.

Forward: two kernels, ``coarse_forward`` (theta_x, phi_g -> alpha_c, fp32, on the coarse grid) and
``gate_forward`` (alpha_c, x -> alpha, alpha * x, on the fine grid). Backward: ``gate_backward`` (d_x and the fine
grid's alpha gradient, alpha recomputed from alpha_c) and ``coarse_backward`` (the resampling's transpose, the
sigmoid, psi and ReLU gradients; the psi gradients as per-program partial sums, added up here: deterministic).
Saved for backward: theta_x, phi_g, x (which autograd holds anyway for the convolutions) and alpha_c (B, 1, *S_c).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import triton
from torch.autograd.function import FunctionCtx, once_differentiable

from .kernel import coarse_backward_kernel, coarse_forward_kernel, gate_backward_kernel, gate_forward_kernel

BLOCK_V = 256  # voxels per program
BLOCK_C = 16  # channels per tile
NUM_WARPS = 4


@functools.cache
def reach(n_coarse: int, n_fine: int) -> int:
    """The most fine indices along one axis whose linear interpolation reads one coarse index (exact arithmetic).

    Fine index j reads coarse index i with a nonzero weight when its source ``(j + 0.5) * n_coarse / n_fine - 0.5``
    lies strictly between i - 1 and i + 1 (clamped at 0 and n_coarse - 1); the kernels' ``_first_fine`` is the
    first such j.
    """
    most = 0
    for i in range(n_coarse):
        num = (2 * i - 1) * n_fine - n_coarse
        first = 0 if num < 0 else num // (2 * n_coarse) + 1
        last = min(-(-((2 * i + 3) * n_fine - n_coarse) // (2 * n_coarse)) - 1, n_fine - 1)
        most = max(most, last - first + 1)
    return most


@dataclass(frozen=True)
class Geometry:
    """The fine grid (x's) and the coarse grid (theta_x's) of a call, (D, H, W) each, 2-D grids with D = 1.

    Args:
        fine: x's spatial size.
        coarse: theta_x's spatial size.
    """

    fine: tuple[int, int, int]
    coarse: tuple[int, int, int]

    @classmethod
    def of(cls, theta_x: torch.Tensor, x: torch.Tensor) -> Geometry:
        """The grids of theta_x (B, F_int, *S_c) and x (B, F_x, *S)."""
        pad = (1,) * (5 - x.dim())
        return cls(pad + tuple(x.shape[2:]), pad + tuple(theta_x.shape[2:]))  # type: ignore[arg-type]

    @property
    def is_3d(self) -> bool:
        """Whether the grids have a depth axis (a 2-D call has depth 1 on both)."""
        return self.fine[0] > 1 or self.coarse[0] > 1

    @property
    def n_fine(self) -> int:
        """Voxels of x's grid."""
        return int(np.prod(self.fine))

    @property
    def n_coarse(self) -> int:
        """Voxels of theta_x's grid."""
        return int(np.prod(self.coarse))

    @property
    def scales(self) -> tuple[float, ...]:
        """``n_coarse / n_fine`` per axis in fp32, as ``F.interpolate`` computes it from sizes."""
        return tuple(float(np.float32(c) / np.float32(f)) for c, f in zip(self.coarse, self.fine, strict=True))

    @property
    def reaches(self) -> tuple[int, ...]:
        """:func:`reach` per axis: the fine indices the backward gathers for one coarse index."""
        return tuple(reach(c, f) for c, f in zip(self.coarse, self.fine, strict=True))


def launch(kernel: triton.JITFunction, n_vox: int, batch: int, *args: object, **constexprs: object) -> None:
    """Run ``kernel`` over blocks of BLOCK_V voxels of each batch sample (nothing to run on an empty grid)."""
    if n_vox and batch:
        grid = (triton.cdiv(n_vox, BLOCK_V), batch)
        kernel[grid](*args, **constexprs, BLOCK_V=BLOCK_V, BLOCK_C=BLOCK_C, num_warps=NUM_WARPS)


def coarse_forward(
    theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor, psi_bias: torch.Tensor, grid: Geometry
) -> torch.Tensor:
    """alpha_c: (B, 1, *S_c) fp32, the gate's coefficients on theta_x's grid (contiguous inputs)."""
    alpha_c = torch.empty((theta_x.shape[0], 1, *theta_x.shape[2:]), device=theta_x.device, dtype=torch.float32)
    n_int = theta_x.shape[1]
    launch(coarse_forward_kernel, grid.n_coarse, theta_x.shape[0], theta_x, phi_g, psi_weight, psi_bias, alpha_c,
           grid.n_coarse, n_int)  # fmt: skip
    return alpha_c


def gate_forward(
    x: torch.Tensor, alpha_c: torch.Tensor, grid: Geometry, alpha_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """gated: (B, F_x, *S) alpha * x in the promoted dtype, and alpha: (B, 1, *S) in ``alpha_dtype``."""
    batch, n_x = x.shape[:2]
    alpha = torch.empty((batch, 1, *x.shape[2:]), device=x.device, dtype=alpha_dtype)
    gated = torch.empty(x.shape, device=x.device, dtype=torch.promote_types(alpha_dtype, x.dtype))
    launch(gate_forward_kernel, grid.n_fine, batch, x, alpha_c, gated, alpha, grid.n_fine, grid.n_coarse, n_x,
           *grid.fine[1:], *grid.coarse, *grid.scales, IS_3D=grid.is_3d)  # fmt: skip
    return gated, alpha


def gate_backward(
    x: torch.Tensor, alpha_c: torch.Tensor, d_gated: torch.Tensor, d_alpha: torch.Tensor | None, grid: Geometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """d_x: (B, F_x, *S) in x's dtype, and d_fine: (B, *S) fp32, the loss gradient of alpha on x's grid."""
    batch, n_x = x.shape[:2]
    d_x = torch.empty_like(x)
    d_fine = torch.empty((batch, *x.shape[2:]), device=x.device, dtype=torch.float32)
    has_d_alpha = d_alpha is not None
    launch(gate_backward_kernel, grid.n_fine, batch, x, alpha_c, d_gated, d_alpha if has_d_alpha else d_fine, d_x,
           d_fine, grid.n_fine, grid.n_coarse, n_x, *grid.fine[1:], *grid.coarse, *grid.scales,
           HAS_D_ALPHA=has_d_alpha, IS_3D=grid.is_3d)  # fmt: skip
    return d_x, d_fine


def coarse_backward(
    theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor, alpha_c: torch.Tensor,
    d_fine: torch.Tensor, grid: Geometry,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """d_pre: (B, F_int, *S_c), the gradient of theta_x and of phi_g alike, and d_psi: (F_int + 1,) fp32.

    ``d_psi`` holds psi's weight gradients followed by its bias gradient.
    """
    batch, n_int = theta_x.shape[:2]
    d_pre = torch.empty_like(theta_x)
    programs = triton.cdiv(grid.n_coarse, BLOCK_V) * batch
    partials = torch.empty((programs, n_int + 1), device=theta_x.device, dtype=torch.float32)
    launch(coarse_backward_kernel, grid.n_coarse, batch, theta_x, phi_g, psi_weight, alpha_c, d_fine, d_pre, partials,
           grid.n_coarse, grid.n_fine, n_int, *grid.fine, *grid.coarse, *grid.scales, *grid.reaches)  # fmt: skip
    return d_pre, partials.sum(dim=0)


class AttentionGateFunction(torch.autograd.Function):
    """The fused attention gate with its fused backward (arguments as :func:`pathattn.kernels.attention_gate`)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, theta_x: torch.Tensor, phi_g: torch.Tensor, psi_weight: torch.Tensor,
        psi_bias: torch.Tensor, x: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """(gated (B, F_x, *S), alpha (B, 1, *S)); see the reference."""
        theta_x, phi_g, psi_weight, x = (t.contiguous() for t in (theta_x, phi_g, psi_weight, x))
        grid = Geometry.of(theta_x, x)
        alpha_c = coarse_forward(theta_x, phi_g, psi_weight, psi_bias, grid)
        gated, alpha = gate_forward(x, alpha_c, grid, theta_x.dtype)
        ctx.save_for_backward(theta_x, phi_g, psi_weight, x, alpha_c)
        ctx.grid, ctx.psi_bias = grid, (psi_bias.shape, psi_bias.dtype)
        ctx.set_materialize_grads(False)
        return gated, alpha

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, d_gated: torch.Tensor | None, d_alpha: torch.Tensor | None
    ) -> tuple[torch.Tensor, ...]:
        """Gradients of theta_x, phi_g (the same tensor), psi_weight, psi_bias and x."""
        theta_x, phi_g, psi_weight, x, alpha_c = ctx.saved_tensors
        if d_gated is None:
            d_gated = torch.zeros((), device=x.device, dtype=x.dtype).expand(x.shape)
        d_alpha = None if d_alpha is None else d_alpha.contiguous()
        d_x, d_fine = gate_backward(x, alpha_c, d_gated.contiguous(), d_alpha, ctx.grid)
        d_pre, d_psi = coarse_backward(theta_x, phi_g, psi_weight, alpha_c, d_fine, ctx.grid)
        bias_shape, bias_dtype = ctx.psi_bias
        d_weight = d_psi[:-1].to(psi_weight.dtype)
        return d_pre, d_pre, d_weight, d_psi[-1:].to(bias_dtype).reshape(bias_shape), d_x
