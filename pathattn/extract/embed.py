"""The encoder on its device: batches in, float32 features out, normalised on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from pathattn.devices import resolve_device
from pathattn.extract.encoders import Encoder

if TYPE_CHECKING:
    from pathattn.extract.run import ExtractJob

Precision = Literal["fp32", "bf16", "fp16"]
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Embedder:
    """The encoder on its device.

    Images (B, 3, H, W) arrive as uint8 and are normalised with the encoder's mean and std times 255, in
    channels_last; 3-D patches (B, C, Pi, Pj, Pk) arrive as float32 preset values and are normalised with the
    encoder's mean and std (one value for every channel). Forward under autocast at the job's precision.

    Args:
        encoder: the encoder.
        job: the device, precision and ``compile`` setting.
    """

    def __init__(self, encoder: Encoder, job: ExtractJob) -> None:
        self.device = resolve_device(job.device)
        self.volumetric = encoder.spatial_dims == 3
        model = encoder.model.to(self.device).eval()
        if not self.volumetric:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if job.compile else model
        view, scale = ((1, -1, 1, 1, 1), 1.0) if self.volumetric else ((1, -1, 1, 1), 255.0)
        self.mean = torch.tensor(encoder.mean, device=self.device).view(view) * scale
        self.std = torch.tensor(encoder.std, device=self.device).view(view) * scale
        self.autocast = AUTOCAST.get(job.precision)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """Embed a batch: (B, 3, H, W) uint8 or (B, C, Pi, Pj, Pk) float32 -> (B, D) float32."""
        x = (images.to(self.device, non_blocking=True).float() - self.mean) / self.std
        x = x.contiguous() if self.volumetric else x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            out = self.model(x)
        return out.float().cpu().numpy()
