"""JSON files: strict JSON (no NaN) written atomically, and read with one-line errors.

``json.dumps`` writes ``nan`` as ``NaN``, which strict readers (browsers, ``jq``, most languages) reject, so
every JSON file pathattn writes goes through :func:`to_json_safe`: numpy scalars and arrays become Python
numbers and lists, and non-finite floats become ``null``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.atomic import write_text_atomic


def to_json_safe(value: Any) -> Any:
    """A copy of ``value`` with numpy scalars made Python numbers and non-finite floats ``None``."""
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike[str], value: Any, indent: int | None = 1) -> None:
    """Write ``value`` as strict JSON (see :func:`to_json_safe`) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(to_json_safe(value), indent=indent) + "\n")


def read_json(path: str | os.PathLike[str], fix: str) -> Any:
    """The content of a JSON file.

    Args:
        path: the file.
        fix: what the user should do when it is missing or broken (the end of the error message).

    Raises:
        PathattnError: the file is missing, unreadable or not JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PathattnError(f"{path} not found; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PathattnError(f"{path} is not a readable JSON file ({' '.join(str(err).split())}); {fix}") from None
