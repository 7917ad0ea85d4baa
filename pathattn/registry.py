"""One registry of model entrypoints for every model family, timm-style.

A model variant is a function decorated with :func:`register_model`; its name is the function's name and
its hyperparameters live in its body::

    @register_model(family="mil")
    def abmil(**kwargs: Any) -> ABMIL:
        return ABMIL(**{**HIPPO_DEFAULTS, **kwargs})

:func:`create_model` builds any registered model by name (``create_model("abmil", in_dim=1024)``),
:func:`list_models` and :func:`is_model` look names up. The model modules register themselves when
:mod:`pathattn.models` is imported, which these functions do on first use.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from torch import nn

from pathattn.errors import PathattnError

EntryPoint = TypeVar("EntryPoint", bound=Callable[..., nn.Module])
MODELS_PACKAGE = "pathattn.models"


@dataclass(frozen=True)
class _Entry:
    function: Callable[..., nn.Module]
    family: str | None


_ENTRYPOINTS: dict[str, _Entry] = {}


@overload
def register_model(function: EntryPoint, *, family: str | None = None) -> EntryPoint: ...


@overload
def register_model(function: None = None, *, family: str | None = None) -> Callable[[EntryPoint], EntryPoint]: ...


def register_model(
    function: EntryPoint | None = None, *, family: str | None = None
) -> EntryPoint | Callable[[EntryPoint], EntryPoint]:
    """Register a model entrypoint under its function name; use bare or with a family tag.

    Args:
        function: the entrypoint: keyword arguments in, an ``nn.Module`` out.
        family: the model family it belongs to (``"mil"``, ``"segmentation"``), for :func:`list_models`.

    Returns:
        The entrypoint itself (or, called with only ``family``, a decorator).

    Raises:
        ValueError: another entrypoint already has this name.
    """

    def register(entrypoint: EntryPoint) -> EntryPoint:
        name = entrypoint.__name__
        if name in _ENTRYPOINTS:
            existing = _ENTRYPOINTS[name].function
            raise ValueError(
                f"model name '{name}' is already registered by {existing.__module__}.{existing.__qualname__}; "
                "choose another function name"
            )
        _ENTRYPOINTS[name] = _Entry(entrypoint, family)
        return entrypoint

    return register if function is None else register(function)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.

    Keyword Args:
        kwargs: passed to the entrypoint; they override the variant's defaults (e.g. ``in_dim``,
            ``n_classes``, ``dropout``).

    Returns:
        The model, freshly initialized (load weights separately, e.g. with :mod:`pathattn.models.mil.adapters`).

    Raises:
        PathattnError: no model has this name; the message suggests close names.

    Example:
        >>> from pathattn.registry import create_model
        >>> model = create_model("abmil", in_dim=1024, n_classes=2)
    """
    return _entry(name).function(**kwargs)


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Names of the registered models, sorted.

    Args:
        pattern: an ``fnmatch`` pattern (``"abmil*"``).
        family: only models of this family; None: all.

    Returns:
        Matching names in alphabetical order.
    """
    _import_models()
    return sorted(
        name
        for name, entry in _ENTRYPOINTS.items()
        if fnmatch.fnmatchcase(name, pattern) and (family is None or entry.family == family)
    )


def is_model(name: str) -> bool:
    """Whether a model of this name is registered."""
    _import_models()
    return name in _ENTRYPOINTS


def model_family(name: str) -> str | None:
    """The family tag of a registered model (None when registered without one).

    Raises:
        PathattnError: no model has this name.
    """
    return _entry(name).family


def _entry(name: str) -> _Entry:
    _import_models()
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=3)
        hint = f"did you mean {', '.join(repr(match) for match in close)}?" if close else "see list_models()"
        raise PathattnError(f"unknown model '{name}'; {hint} (known models: {', '.join(sorted(_ENTRYPOINTS))})")
    return _ENTRYPOINTS[name]


def _import_models() -> None:
    """Import the model package so that its modules register their entrypoints (a no-op after the first)."""
    importlib.import_module(MODELS_PACKAGE)
