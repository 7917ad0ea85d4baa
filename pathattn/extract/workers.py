"""The reading processes of ``pathattn extract``, and their lifetime: none outlives the process that runs extract.

DataLoader workers are forked from a fork server (started once per program with the reading modules
preloaded, so workers start fast and clean: OpenSlide, OpenCV's and OpenMP's thread pools are not fork-safe).
Their parent is therefore the fork server, not extract, and a killed extract (``kill -9``, an out-of-memory
kill, a cluster's time limit) would leave the fork server and its workers running. So, on Linux:

* the fork server asks the kernel to kill it when extract exits (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set
  when it imports :mod:`pathattn.extract.forkserver`, its preloaded module);
* each worker asks the same about the fork server, in its ``worker_init_fn``;
* both then check that their parent is still the one that started them (it may have died before they
  asked) and exit if not;
* multiprocessing's resource tracker exits by itself once every process holding its pipe is gone.

Elsewhere (no fork server, e.g. Windows) workers are spawned by extract itself, and DataLoader's own
watchdog ends them when it exits.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence

import cv2
import torch

from pathattn.processes import die_with_parent

EXTRACT_PID = "PATHATTN_EXTRACT_PID"  # environment variable: the process whose death ends the fork server
PRELOAD = "pathattn.extract.forkserver"


def worker_init(parent: int | None, _: int) -> None:
    """A DataLoader worker's start: die with its parent, and keep to one thread (the processes are the parallelism).

    Args:
        parent: the process that started the worker (extract, with spawn), or None for the fork server (its pid
            is in the preloaded module, inherited as it was forked; a server started without it is not checked).
    """
    if parent is None:
        server = sys.modules.get(PRELOAD)
        parent = server.SERVER_PID if server is not None else os.getppid()
    die_with_parent(parent)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def worker_context(
    preload: Sequence[str] = (),
) -> tuple[multiprocessing.context.BaseContext, Callable[[int], None]]:
    """The start method of the reading workers and their ``worker_init_fn`` (module docstring).

    A fork server with :data:`PRELOAD` preloaded where there is one; spawn elsewhere (Windows).

    Args:
        preload: more modules for the fork server to import (e.g. MONAI's, for volumes); they count only when
            it starts, the first time a program starts workers.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn"), functools.partial(worker_init, os.getpid())
    os.environ[EXTRACT_PID] = str(os.getpid())  # read by the fork server when it starts
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([PRELOAD, *preload])
    return context, functools.partial(worker_init, None)
