"""Identifiers that name output files (slide, patient, volume and image ids), and output paths inside ``--out``.

**The id rule.** An id is 1 to 200 characters of letters, digits, ``.``, ``_``, ``-`` and ``+``, starting with a
letter or a digit, and holding no ``..``. So an id never holds a path separator, is never absolute, never
climbs out of a folder and never names a hidden or temporary file: ``{out}/coords/{slide_id}.h5`` always lies
inside ``{out}``. Ids come from a sample sheet's ``slide_id`` (or ``patient_id``) column, or from file names;
a name outside the rule (spaces, parentheses, accents) is refused with the fix: give the item a ``slide_id``
in a sample sheet.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pathattn.errors import PathattnError

MAX_LENGTH = 200
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def is_valid_id(value: str) -> bool:
    """Whether ``value`` follows the id rule (module docstring)."""
    return len(value) <= MAX_LENGTH and _ID.fullmatch(value) is not None and ".." not in value


def check_id(value: str, kind: str = "slide", source: str = "") -> str:
    """``value`` when it follows the id rule.

    Args:
        value: the id.
        kind: what it identifies (``slide``, ``patient``, ``volume``, ``image``), for the message.
        source: where it comes from (``--samples FILE line 3``), for the message.

    Raises:
        PathattnError: the id breaks the rule; the message names it, its source and the fix.
    """
    if is_valid_id(value):
        return value
    where = f"{source}: " if source else ""
    raise PathattnError(
        f"{where}{kind} id {value!r} is not allowed: ids are 1-{MAX_LENGTH} letters, digits, '.', '_', '-' or '+', "
        f"starting with a letter or digit, without '..' or path separators; give the {kind} a {kind}_id that "
        "follows this rule in a sample sheet"
    )


def output_path(out: str | os.PathLike[str], *parts: str) -> Path:
    """``out`` joined with ``parts``, checked to stay inside ``out`` (lexically, before anything is written).

    Raises:
        PathattnError: the path would lie outside ``out`` (a part is absolute or climbs with ``..``).
    """
    root = os.path.normpath(os.path.abspath(out))
    path = os.path.normpath(os.path.join(root, *parts))
    if os.path.commonpath([root, path]) != root or path == root:
        raise PathattnError(f"output {os.path.join(*parts)!r} would be written outside --out {out}; refusing")
    return Path(out, *parts)
