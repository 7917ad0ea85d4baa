"""The ``pathattn`` command line run from the benchmark scripts (imported as ``commands`` beside them)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pathattn(args: list[object], done: Path, label: str | None = None) -> float:
    """Run ``pathattn args`` from the repository root unless ``done`` exists; print and return its wall time.

    Args:
        args: the command's arguments (``["segment", "fit", ...]``), made strings.
        done: a file the command writes last: when it exists the command is not run again (0 s returned).
        label: what the printed line names (default: the first two arguments).

    Exits with the command's last error output when it fails.
    """
    label = label or " ".join(str(a) for a in args[:2])
    if done.exists():
        print(f"{label:>24}: reused {done}")
        return 0.0
    start = time.perf_counter()
    command = [str(Path(sys.executable).with_name("pathattn")), *map(str, args)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    print(f"{label:>24}: {seconds:.1f} s ({done.parent.name})")
    return seconds
