"""`pathattn demo`: the commands it runs and its errors (the whole run: tests/workflow)."""

import sys
from pathlib import Path

import pytest

from pathattn.cli.main import main
from pathattn.workflow import demo
from pathattn.workflow.layout import StudyLayout

REPO = Path(__file__).resolve().parents[2]


def test_snakemake_command_runs_the_workflow_in_the_out_folder(tmp_path):
    config = REPO / "workflows" / "demo" / "config.yaml"
    command = demo.snakemake_command(REPO, tmp_path, config, None)
    assert command[0] == str(Path(sys.executable).parent / "snakemake")
    assert command[1:] == [
        "-s", str(REPO / "snakemake" / "Snakefile"), "--configfile", str(config), "--directory", str(tmp_path),
        "--workflow-profile", str(REPO / "snakemake" / "profiles" / "local"), "--cores", "all",
    ]  # fmt: skip
    assert demo.snakemake_command(REPO, tmp_path, config, 3)[-2:] == ["--cores", "3"]
    assert demo.repository() == REPO


def test_the_cohort_is_made_by_pathattn_synth(tmp_path):
    command = demo.DemoCohort(n_slides=4, seed=1, width=512, height=256).command(tmp_path)
    assert command == [str(Path(sys.executable).parent / "pathattn"), "synth", "wsi", "--out", str(tmp_path),
                       "--n-slides", "4", "--seed", "1", "--width", "512", "--height", "256"]  # fmt: skip


def test_study_layout_of_a_study_config(tmp_path):
    assert demo.study_layout(REPO / "workflows" / "demo" / "config.yaml") == StudyLayout(Path("results/demo"))
    (tmp_path / "s.yaml").write_text("study: x\nresults: out/x\n")
    assert demo.study_layout(tmp_path / "s.yaml").report == Path("out/x/report.html")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cores", "0"], "--cores must be at least 1"),
        (["--configfile", "{tmp}/none.yaml"], "--configfile {tmp}/none.yaml is not a study config"),
        (["--configfile", "{tmp}/list.yaml"], "--configfile {tmp}/list.yaml is not a study config"),
        (["--n-slides", "0"], "--n-slides must be at least 1"),
    ],
)
def test_bad_options(tmp_path, capfd, args, needle):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["demo", "--out", str(tmp_path / "o"), *args]) == 2
    assert needle.format(tmp=tmp_path) in capfd.readouterr().err


def test_without_the_repository(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(demo, "__file__", str(tmp_path / "site-packages" / "pathattn" / "workflow" / "demo.py"))
    assert main(["demo", "--out", str(tmp_path / "o")]) == 2
    assert "run the demo from a checkout of the repository" in capsys.readouterr().err


def test_a_failed_workflow_exits_1_and_says_where_the_logs_are(tmp_path, capfd):
    config = tmp_path / "broken.yaml"
    config.write_text((REPO / "workflows" / "demo" / "config.yaml").read_text() + "unknown_key: 1\n")
    out = tmp_path / "o"
    args = ["demo", "--out", str(out), "--n-slides", "1", "--width", "512", "--height", "512", "--configfile"]
    assert main([*args, str(config)]) == 1
    err = capfd.readouterr().err
    assert "('unknown_key' was unexpected)" in err
    assert err.strip().splitlines()[-1] == (
        f"pathattn demo: error: the workflow failed (snakemake exit 1); each job's log is under "
        f"{out / 'results' / 'demo' / 'logs'}, and running the demo again resumes"
    )
    assert (out / "cohort" / "samples.csv").is_file()
