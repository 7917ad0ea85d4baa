"""What a batch command prints at its end: a summary line and, if needed, one error line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STATUSES = ("done", "skipped", "empty", "failed")


def error(command: str, message: str) -> None:
    """Print ``pathattn COMMAND: error: MESSAGE`` on stderr (one line)."""
    print(f"pathattn {command}: error: {' '.join(message.split())}", file=sys.stderr)


def summarize(command: str, results: Sequence[Any], manifest: Path, detail: str = "") -> bool:
    """Print the per-status counts; report the first failure as an error.

    Args:
        command: the command's name.
        results: rows with ``slide_id``, ``status`` and ``error``.
        manifest: where every row is.
        detail: text added after the counts (e.g. the encoder).

    Returns:
        Whether any slide failed.
    """
    counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := sum(r.status == s for r in results)))
    print(f"{command}: {len(results)} slides ({counts}){detail}; manifest: {manifest}", file=sys.stderr)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0]
        error(command, f"{len(failed)} of {len(results)} slides failed, first: {first.slide_id}: {first.error} "
              f"(all in {manifest})")  # fmt: skip
    return bool(failed)
