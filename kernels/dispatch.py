"""Which implementation an op runs: the Triton kernel or the pure-torch reference.

Every op in :mod:`pathattn.kernels` asks :func:`use_triton` with the tensors it was given:

================================  ====================================================================
``PATHATTN_KERNELS``              implementation
================================  ====================================================================
unset or ``auto`` (the default)   Triton when every tensor is on a CUDA device and triton imports;
                                  the torch reference otherwise (CPU tensors, no triton)
``torch``                         the torch reference, always
``triton``                        the Triton kernel, always: CUDA tensors, or CPU tensors under
                                  ``TRITON_INTERPRET=1`` (the interpreter: correctness only, slow);
                                  anything else is an error, never a silent fallback
================================  ====================================================================
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

Choice = Literal["auto", "torch", "triton"]
CHOICES: tuple[Choice, ...] = ("auto", "torch", "triton")
ENV = "PATHATTN_KERNELS"


class KernelChoiceError(RuntimeError):
    """``PATHATTN_KERNELS`` names an unknown choice, or asks for Triton where it cannot run."""


class KernelResourceError(RuntimeError):
    """No configuration of a Triton kernel fits the GPU's shared memory or threads at the sizes asked for."""


def kernel_choice() -> Choice:
    """The ``PATHATTN_KERNELS`` setting (``auto`` when unset).

    Raises:
        KernelChoiceError: the variable holds something else than auto, torch or triton.
    """
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise KernelChoiceError(f"{ENV}={value!r} is not one of {', '.join(CHOICES)}; unset it or pick one of them")
    return value  # type: ignore[return-value]


@functools.cache
def triton_available() -> bool:
    """Whether triton imports on this machine."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(*tensors: torch.Tensor | None) -> bool:
    """Whether an op given ``tensors`` runs its Triton kernel (module docstring).

    Args:
        tensors: the op's tensor arguments (None entries are ignored).

    Raises:
        KernelChoiceError: ``PATHATTN_KERNELS=triton`` where the kernel cannot run (no triton, or CPU tensors
            without ``TRITON_INTERPRET=1``), or an unknown choice.
    """
    choice = kernel_choice()
    if choice == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors if t is not None)
    if choice == "auto":
        return on_cuda and triton_available()
    if not triton_available():
        raise KernelChoiceError(f"{ENV}=triton but triton does not import here; install triton or set {ENV}=torch")
    if not (on_cuda or interpreting()):
        raise KernelChoiceError(
            f"{ENV}=triton with CPU tensors needs TRITON_INTERPRET=1 (correctness only); move the tensors to a "
            f"CUDA device or set {ENV}=torch"
        )
    return True
