"""User-facing errors.

Every problem the user can fix (a missing file, a bad option, an unreadable slide) is raised as a
:class:`PathattnError` whose message is one line naming the file or option and the fix. The CLI prints
that line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

from collections.abc import Iterable

_SHOWN = 10  # items named in an error message before "..."


class PathattnError(Exception):
    """A problem with the user's input, reported as one line.

    Args:
        message: what is wrong, naming the file or option, and how to fix it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SlideError(PathattnError):
    """A slide cannot be opened or read (missing, not a slide, corrupt, no resolution)."""


def shorten(items: Iterable[object], sep: str = ", ") -> str:
    """The first few of ``items`` joined by ``sep``, and how many there are when there are more."""
    items = [str(i) for i in items]
    return sep.join(items[:_SHOWN]) + (f"{sep}... ({len(items)} in all)" if len(items) > _SHOWN else "")
