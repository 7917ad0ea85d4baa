"""Child processes that never outlive the process that started them.

A batch that runs its items in worker processes (``tile --workers``, extract's reading workers) must leave
nothing running when it is killed (``kill -9``, an out-of-memory kill, a cluster's time limit). On Linux a
child asks the kernel to SIGKILL it when its parent exits (``prctl(PR_SET_PDEATHSIG)``) and exits at once if
the parent is gone already; elsewhere the pools' own shutdown applies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent exits (Linux); exit now if ``parent`` is gone already.

    Args:
        parent: the pid this process was started by; another parent means it died before the request.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)
