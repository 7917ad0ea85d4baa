"""The out-of-fold checkpoint of each slide of a train run: recorded paths, moved runs and bad runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathattn.errors import PathattnError
from pathattn.io.runs import checkpoint_file, run_checkpoints


def _run(tmp_path, name="run"):
    """A run folder with two folds' checkpoints and predictions.csv recording them by absolute path."""
    run = tmp_path / name
    rows = ["slide_id,fold,checkpoint,prediction"]
    for fold, slides in enumerate((("a", "b"), ("c",))):
        checkpoint = run / f"fold_{fold}" / "checkpoints" / "best.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"")
        rows += [f"{slide},{fold},{checkpoint},tumor" for slide in slides]
    (run / "predictions.csv").write_text("\n".join(rows) + "\n")
    return run


def test_each_slide_gets_its_folds_checkpoint(tmp_path):
    run = _run(tmp_path)
    found = run_checkpoints(run)
    assert found == {s: run / f"fold_{f}" / "checkpoints" / "best.ckpt" for s, f in (("a", 0), ("b", 0), ("c", 1))}


def test_a_moved_run_finds_its_checkpoints_under_its_folds(tmp_path):
    moved = _run(tmp_path).rename(tmp_path / "moved")
    assert run_checkpoints(moved)["c"] == moved / "fold_1" / "checkpoints" / "best.ckpt"


def test_bad_runs_get_clear_errors(tmp_path):
    with pytest.raises(PathattnError, match="has no predictions.csv with slide_id, fold and checkpoint columns"):
        run_checkpoints(tmp_path)
    run = _run(tmp_path)
    (run / "fold_1" / "checkpoints" / "best.ckpt").unlink()
    with pytest.raises(PathattnError, match=r"checkpoint of slide c not found: .*fold_1/checkpoints/best.ckpt"):
        run_checkpoints(run)


def test_a_checkpoint_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    with pytest.raises(PathattnError, match=r"^--checkpoint not found: .*nope.ckpt$"):
        checkpoint_file(tmp_path / "nope.ckpt")
    with pytest.raises(PathattnError, match=r"^--checkpoint .* is a folder; pass a checkpoint file"):
        checkpoint_file(tmp_path)
    run = _run(tmp_path)
    denied = run / "fold_1" / "checkpoints" / "best.ckpt"
    real_open = Path.open

    def path_open(self, *args, **kwargs):  # noqa: ANN001, ANN202 - the tests run as root, who may read anything
        if self == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", path_open)
    with pytest.raises(PathattnError) as error:
        run_checkpoints(run)
    assert str(error.value) == (
        f"--run {run}: the checkpoint of slide c: cannot read {denied}: permission denied; give your user read access"
    )
