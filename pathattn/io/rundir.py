"""The run folder of a command that writes a folder (a training run, CAMs): refused when it holds a run, replaced
atomically with ``--overwrite``.

A run is never written into ``--out`` directly. It is made in a sibling staging folder,
``.{name}.partial`` beside ``--out``, and renamed to ``--out`` only when it has finished (:func:`publish`):

* a second run into a folder that holds anything is refused unless ``overwrite`` (an empty folder is used);
* with ``overwrite`` the old run stays as it is until the new one has finished, then the two are swapped
  (two renames on one file system);
* a run that fails removes its staging folder; one that is interrupted (Ctrl-C, SIGTERM) or killed leaves it
  behind: a command that resumes (``pathattn segment fit --resume``) continues it, any other run into the same
  ``--out`` removes it first;
* so a folder never mixes the files of two runs (no ``best-v1.ckpt`` beside an old ``best.ckpt``).

The staging folder's name depends on ``--out`` alone, so every process of a DDP run (Lightning re-runs the
command) trains into the same one; only global rank 0 creates, publishes or removes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pathattn.errors import PathattnError

T = TypeVar("T")
STAGING_SUFFIX = ".partial"
REPLACED_SUFFIX = ".replaced"


def staging_folder(out: Path) -> Path:
    """Where a run into ``out`` is made before :func:`publish` moves it to ``out``."""
    return out.parent / f".{out.name}{STAGING_SUFFIX}"


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or a folder that holds anything without ``overwrite``.

    Raises:
        PathattnError: naming ``--out`` (and ``--overwrite``) and the fix.
    """
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise PathattnError(f"--out {out}: {existing} is a file; pass a folder for the run")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise PathattnError(
            f"--out {out} already holds a run (or other files); pass --overwrite to replace it, or choose another --out"
        )


def start(out: Path, resume: bool = False) -> Path:
    """The staging folder of a run into ``out``: made afresh (removing one a killed run left), or with ``resume``
    the one an interrupted run left (made if there is none)."""
    staging = staging_folder(out)
    if resume and staging.is_dir():
        return staging
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as error:
        raise PathattnError(
            f"--out {out}: cannot create {staging} beside it ({error.strerror}); choose a folder you can write to"
        ) from None
    return staging


def publish(staging: Path, out: Path) -> None:
    """Move the finished run ``staging`` to ``out``, replacing what ``out`` held."""
    replaced = out.parent / f".{out.name}{REPLACED_SUFFIX}"
    shutil.rmtree(replaced, ignore_errors=True)
    if out.exists():
        out.rename(replaced)
    staging.rename(out)
    shutil.rmtree(replaced, ignore_errors=True)


def discard(staging: Path) -> None:
    """Remove the staging folder of a run that failed or was interrupted."""
    shutil.rmtree(staging, ignore_errors=True)


def staged_run(out: Path, work: Callable[[Path], T | None], resume: bool = False) -> T | None:
    """Run ``work(staging)`` into a staging folder (:func:`start`) and publish it to ``out``.

    If ``work`` fails the folder is discarded; if it is interrupted (``KeyboardInterrupt``, ``SystemExit``) the
    folder is kept for a resumed run. Only global rank 0 creates, publishes or discards the folder; ``work``
    returns None in the other processes of a DDP run, whose result is then None too.
    """
    from lightning.pytorch.utilities import rank_zero_only

    is_global_zero = rank_zero_only.rank == 0  # as pathattn.fitting.trainer.is_global_zero
    staging = start(out, resume) if is_global_zero else staging_folder(out)
    try:
        result = work(staging)
    except Exception:
        if is_global_zero:
            discard(staging)
        raise
    if result is not None:
        publish(staging, out)
    return result
