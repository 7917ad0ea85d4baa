"""Atomic writes: all or nothing under the final name."""

import os

import pytest

from pathattn.io.atomic import atomic_path, remove_stale_temporaries, write_text_atomic


def test_success_renames(tmp_path):
    target = tmp_path / "sub" / "x.csv"
    write_text_atomic(target, "a,b\n")
    assert target.read_text() == "a,b\n"
    assert [p.name for p in target.parent.iterdir()] == ["x.csv"]


def test_failure_leaves_nothing_and_keeps_old(tmp_path):
    target = tmp_path / "x.h5"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.suffix == ".h5" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


def test_stale_temporaries_of_dead_processes_only(tmp_path):
    dead = tmp_path / ".a.tmp-999999999-abcd.h5"
    alive = tmp_path / f".b.tmp-{os.getpid()}-abcd.h5"
    dead.write_text("")
    alive.write_text("")
    assert remove_stale_temporaries(tmp_path) == 1
    assert not dead.exists() and alive.exists()
