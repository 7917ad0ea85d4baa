"""Checkpoint files: read a state dict from any common wrapper and load it strictly, with readable errors.

Supported files: ``.safetensors`` (read with :mod:`safetensors`) and ``.pth``/``.pt``/``.bin``/``.ckpt``
(read with ``torch.load(weights_only=True)``, so no code in the file is ever run). The tensors may sit at
the top level or under a ``state_dict``/``model``/``module``/``teacher`` key, and a ``module.`` prefix
(``nn.DataParallel``) on every key is removed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from pathattn.errors import PathattnError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
WRAPPER_KEYS = ("state_dict", "model", "module", "teacher", "model_state_dict")
DATA_PARALLEL_PREFIX = "module."
MAX_LISTED = 8
# BatchNorm fills in a missing counter itself (older torchvision files have none), so it is never "missing".
OPTIONAL_SUFFIXES = ("num_batches_tracked",)
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) was not an allowed global")


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Return the SHA-256 of a file as hex, reading it in chunks (checkpoints can be several GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the state dict stored in a weights file, unwrapping the common checkpoint layouts.

    Args:
        path: a ``.safetensors``, ``.pth``, ``.pt``, ``.bin`` or ``.ckpt`` file.

    Returns:
        Parameter name -> tensor (on the CPU), without a ``module.`` prefix.

    Raises:
        PathattnError: the file is missing, has an unknown suffix, cannot be read, or holds no tensors.
    """
    file = Path(path)
    if not file.is_file():
        raise PathattnError(f"weights file {file} not found; pass the path of a {_suffix_list()} file")
    suffix = file.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        content: Any = _load_safetensors(file)
    elif suffix in TORCH_SUFFIXES:
        content = _load_torch(file)
    else:
        raise PathattnError(f"weights file {file} has the unknown suffix '{file.suffix}'; use a {_suffix_list()} file")
    state_dict = _unwrap(content, file)
    return _strip_prefix(state_dict, DATA_PARALLEL_PREFIX)


def load_state_dict_strict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    ignore_prefixes: Iterable[str] = (),
    *,
    target: str = "the model",
    fix: str = "pass the weights of this architecture",
    assign: bool = False,
) -> None:
    """Load ``state_dict`` into ``model`` after checking that every key and shape matches.

    Args:
        model: the module to fill.
        state_dict: parameter name -> tensor, as returned by :func:`read_state_dict`.
        path: the file the tensors came from (for the error message).
        ignore_prefixes: keys of the file starting with one of these are dropped before comparing
            (parts of a full checkpoint that ``model`` does not have, e.g. ``fc.``).
        target: what ``model`` is, for the message (e.g. ``"encoder 'uni'"``).
        fix: how the user fixes a mismatch, for the message.
        assign: use the file's tensors as the parameters instead of copying them (for a model built on
            the ``meta`` device).

    Raises:
        PathattnError: keys are missing or unexpected or shapes differ; the one-line message lists them.
    """
    prefixes = tuple(ignore_prefixes)
    kept = {key: value for key, value in state_dict.items() if not (prefixes and key.startswith(prefixes))}
    problems = describe_mismatch(model.state_dict(), kept)
    if problems:
        raise PathattnError(f"weights file {path} does not fit {target}: {problems}; {fix}")
    try:
        model.load_state_dict(kept, strict=True, assign=assign)
    except RuntimeError as error:  # a check torch makes that ours does not (should not happen)
        raise PathattnError(f"weights file {path} does not fit {target}: {_first_line(error)}; {fix}") from error


def describe_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> str:
    """Describe how the keys and shapes of ``found`` differ from ``expected``; empty when they match.

    Args:
        expected: the model's state dict.
        found: the file's state dict.

    Returns:
        e.g. ``"2 missing keys (a, b), 1 shape mismatch (c: file (10, 3) vs model (12, 3))"``.
    """
    missing = [key for key in expected if key not in found and not key.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [key for key in found if key not in expected]
    mismatched = [
        f"{key}: file {tuple(found[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in found and tuple(found[key].shape) != tuple(expected[key].shape)
    ]
    parts = [
        _counted(missing, "missing key", "missing keys"),
        _counted(unexpected, "unexpected key", "unexpected keys"),
        _counted(mismatched, "shape mismatch", "shape mismatches"),
    ]
    return ", ".join(part for part in parts if part)


def _counted(items: list[str], singular: str, plural: str) -> str:
    """``"3 missing keys (a, b, c)"``, listing at most :data:`MAX_LISTED` items; empty for no items."""
    if not items:
        return ""
    listed = ", ".join(items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        listed += f", … and {len(items) - MAX_LISTED} more"
    return f"{len(items)} {singular if len(items) == 1 else plural} ({listed})"


def _load_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as error:  # safetensors raises its own error types for a bad header
        raise PathattnError(
            f"cannot read weights file {file} ({_first_line(error)}); the file is damaged or not a safetensors "
            "file: download it again"
        ) from error


def _load_torch(file: Path) -> Any:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and EOF errors all mean "cannot use this file"
        unsafe = _UNSAFE_GLOBAL.search(str(error))
        if unsafe:
            raise PathattnError(
                f"cannot read weights file {file}: it holds the Python object {unsafe.group(1)} besides tensors, "
                "which is never unpickled for safety; load it where you trust it and save only "
                "torch.save(model.state_dict(), FILE)"
            ) from error
        text = str(error).strip()
        reason = f": {_first_line(error)}" if text and "Weights only load failed" not in text else ""
        raise PathattnError(
            f"cannot read weights file {file} ({type(error).__name__}{reason}); the file is damaged or not a "
            "PyTorch checkpoint: download it again"
        ) from error


def _unwrap(content: Any, file: Path) -> dict[str, torch.Tensor]:
    """Find the parameter dict in a loaded checkpoint (top level or under a wrapper key, two levels deep)."""
    for _ in range(3):
        if _is_tensor_dict(content):
            return dict(content)
        if not isinstance(content, Mapping):
            break
        inner = next((content[key] for key in WRAPPER_KEYS if isinstance(content.get(key), Mapping)), None)
        if inner is None:
            break
        content = inner
    if isinstance(content, Mapping) and content:
        found = ", ".join(str(key) for key in list(content)[:MAX_LISTED])
        detail = f"top-level keys: {found}"
    else:
        detail = f"it holds a {type(content).__name__}"
    raise PathattnError(
        f"weights file {file} holds no state dict of tensors ({detail}); save one with "
        "torch.save(model.state_dict(), FILE)"
    )


def _is_tensor_dict(content: Any) -> bool:
    return (
        isinstance(content, Mapping)
        and len(content) > 0
        and all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in content.items())
    )


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove ``prefix`` from every key when every key has it; otherwise return the dict unchanged."""
    if not all(key.startswith(prefix) for key in state_dict):
        return state_dict
    return {key[len(prefix) :]: value for key, value in state_dict.items()}


def _suffix_list() -> str:
    suffixes = [*TORCH_SUFFIXES, *SAFETENSORS_SUFFIXES]
    return ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= 200 else line[:200] + "…"
