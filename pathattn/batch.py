"""One batch runner for "do this for every slide": resume, failures recorded, manifest, progress, exit code.

Every per-slide stage (``tile``, ``extract``, ``heatmap``, ``explain``; volumes and images alike) runs its
items through a :class:`Batch`:

* the output folders are created and the temporary files a killed run left in them are removed;
* each item gives one :class:`BatchRow` (a stage subclasses it with its own columns); an item that raises is
  recorded as ``failed`` with a one-line error, and the batch goes on;
* after every item the manifest (``OUT/manifest.csv``) is rewritten atomically, merged with the rows of
  earlier runs and of concurrent jobs (:func:`pathattn.io.manifest.write_manifest`);
* a progress bar and one line per failure go to stderr; at the end a summary line, and the exit code is
  non-zero when an item failed.

Resuming is the stage's decision: its work function returns a ``skipped`` row for an item whose outputs are
complete and current. Outputs are written atomically by the stage (:mod:`pathattn.io.atomic`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import KW_ONLY, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Generic, Literal, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pathattn.errors import PathattnError
from pathattn.io.atomic import remove_stale_temporaries
from pathattn.io.manifest import write_manifest
from pathattn.processes import die_with_parent

Status = Literal["done", "skipped", "empty", "failed"]
STATUSES: tuple[Status, ...] = ("done", "skipped", "empty", "failed")
Item = TypeVar("Item")
Row = TypeVar("Row", bound="BatchRow")


@dataclass
class BatchRow:
    """One row of a manifest: the item, what happened, how long it took, and why it failed.

    Stages subclass it (``@dataclass(kw_only=True)``) with their own columns, which the manifest lists
    between ``status`` and ``seconds``.

    Args:
        slide_id: the item's id.
        status: ``done``, ``skipped`` (finished by an earlier run), ``empty`` (nothing to do, e.g. no
            tissue) or ``failed``.
        seconds: wall time of the item.
        error: the one-line reason of a failure.
    """

    slide_id: str
    status: Status = "done"
    _: KW_ONLY
    seconds: float = 0.0
    error: str = ""


def one_line(error: BaseException) -> str:
    """A failure as one line: the message of a user error, else the exception type and its message."""
    text = str(error) if isinstance(error, PathattnError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def guarded(work: Callable[[Item], Row], item: Item, item_id: str, row_type: type[Row]) -> Row:
    """``work(item)``, timed; an exception becomes a ``failed`` row instead of stopping the batch."""
    start = time.perf_counter()
    try:
        row = work(item)
    except Exception as err:  # noqa: BLE001 - one bad item must not stop the batch
        row = row_type(item_id, "failed", error=one_line(err))
    if not row.seconds:
        row.seconds = round(time.perf_counter() - start, 3)
    return row


@dataclass
class BatchOutcome(Generic[Row]):
    """What a batch did.

    Args:
        command: the command's name (for messages).
        rows: one row per item, in input order.
        manifest: where every row is.
    """

    command: str
    rows: list[Row]
    manifest: Path
    unit: str = "slides"

    def count(self, status: Status) -> int:
        """How many items ended with ``status``."""
        return sum(row.status == status for row in self.rows)

    @property
    def failed(self) -> list[Row]:
        """The rows of the items that failed."""
        return [row for row in self.rows if row.status == "failed"]

    def report(self, detail: str = "", allow_failed: bool = False) -> int:
        """Print the summary line (and the first failure as an error line); return the exit code.

        Args:
            detail: text added after the counts (e.g. the encoder).
            allow_failed: exit 0 even when items failed.

        Returns:
            1 when an item failed (and ``allow_failed`` is off), else 0.
        """
        counts = ", ".join(f"{n} {s}" for s in STATUSES if (n := self.count(s)))
        print(f"{self.command}: {len(self.rows)} {self.unit} ({counts}){detail}; manifest: {self.manifest}",
              file=sys.stderr)  # fmt: skip
        failed = self.failed
        if not failed:
            return 0
        first = failed[0]
        print_error(self.command, f"{len(failed)} of {len(self.rows)} {self.unit} failed, first: {first.slide_id}: "
                    f"{first.error} (all in {self.manifest})")  # fmt: skip
        return 0 if allow_failed else 1


def print_error(command: str, message: str) -> None:
    """Print ``pathattn COMMAND: error: MESSAGE`` on stderr (one line)."""
    print(f"pathattn {command}: error: {' '.join(message.split())}", file=sys.stderr)


@dataclass
class Batch(Generic[Row]):
    """A batch of items writing into one output folder (module docstring); use it as a context manager.

    Args:
        command: the command's name, shown in the progress bar and the messages.
        out: the output folder; the manifest is ``out / "manifest.csv"``.
        row_type: the stage's :class:`BatchRow` subclass.
        folders: the folders the items write into (created; stale temporaries removed); ``out`` always is.
        total: the length of the progress bar (items, or e.g. patches with :meth:`advance`).
        unit: what the items are (``slides``, ``volumes``, ``images``).
        counter: a row field whose running sum is shown beside the bar (e.g. ``n_patches``).
    """

    command: str
    out: Path
    row_type: type[Row]
    folders: Sequence[Path] = ()
    total: int | None = None
    unit: str = "slides"
    counter: str | None = None
    rows: dict[str, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self._progress: Progress | None = None
        self._task = None
        self._count = 0

    @property
    def manifest(self) -> Path:
        """The manifest of the output folder."""
        return self.out / "manifest.csv"

    def __enter__(self) -> Batch[Row]:
        if self.out.exists() and not self.out.is_dir():
            raise PathattnError(f"--out {self.out} is a file, not a folder; pass a folder (it is created if missing)")
        for folder in (self.out, *self.folders):
            Path(folder).mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(folder)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        if self.counter:
            columns.append(TextColumn(f"{{task.fields[count]}} {self.counter.removeprefix('n_')}"))
        self._progress = Progress(*columns, console=Console(stderr=True))
        self._progress.start()
        self._task = self._progress.add_task(self.command, total=self.total, count=0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def record(self, row: Row, advance: float = 1) -> None:
        """Keep ``row``, merge it into the manifest, print it if it failed, and advance the bar."""
        self.rows[row.slide_id] = row
        write_manifest(self.manifest, self.row_type, [row])
        if self._progress is None:
            return
        if row.status == "failed":
            self.note(f"[red]failed[/] {escape(row.slide_id)}: {escape(row.error)}")
        elif row.status == "empty":
            self.note(f"[yellow]empty[/] {escape(row.slide_id)}: nothing to process")
        self._count += int(getattr(row, self.counter, 0) or 0) if self.counter else 0
        self._progress.update(self._task, advance=advance, count=self._count)

    def set_total(self, total: float) -> None:
        """Set the length of the bar (once the amount of work is known)."""
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    def advance(self, amount: float) -> None:
        """Advance the bar without a row (e.g. by patches embedded)."""
        if self._progress is not None:
            self._progress.update(self._task, advance=amount)

    def note(self, text: str) -> None:
        """Print a line (rich markup) above the bar, never wrapped."""
        if self._progress is not None:
            self._progress.console.print(text, highlight=False, soft_wrap=True)

    def run(
        self, items: Iterable[Item], work: Callable[[Item], Row], item_id: Callable[[Item], str], workers: int = 1
    ) -> None:
        """Run ``work`` on every item, ``workers`` at a time, recording each row as it arrives.

        Args:
            items: the items.
            work: returns the item's row; it may raise (the item is then recorded as failed). With
                ``workers > 1`` it runs in spawned processes, so it must be picklable (a module-level
                function, or a ``functools.partial`` of one).
            item_id: the id of an item (for the row of a failure).
            workers: items processed in parallel (separate processes, which die with this one).
        """
        items = list(items)
        if workers <= 1 or len(items) <= 1:
            for item in items:
                self.record(guarded(work, item, item_id(item), self.row_type))
            return
        pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)
        )
        with pool:
            futures = [pool.submit(guarded, work, item, item_id(item), self.row_type) for item in items]
            for future in as_completed(futures):
                self.record(future.result())

    def outcome(self, order: Sequence[str] | None = None) -> BatchOutcome[Row]:
        """The rows of this run (in ``order`` of ids when given, else as recorded)."""
        ids = [i for i in order if i in self.rows] if order is not None else list(self.rows)
        return BatchOutcome(self.command, [self.rows[i] for i in ids], self.manifest, self.unit)
