"""torch's intra-op threads for a block (pathattn.threads)."""

from __future__ import annotations

import pytest
import torch

from pathattn.threads import intra_op_threads


def test_intra_op_threads_are_set_for_the_block_and_restored():
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), intra_op_threads(1):
        raise RuntimeError("a failing fit")
    assert torch.get_num_threads() == before
    with intra_op_threads(None):
        assert torch.get_num_threads() == before
