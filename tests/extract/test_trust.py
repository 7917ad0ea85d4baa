"""``pathattn extract`` under bad inputs: one bad slide fails alone, resume never keeps features that are not
current, and a killed extract leaves no process behind."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

from pathattn.cli.main import main
from pathattn.extract.encoders import create_encoder
from pathattn.extract.resume import recipe, stale_reason
from pathattn.io.bags import read_bag
from pathattn.io.coords import PatchCoords, read_coords, write_coords
from pathattn.io.manifest import read_manifest

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


def extract(tiled, out: Path, *extra: str) -> int:
    args = ["extract", "--coords", str(tiled.out), "--out", str(out), "--encoder", "test_resnet", "--device", "cpu"]
    return main([*args, "--workers", "0", *extra])


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("pathattn")]


def statuses(out: Path) -> dict[str, tuple[str, str]]:
    return {row["slide_id"]: (row["status"], row["error"]) for row in read_manifest(out / "manifest.csv")}


def assert_clean(root: Path, out: Path, before: set[str]) -> None:
    """Nothing half-written in ``out`` and nothing new outside it."""
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert {p.name for p in root.iterdir()} - before <= {out.name}


def rewrite_coords(path: Path, change) -> None:  # noqa: ANN001 - change: (N, 2) array -> (M, 2) array
    data = read_coords(path)
    data.coords = change(data.coords.copy())
    n = len(data.coords)
    data.tissue_fraction, data.annotation_fraction = np.ones(n, np.float32), np.zeros((n, 0), np.float32)
    write_coords(path, data)


def test_coordinates_outside_the_slide_fail_that_slide(tiled, tmp_path, capsys):
    def outside(xy):
        xy[0], xy[1] = (10**9, 10**9), (-5000, 0)
        return xy

    rewrite_coords(tiled.coords_path("b"), outside)
    before, out = {p.name for p in tmp_path.iterdir()}, tmp_path / "feats"
    assert extract(tiled, out) == 1
    rows = statuses(out)
    assert rows["a"][0] == "done" and rows["b"][0] == "failed"
    assert "2 of 9 patches lie outside the 2048x1536 px slide" in rows["b"][1] and "x=1000000000" in rows["b"][1]
    errors = error_lines(capsys)
    assert len(errors) == 1 and "1 of 2 slides failed, first: b:" in errors[0] and "tile it again" in errors[0]
    assert not (out / "h5_files" / "b.h5").exists()
    assert_clean(tmp_path, out, before)


def test_one_unreadable_coordinates_file_among_several_fails_alone(tiled, tmp_path, capsys):
    coords = tiled.coords_path("a").parent
    data = tiled.coords_path("a").read_bytes()
    (coords / "truncated.h5").write_bytes(data[: len(data) // 2])
    with h5py.File(coords / "nocoords.h5", "w") as f:
        f["tissue_fraction"] = np.ones(3, np.float32)
    with h5py.File(coords / "flat.h5", "w") as f:
        f["coords"] = np.arange(8, dtype=np.int64)  # 1-D: never reshaped into (4, 2) garbage
    shutil.copy(tiled.coords_path("a"), coords / "badplan.h5")
    with h5py.File(coords / "badplan.h5", "a") as f:
        f["coords"].attrs["patch_level"] = 7
    before, out = {p.name for p in tmp_path.iterdir()}, tmp_path / "feats"
    assert extract(tiled, out) == 1
    rows = statuses(out)
    assert {s: r[0] for s, r in rows.items()} == {
        "a": "done", "b": "done", "badplan": "failed", "flat": "failed", "nocoords": "failed", "truncated": "failed",
    }  # fmt: skip
    assert "is not a readable HDF5 file" in rows["truncated"][1] and "run 'pathattn tile' again" in rows["truncated"][1]
    assert "has no 'coords' dataset" in rows["nocoords"][1]
    assert "'coords' is int64 of shape (8,), not (patches, 2)" in rows["flat"][1]
    assert "reads level 7 but" in rows["badplan"][1]
    assert all("\n" not in error for _, error in rows.values())
    errors = error_lines(capsys)
    assert len(errors) == 1 and errors[0].startswith("pathattn extract: error: 4 of 6 slides failed")
    assert sorted(p.name for p in (out / "h5_files").iterdir()) == ["a.h5", "b.h5"]
    assert_clean(tmp_path, out, before)


def test_resume_refuses_features_of_other_coordinates_or_settings(tiled, tmp_path, capsys):
    out = tmp_path / "feats"
    assert extract(tiled, out) == 0
    made = {p.name: p.stat().st_mtime_ns for p in (out / "h5_files").iterdir()}
    assert extract(tiled, out) == 0 and {r[0] for r in statuses(out).values()} == {"skipped"}
    capsys.readouterr()
    for extra, reason in [
        (["--precision", "bf16"], "they were made with precision fp32 (this run: bf16)"),
        (["--dtype", "float16"], "they were made with dtype float32 (this run: float16)"),
    ]:
        assert extract(tiled, out, *extra) == 2
        errors = error_lines(capsys)
        assert errors == [
            f"pathattn extract: error: slide a: its features in --out {out} cannot be kept: {reason}; pass "
            "--overwrite to extract them again, or use another --out"
        ]
    rewrite_coords(tiled.coords_path("b"), lambda xy: xy[:-1])  # the slide was tiled again
    assert extract(tiled, out) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "slide b: its features in --out" in errors[0]
    assert "they were made from other coordinates" in errors[0] and "--overwrite" in errors[0]
    assert {p.name: p.stat().st_mtime_ns for p in (out / "h5_files").iterdir()} == made  # nothing was touched
    assert extract(tiled, out, "--overwrite") == 0
    np.testing.assert_array_equal(
        read_bag(out / "h5_files" / "b.h5").coords, read_coords(tiled.coords_path("b")).coords
    )
    assert extract(tiled, out) == 0


def test_the_recipe_covers_the_encoder_settings_and_the_read_plan(tiled, tmp_path):
    encoder = create_encoder("test_resnet")
    coords = read_coords(tiled.coords_path("a"))
    out = tmp_path / "feats"
    assert extract(tiled, out) == 0
    path = out / "h5_files" / "a.h5"
    current = recipe(encoder, "fp32", "float32", coords)
    assert stale_reason(path, current) is None
    assert "input_size [160, 160] (this run: [256, 256])" in stale_reason(path, current | {"input_size": (256, 256)})
    replanned = PatchCoords(coords.coords, coords.attrs | {"read_size": 256})
    assert "other coordinates" in stale_reason(path, recipe(encoder, "fp32", "float32", replanned))
    with h5py.File(path, "a") as f:
        del f.attrs["plan_sha256"]
    assert "record no plan_sha256" in stale_reason(path, current)
    path.write_bytes(b"not hdf5")
    assert stale_reason(path, current).startswith("the file cannot be read")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _child_subreaper(on: bool) -> None:
    """Make this process adopt its orphaned descendants (``prctl(PR_SET_CHILD_SUBREAPER)``), or stop."""
    assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


def _reap(pids: set[int]) -> dict[int, int]:
    """Wait for each of ``pids`` (children of this process by then, or adopted as they are orphaned): their status."""
    ended: dict[int, int] = {}
    while not pids <= set(ended):
        pid, status = os.waitpid(-1, 0)
        ended[pid] = status
    return {pid: status for pid, status in ended.items() if pid in pids}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guarantee uses Linux's PR_SET_PDEATHSIG")
def test_a_killed_extract_leaves_no_process(make_slide, tmp_path, texture):
    """SIGKILL of ``pathattn extract --workers 2`` mid-run: its fork server, workers and resource tracker all end.

    The test process adopts the orphans (a child subreaper), so it reaps each one and reads how it ended: the
    fork server and the workers by the SIGKILL the kernel sends when their parent dies, the resource tracker by
    exiting on its own.
    """
    slide = make_slide("big", texture(), mpp=0.25)
    rng = np.random.default_rng(0)
    for k in range(3):  # 3 slides of 400 random patches: killed while reading the second
        xy = rng.integers(0, [2048 - 256, 1536 - 256], size=(400, 2))
        attrs = {"patch_level": 0, "read_size": 256, "patch_size": 256, "slide_path": str(slide),
                 "level0_width": 2048, "level0_height": 1536, "mpp_level0": 0.25}  # fmt: skip
        write_coords(tmp_path / "tiles" / "coords" / f"s{k}.h5", PatchCoords(xy, attrs))
    pathattn = Path(sys.executable).with_name("pathattn")
    command = [str(pathattn), "extract", "--coords", str(tmp_path / "tiles"), "--out", str(tmp_path / "feats"),
               "--encoder", "resnet18", "--device", "cpu", "--workers", "2", "--batch-size", "2"]  # fmt: skip
    _child_subreaper(True)
    process, roles = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), {}
    try:
        while len(_descendants(process.pid)) < 4:  # tracker, server, 2 workers (a hang: pytest's timeout)
            assert process.poll() is None, "extract ended before it could be killed"
            time.sleep(0.1)
        while not any((tmp_path / "feats" / "h5_files").glob("s*.h5")):  # mid-run: the first slide is written
            assert process.poll() is None, "extract ended before it could be killed"
            time.sleep(0.1)
        started = _descendants(process.pid)
        assert len(started) >= 4 and process.poll() is None
        roles = {p.pid: "tracker" if "resource_tracker" in " ".join(p.cmdline()) else "killed" for p in started}
        assert sorted(roles.values()).count("tracker") == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        ended = _reap(set(roles))  # returns once every process of the killed run has ended
        _child_subreaper(False)
    for pid, status in ended.items():
        by_kernel = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert by_kernel if roles[pid] == "killed" else os.WIFEXITED(status), (pid, roles[pid], status)


def test_a_failing_device_fails_the_unfinished_slides_and_keeps_the_finished(tiled, tmp_path, capsys, monkeypatch):
    from pathattn.extract import run

    calls = {"n": 0}
    forward = run.Embedder.__call__

    def flaky(self, images):  # noqa: ANN001, ANN202 - the second batch dies as an out-of-memory device would
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA out of memory")
        return forward(self, images)

    monkeypatch.setattr(run.Embedder, "__call__", flaky)
    out = tmp_path / "feats"
    assert extract(tiled, out, "--batch-size", "9") == 1
    assert statuses(out) == {"a": ("done", ""), "b": ("failed", "RuntimeError: CUDA out of memory")}
    assert [p.name for p in (out / "h5_files").iterdir()] == ["a.h5"]
    assert len(error_lines(capsys)) == 1
