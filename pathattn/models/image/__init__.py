"""Image classifiers with attention (family ``"image"``): timm CNNs and MEDUSA; images in, logits and maps out.

Importing this package registers ``timm_classifier``, ``medusa`` and ``medusa_isolated``; build them with
:func:`pathattn.registry.create_model`.
"""

from pathattn.models.image.classifier import ImageOutput, TimmClassifier
from pathattn.models.image.medusa import MEDUSA, AttentionBody

__all__ = ["MEDUSA", "AttentionBody", "ImageOutput", "TimmClassifier"]
