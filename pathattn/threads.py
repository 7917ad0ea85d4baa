"""torch's intra-op threads for a block of code (shared by the stages that run many small operations)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads of torch (None: as they are), restored afterwards.

    One thread is the fastest for many small operations (a network of a few thousand parameters on bags of a few
    instances, a counterfactual search's passes over arrays of ~1 MB): with more, every operation waits for the
    others, which costs far more than it computes when the cores are busy.
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
