"""Segmentation networks (family ``"segmentation"``): volumes or images in, logits and attention maps out.

Importing this package registers ``attention_unet`` (Oktay et al.'s grid-gated network), ``unet`` (the same
blocks without gates, parameter-matched) and ``monai_attention_unet``; build them with
:func:`pathattn.registry.create_model` (``spatial_dims`` 2 or 3).
"""

from pathattn.models.seg.attention_unet import AttentionUNet, MonaiGatedUnet, SegmentationOutput

__all__ = ["AttentionUNet", "MonaiGatedUnet", "SegmentationOutput"]
