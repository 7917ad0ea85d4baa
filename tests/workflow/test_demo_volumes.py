"""`pathattn demo --study volumes` runs the whole workflow on a tiny PET/CT cohort (batch mode, explain and
evaluate), through the report's volume section; and the demo's commands and choice of studies."""

import csv
import sys
from pathlib import Path

import pytest
import yaml

from pathattn.cli.main import main
from pathattn.io.manifest import read_manifest
from pathattn.workflow import demo
from pathattn.workflow.layout import StudyLayout

RULES = ("tile", "extract", "train", "predict", "evaluate", "report")


@pytest.fixture
def tiny_volume_demo(tmp_path, preset):
    """The volume demo preset with 2 folds of 2 epochs, without explain (which test_demo_workflow.py runs); one
    slice classifier of 1 epoch on 32 px slices, split by slice and without CAMs (4 patients are too few to split
    by patient twice and leave too few lesion slices to score; tests/report/test_classify_section.py runs cams
    and their evaluation as the rules call them)."""
    config = preset("demo_volumes")
    config["train"]["extra"] = "--n-folds 2 --max-epochs 2 --n-boot 20"
    config["explain"]["activate"] = False
    config["classify"]["runs"] = {"resnet18_pet": config["classify"]["runs"]["resnet18_pet"]}
    config["classify"]["extra"] = "--image-size 32 --n-folds 2 --folds '[0]' --split slice --max-epochs 1 --n-boot 20"
    config["cams"]["activate"] = False
    path = tmp_path / "tiny_volumes.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _ids(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return sorted(row["volume_id"] for row in csv.DictReader(f))


@pytest.mark.slow
def test_volume_demo_runs_the_workflow_through_the_report(tmp_path, tiny_volume_demo, dry_run, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--study", "volumes", "--n-patients", "4", "--volume-shape", "[40,40,10]",
            "--volume-configfile", str(tiny_volume_demo), "--cores", "2"]  # fmt: skip
    assert main(args) == 0
    layout = StudyLayout(out / "results" / "demo_volumes")
    assert capsys.readouterr().out.strip().endswith(f"demo finished: report {layout.report}")
    volumes = _ids(out / "volume_cohort" / "samples.csv")
    assert len(volumes) >= 4  # 4 patients, some with a follow-up study
    per_volume = [layout.coords, layout.qc, layout.foreground, layout.features, layout.attention]
    for path in per_volume:
        assert all(path(v).is_file() for v in volumes), path(volumes[0])
    assert not layout.stage("heatmaps").exists() and not (layout.stage("tiles") / "tissue").exists()
    assert all(layout.log(rule).is_file() for rule in RULES)
    for stage in ("tiles", "features"):
        assert [(r["slide_id"], r["status"]) for r in read_manifest(layout.manifest(stage))] == [
            (v, "done") for v in volumes
        ]
    assert layout.wsol_metrics.is_file() and layout.wsol_curves.is_file()
    assert layout.classify_metrics("resnet18_pet").is_file() and layout.log("classify", "resnet18_pet").is_file()
    html = layout.report.read_text()
    assert all(f'id="{section}"' in html for section in ("metrics", "volumes", "classifiers")), html[:2000]
    assert f'id="volume-{volumes[0]}"' in html
    assert dry_run(out, "--configfile", tiny_volume_demo) == []  # finished: nothing to be done


def test_the_volume_cohort_is_made_by_pathattn_synth_volume(tmp_path):
    command = demo.VolumeCohort(n_patients=3, seed=1, shape=(48, 40, 12)).command(tmp_path)
    assert command == [str(Path(sys.executable).parent / "pathattn"), "synth", "volume", "--out", str(tmp_path),
                       "--n-patients", "3", "--seed", "1", "--shape", "[48,40,12]"]  # fmt: skip


@pytest.mark.parametrize(("study", "names"), [("all", ["slides", "volumes"]), ("slides", ["slides"]),
                                              ("volumes", ["volumes"]),
                                              ("volume_segmentation", ["volume_segmentation"])])  # fmt: skip
def test_the_studies_of_the_demo(study, names):
    slides, volumes = demo.DemoCohort(4, 0, 512, 512), demo.VolumeCohort(4, 0)
    studies = demo.demo_studies(study, slides, volumes, {"volumes": "v.yaml"})
    assert [s.name for s in studies] == names
    assert all(s.cohort is (slides if s.name == "slides" else volumes) for s in studies)
    repo = demo.repository()
    configs = {s.name: s.config(repo) for s in studies}
    assert configs.get("slides", repo / "workflows/demo/config.yaml") == repo / "workflows/demo/config.yaml"
    assert configs.get("volumes", Path("v.yaml").resolve()) == Path("v.yaml").resolve()
    segmentation = repo / "workflows/demo_segmentation/config.yaml"
    assert configs.get("volume_segmentation", segmentation) == segmentation and segmentation.is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--study", "volumes", "--volume-configfile", "{tmp}/none.yaml"],
            "--volume-configfile {tmp}/none.yaml is not",
        ),
        (["--volume-shape", "[48,48]"], "--volume-shape must be three integers I, J, K"),
        (["--study", "volumes", "--n-patients", "0"], "--n-patients must be at least 1"),
        (["--study", "ct"], "--study"),
    ],
)
def test_bad_volume_options(tmp_path, capfd, args, needle):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["demo", "--out", str(tmp_path / "o"), *args]) == 2
    assert needle.format(tmp=tmp_path) in capfd.readouterr().err
    assert not (tmp_path / "o" / "cohort").exists()  # nothing of the slide study was made
