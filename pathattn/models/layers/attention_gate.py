"""The additive grid attention gate of Attention U-Net (Oktay et al., MIDL 2018, arXiv:1804.03999), 2-D and 3-D.

For a skip feature ``x`` (B, F_x, *S) and a gating signal ``g`` (B, F_g, *S_g) from the next-coarser level::

    theta_x = W_x * x                 strided conv, kernel = stride = sub_sample, no bias: x on g's grid
    phi_g   = W_g * g + b_g           1 x 1 conv, resampled (bi/trilinear) to theta_x's grid
    alpha_c = sigmoid(psi * ReLU(theta_x + phi_g) + b_psi)     one coefficient per coarse voxel
    alpha   = alpha_c resampled (bi/trilinear) to x's grid      (B, 1, *S), in (0, 1)
    out     = W(alpha * x)            W: 1 x 1 conv + batch norm (the official code's output transform)

as in the official implementation (``_GridAttentionBlockND._concatenation``, mode ``concatenation``). MONAI's
``AttentionBlock`` differs (the gate sees the upsampled decoder feature at x's resolution, batch norm inside the
gate, no output transform); it is reachable as ``monai_attention_unet`` for comparison. Resampling uses
``align_corners=False`` (the official code predates the option).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from pathattn.kernels import attention_gate

SpatialDims = Literal[2, 3]
CONV = {2: nn.Conv2d, 3: nn.Conv3d}
BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
LINEAR_MODE = {2: "bilinear", 3: "trilinear"}


def resample(tensor: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """(B, C, *S) resampled (bi/trilinear) to the spatial ``size``; unchanged when it has it already."""
    if tuple(tensor.shape[2:]) == tuple(size):
        return tensor
    mode = LINEAR_MODE[tensor.dim() - 2]
    return F.interpolate(tensor, size=tuple(size), mode=mode, align_corners=False)


class GridAttentionGate(nn.Module):
    """Additive grid attention gate (module docstring).

    Args:
        spatial_dims: 2 or 3.
        in_channels: F_x, channels of the skip feature x.
        gating_channels: F_g, channels of the gating signal g.
        inter_channels: F_int of theta, phi and psi (None: ``in_channels // 2``, at least 1, as the official code).
        sub_sample: kernel and stride of theta: the ratio of x's grid to g's (2 between U-Net levels).
    """

    def __init__(
        self,
        spatial_dims: SpatialDims,
        in_channels: int,
        gating_channels: int,
        inter_channels: int | None = None,
        sub_sample: int = 2,
    ) -> None:
        super().__init__()
        if spatial_dims not in CONV:
            raise ValueError(f"spatial_dims {spatial_dims}: use 2 or 3")
        conv, inter = CONV[spatial_dims], inter_channels or max(in_channels // 2, 1)
        self.theta = conv(in_channels, inter, kernel_size=sub_sample, stride=sub_sample, bias=False)
        self.phi = conv(gating_channels, inter, kernel_size=1, bias=True)
        self.psi = conv(inter, 1, kernel_size=1, bias=True)
        norm = BATCH_NORM[spatial_dims](in_channels)
        self.output = nn.Sequential(conv(in_channels, in_channels, kernel_size=1), norm)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate x (B, F_x, *S) by g (B, F_g, *S_g): ``(W(alpha * x), alpha)``, alpha (B, 1, *S).

        The element-wise part between the convolutions is :func:`pathattn.kernels.attention_gate` (fused on CUDA).
        """
        theta_x = self.theta(x)
        phi_g = resample(self.phi(g), theta_x.shape[2:])
        gated, alpha = attention_gate(theta_x, phi_g, self.psi.weight.flatten(), self.psi.bias, x)
        return self.output(gated), alpha
