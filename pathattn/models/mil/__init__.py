"""Attention-MIL models: a bag of instance features in, bag logits and raw attention per instance out.

Importing this package registers the models (``abmil``, ``abmil_plain``, ``abmil_acmil_style``, ``acmil``,
``clam_sb``, ``mean_pool``, ``max_pool``; family ``"mil"``); build them with
:func:`pathattn.registry.create_model`. Conventions (shapes, padding, -inf attention) and the
:class:`InstanceSeparable` capability (``instance_terms``) are in :mod:`pathattn.models.mil.base`.
"""

from pathattn.models.mil.abmil import ABMIL
from pathattn.models.mil.acmil import ACMIL, attention_diversity, stochastic_topk_mask
from pathattn.models.mil.adapters import abmil_from_hippo, load_clam_sb, load_hippo
from pathattn.models.mil.aem import AEMSchedule, attention_entropy_loss
from pathattn.models.mil.base import InstanceSeparable, InstanceTerms, MILModel, MILOutput
from pathattn.models.mil.clam import CLAMSB, clam_instance_loss
from pathattn.models.mil.pooling import MaxPool, MeanPool

__all__ = [
    "ABMIL",
    "ACMIL",
    "AEMSchedule",
    "CLAMSB",
    "InstanceSeparable",
    "InstanceTerms",
    "MILModel",
    "MILOutput",
    "MaxPool",
    "MeanPool",
    "abmil_from_hippo",
    "attention_diversity",
    "attention_entropy_loss",
    "clam_instance_loss",
    "load_clam_sb",
    "load_hippo",
    "stochastic_topk_mask",
]
