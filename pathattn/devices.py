"""Where models run: one rule for every ``--device`` option of the command line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathattn.errors import PathattnError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str, option: str = "--device") -> torch.device:
    """The torch device of a ``--device`` value.

    ``auto`` is CUDA when a GPU is visible, else the CPU; ``cpu``, ``cuda``, ``cuda:i`` and ``mps`` are taken as
    they are, and a CUDA request without a GPU (or with a GPU index that does not exist) is an error.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:i``.
        option: the option that named it, for the message.

    Raises:
        PathattnError: an unknown device, or CUDA without a GPU.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise PathattnError(f"{option} {device} is not a device; use auto, cpu, cuda or cuda:INDEX") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise PathattnError(f"{option} {device} but no CUDA GPU is visible; use {option} cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise PathattnError(f"{option} {device}: only {count} GPU(s) are visible (cuda:0 to cuda:{count - 1})")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise PathattnError(f"{option} {device} but Apple's MPS is not available here; use {option} cpu or auto")
    elif resolved.type not in ("cpu", "mps"):
        raise PathattnError(f"{option} {device} is not supported; use auto, cpu, cuda or cuda:INDEX")
    return resolved
