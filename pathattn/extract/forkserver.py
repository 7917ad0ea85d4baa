"""Preloaded by the fork server of extract's reading workers: the reading modules, and the server's lifeline.

Importing this module in the fork server (a child of the process named by
:data:`~pathattn.extract.workers.EXTRACT_PID`) makes the kernel kill the server when extract exits, and ends
the server at once if extract is gone already (:mod:`pathattn.extract.workers`); :data:`SERVER_PID` tells the
workers forked from the server who their parent was. Imported in a process without that variable, or in
extract itself, it only imports the reading modules.
"""

from __future__ import annotations

import os

import pathattn.extract.data  # noqa: F401 - preloaded so that workers fork with it imported
from pathattn.extract.workers import EXTRACT_PID
from pathattn.processes import die_with_parent

SERVER_PID = os.getpid()  # in a worker forked from the server: the parent it was forked by

_extract = os.environ.get(EXTRACT_PID, "")
if _extract.isdigit() and int(_extract) != SERVER_PID:
    die_with_parent(int(_extract))
