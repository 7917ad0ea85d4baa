"""Atomic file writes: write to a temporary file beside the target, then rename.

A reader never sees a half-written file: either the old file (or none) or the complete new one.
An interrupted write leaves no file under the final name, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"
_TMP_PID = re.compile(re.escape(TMP_MARK) + r"(\d+)-")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; rename it onto ``path`` when the block succeeds.

    The temporary file lives in the target's folder (so the rename is atomic on one file system) and
    keeps the target's suffix, both parts of a compressed one like ``.nii.gz`` (so writers that choose the
    format by extension still work).

    Args:
        path: the final file.

    Yields:
        The temporary path to write.

    Example:
        >>> with atomic_path("out/slide.h5") as tmp:
        ...     write_h5(tmp)
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes[-2:]) if final.suffix == ".gz" else final.suffix
    stem = final.name.removesuffix(suffix)
    tmp = final.with_name(f".{stem}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def pid_alive(pid: int) -> bool:
    """Whether the process ``pid`` exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Delete temporary files that a killed run left in ``folder``; return how many.

    Only files whose writing process is gone are removed, so concurrent writers (parallel jobs writing
    into one folder) are left alone.
    """
    count = 0
    for stale in Path(folder).glob(f".*{TMP_MARK}*"):
        match = _TMP_PID.search(stale.name)
        if match and pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            count += 1
    return count
