"""`pathattn report` on the command line: the path printed, the default output, one-line errors (exit 2)."""

import shutil

import pytest

from pathattn.cli.main import main


def run_report(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_writes_the_report_and_prints_its_path(study, tmp_path, capsys):
    out = tmp_path / "sub" / "study.html"
    code, stdout, _ = run_report(capsys, "--run", study["root"], "--out", out, "--annotations", study["annotations"],
                                 "--title", "My <study>", "--max-slides", "1")  # fmt: skip
    assert code == 0 and stdout.strip() == str(out)
    text = out.read_text()
    assert "<h1>My &lt;study&gt;</h1>" in text and "2 slides omitted" in text
    assert not list(out.parent.glob(".*tmp-*"))  # written atomically, no temporary left


def test_default_output_in_the_run_folder(multiclass_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(multiclass_run, run)
    code, stdout, _ = run_report(capsys, "--run", run, "--samples", run.parent / "missing.csv")
    assert code == 2  # a sample sheet the user names must exist
    code, stdout, _ = run_report(capsys, "--run", run)
    assert code == 0 and stdout.strip() == str(run / "report.html") and (run / "report.html").is_file()


def _corrupt_predictions(run):
    (run / "predictions.csv").write_bytes(b"\xff\xfe\x00garbage")


def _drop_column(run):
    text = (run / "predictions.csv").read_text().replace("prob_b", "prob_x")
    (run / "predictions.csv").write_text(text)


def _bad_json(run):
    (run / "metrics.json").write_text("{not json")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_predictions, "predictions.csv is not a readable CSV file"),
        (_drop_column, "predictions.csv lacks the column(s) prob_b of a classification run"),
        (_bad_json, "metrics.json is not valid JSON"),
    ],
)
def test_unreadable_inputs_are_one_line_errors(multiclass_run, tmp_path, capsys, damage, message):
    run = tmp_path / "run"
    shutil.copytree(multiclass_run, run)
    damage(run)
    code, _, stderr = run_report(capsys, "--run", run)
    assert code == 2 and message in stderr and "re-run 'pathattn train'" in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("pathattn report: error:")


def test_missing_or_empty_run_folders(tmp_path, capsys):
    code, _, stderr = run_report(capsys, "--run", tmp_path / "nope")
    assert code == 2 and "--run folder not found" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_report(capsys, "--run", tmp_path)
    assert code == 2 and "holds neither metrics.json nor any of tiles/" in stderr
    (tmp_path / "train").mkdir()
    code, _, stderr = run_report(capsys, "--run", tmp_path)
    assert code == 2 and "has nothing to report yet" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_report(capsys, "--run", tmp_path, "--annotations", tmp_path / "gt")
    assert code == 2 and "--annotations folder not found" in stderr


def test_an_out_that_cannot_be_the_report_is_one_line(multiclass_run, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "existing"
    (folder / "keep.txt").parent.mkdir()
    (folder / "keep.txt").write_text("kept")
    code, _, stderr = run_report(capsys, "--run", multiclass_run, "--out", folder)
    assert code == 2 and stderr == (
        f"pathattn report: error: --out {folder} is a folder; pass the HTML file to write (e.g. "
        f"{folder / 'report.html'})\n"
    )
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    blocked = tmp_path / "file.txt"
    blocked.write_text("a file, not a folder")
    code, _, stderr = run_report(capsys, "--run", multiclass_run, "--out", blocked / "report.html")
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith(f"pathattn report: error: --out {blocked / 'report.html'} cannot be written (")
    assert (
        stderr.endswith("); pass a file in a folder you can write\n") and blocked.read_text() == "a file, not a folder"
    )

    def denied(path, text):  # noqa: ANN001, ANN202 - the tests run as root, who may write anywhere
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("pathattn.report.html.write_text_atomic", denied)
    code, _, stderr = run_report(capsys, "--run", multiclass_run, "--out", tmp_path / "r.html")
    assert code == 2 and stderr == (
        f"pathattn report: error: --out {tmp_path / 'r.html'} cannot be written (Permission denied); pass a file in "
        "a folder you can write\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "file.txt"]
