"""Fused attention kernels for pathattn, installed as ``pathattn.kernels``.

This folder sits at the repository root and is mapped onto ``pathattn.kernels`` by setuptools
(``package-dir``); it is never importable as a top-level ``kernels`` module. Inside it, imports are
relative; everywhere else, ``from pathattn.kernels import ...``.

``reference`` holds the pure-torch specification of every op: it is the CPU fallback and the test
oracle of the Triton kernels, which live one folder per op (``kernel.py`` with the ``@triton.jit``
code, ``function.py`` with the launcher and ``autograd.Function``) as they are added.
"""

from .abmil_pool import abmil_pool
from .attention_gate import attention_gate
from .masked_pool import masked_pool
from .reference import ABMILWeights, attention_pool, masked_softmax

__all__ = ["ABMILWeights", "abmil_pool", "attention_gate", "attention_pool", "masked_pool", "masked_softmax"]
