"""The whole-slide job and ``pathattn evaluate wsol --scores`` on the mini cohort (tests/evaluate/conftest.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.evaluate.run import SlideWsolJob, run_slide_wsol

CALIBRATION = ("s0", "s1", "s5")


def job(cohort, out: Path, **options) -> SlideWsolJob:
    defaults = {"scores": cohort.scores, "tiles": cohort.tiles, "features": cohort.features, "raster_mpp": 4.0}
    return SlideWsolJob(
        annotations=cohort.annotations, out=out, **(defaults | {"calibration_ids": CALIBRATION} | options)
    )


def test_outputs_protocol_and_baselines(mini_cohort, tmp_path: Path) -> None:
    out = tmp_path / "out"
    metrics = run_slide_wsol(job(mini_cohort, out, normalisations=("percentile", "minmax"), smooth_um=(0.0, 10.0)))
    assert {p.name for p in out.iterdir()} == {"metrics.json", "summary.csv", "per_slide.csv", "pr_curves.png"}
    assert json.loads((out / "metrics.json").read_text())["splits"] == metrics["splits"]
    assert metrics["splits"]["calibration"] == list(CALIBRATION)
    variants = {"percentile", "percentile, sigma 10 um", "minmax", "minmax, sigma 10 um"}
    assert set(metrics["calibration"]["variants"]) == variants
    chosen = metrics["calibration"]["chosen"]["name"]
    best = max(metrics["calibration"]["variants"].items(), key=lambda kv: kv[1]["pxap"])[0]
    assert chosen == best and metrics["calibration"]["selected_by"] == "pxap"
    model, uniform, few_shot = (metrics["methods"][m]["test"] for m in ("model", "uniform", "few_shot"))
    assert model["pxap"] > uniform["pxap"] + 0.3 and few_shot["pxap"] > uniform["pxap"] + 0.3
    assert uniform["pxap"] == pytest.approx(uniform["precision"])  # a constant map: PxAP is the prevalence
    assert uniform["patch_auroc"] == 0.5 and model["patch_auroc"] > 0.85
    # the test split's metrics at the calibration split's threshold
    assert model["threshold"] == metrics["methods"]["model"]["calibration"]["threshold"]
    assert model["n_box_samples"] == 3 and 0 <= model["max_box_acc_v2"] <= 1
    with open(out / "per_slide.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 9 and {r["has_tumor"] for r in rows if r["slide_id"] == "s7"} == {"0"}


def test_unannotated_slides_are_skipped_and_splits_need_tumor(mini_cohort, tmp_path: Path) -> None:
    (mini_cohort.annotations / "s8.geojson").unlink()
    drawn = job(mini_cohort, tmp_path / "a", baselines=("uniform",), calibration_ids=None, n_calibration=4)
    metrics = run_slide_wsol(drawn)
    assert "s8" in metrics["skipped"] and "s8" not in sum(metrics["splits"].values(), [])
    calibration = metrics["splits"]["calibration"]
    assert len(calibration) == 4 and len(set(calibration) & {"s0", "s1", "s2", "s3", "s4"}) == 2
    with pytest.raises(PathattnError, match="calibration split has no slide with tumor"):
        run_slide_wsol(job(mini_cohort, tmp_path / "b", calibration_ids=("s5", "s6")))
    with pytest.raises(PathattnError, match="needs --features"):
        run_slide_wsol(job(mini_cohort, tmp_path / "c", features=None, baselines=("few_shot",)))


def test_per_patch_maps_and_explain_records(mini_cohort, tmp_path: Path) -> None:
    maps_dir, records = tmp_path / "cams", tmp_path / "explain" / "slides"
    records.mkdir(parents=True)
    for path in sorted((mini_cohort.scores / "attention").glob("*.h5")):
        with h5py.File(path) as f:
            attention, coords = f["attention"][:, 0], f["coords"][:]
            attrs = dict(f["coords"].attrs)
        maps_dir.mkdir(exist_ok=True)
        with h5py.File(maps_dir / path.name, "w") as f:
            f.create_dataset("coords", data=coords).attrs.update(attrs)
            f.create_dataset("cam", data=np.repeat(attention[:, None, None], 4, 1).repeat(4, 2))
        (records / f"{path.stem}.json").write_text(json.dumps({"patches": {"single_effect": attention.tolist()}}))
    cams = run_slide_wsol(job(mini_cohort, tmp_path / "a", scores=maps_dir, dataset="cam", baselines=()))
    explain = job(mini_cohort, tmp_path / "b", scores=tmp_path / "explain", dataset="single_effect", baselines=())
    cams, effects = cams["methods"]["model"]["test"], run_slide_wsol(explain)["methods"]["model"]["test"]
    assert cams["pxap"] > 0.3 and effects["pxap"] > 0.3  # the uniform map's PxAP (prevalence) is 0.06
    with pytest.raises(PathattnError, match="has no per-patch 'effect'"):
        run_slide_wsol(job(mini_cohort, tmp_path / "c", scores=tmp_path / "explain", dataset="effect"))


def test_cli_whole_slides_and_errors(mini_cohort, tmp_path: Path, capsys) -> None:
    base = ["evaluate", "wsol", "--scores", str(mini_cohort.scores), "--annotations", str(mini_cohort.annotations)]
    options = ["--tiles", str(mini_cohort.tiles), "--raster-mpp", "4", "--calibration-ids", *CALIBRATION]
    assert main([*base, *options, "--out", str(tmp_path / "out")]) == 0
    assert "model (test, 6): pxap" in capsys.readouterr().err
    summary = list(csv.DictReader(open(tmp_path / "out" / "summary.csv")))
    expected = {(m, s) for m in ("model", "uniform") for s in ("calibration", "test")}
    assert {(r["method"], r["split"]) for r in summary} == expected
    assert main([*base, "--maps", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not both or neither" in capsys.readouterr().err
    assert main([*base, *options, "--head", "3", "--out", str(tmp_path / "y")]) == 2
    assert "--head 3 does not exist" in capsys.readouterr().err


def test_report_section_and_config_file(mini_cohort, tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "predict").mkdir(parents=True)
    config = Path(__file__).resolve().parents[2] / "configs" / "evaluate" / "wsol.yaml"
    args = ["evaluate", "wsol", "--config", str(config), "--scores", str(mini_cohort.scores), "--raster-mpp", "4"]
    args += ["--annotations", str(mini_cohort.annotations), "--tiles", str(mini_cohort.tiles)]
    assert main([*args, "--calibration-ids", *CALIBRATION, "--out", str(results / "evaluate")]) == 0
    metrics = json.loads((results / "evaluate" / "metrics.json").read_text())
    assert len(metrics["calibration"]["variants"]) == 4  # the config's 2 normalisations x 2 smoothings
    assert main(["report", "--run", str(results), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "Weakly supervised localization" in html and metrics["calibration"]["chosen"]["name"] in html
    assert 'alt="pixel precision-recall curves"' in html


def test_masked_patches_are_left_out(mini_cohort, tmp_path: Path) -> None:
    path = mini_cohort.scores / "attention" / "s2.h5"
    with h5py.File(path, "r+") as f:
        attention = f["attention"][:]
        attention[:5] = -np.inf  # instances the model masked
        f["attention"][...] = attention
    test = run_slide_wsol(job(mini_cohort, tmp_path / "out", baselines=()))["methods"]["model"]["test"]
    assert np.isfinite(test["patch_auroc"]) and np.isfinite(test["pxap"]) and test["pxap"] > 0.3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--raster-mpp", "100000"], "--raster-mpp 100000 is too coarse: the 20 µm patches of slide s0 would span "
         "less than 2 raster pixels; use at most 10 µm/px"),
        (["--raster-mpp", "0.0001"], "--raster-mpp 0.0001 is too fine: the raster of slide s0 would exceed 50,000,000 "
         "pixels; use at least 0.0253 µm/px"),
        (["--raster-mpp", "-1"], "--raster-mpp must be positive (µm per raster pixel, e.g. 16); got -1.0"),
        (["--smooth-um", "0", "1e9"], "--smooth-um values must be in [0, 200] (0: none; at most 50 raster pixels of "
         "--raster-mpp 4); got 0 1e+09"),
        (["--smooth-um", "-5"], "--smooth-um values must be in [0, 200]"),
        (["--step", "1e-9"], "--step must be in [0.0001, 1) (at most 10,000 thresholds), e.g. 0.001; got 1e-09"),
        (["--step", "1"], "--step must be in [0.0001, 1)"),
        (["--seed", "-1"], "--n-calibration must be at least 1 and --seed 0 or more"),
        (["--n-calibration", "0"], "--n-calibration must be at least 1 and --seed 0 or more"),
        (["--head", "-1"], "--head -1 does not exist"),
    ],
)  # fmt: skip
def test_cli_bad_values_are_refused_before_scoring(mini_cohort, tmp_path: Path, capsys, extra, message) -> None:
    base = ["evaluate", "wsol", "--scores", str(mini_cohort.scores), "--annotations", str(mini_cohort.annotations)]
    options = ["--tiles", str(mini_cohort.tiles), "--raster-mpp", "4", "--calibration-ids", *CALIBRATION]
    before, out = {p.name for p in tmp_path.iterdir()}, tmp_path / "out"
    assert main([*base, *options, *extra, "--out", str(out)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"pathattn evaluate: error: {message}")
    assert {p.name for p in tmp_path.iterdir()} == before  # nothing written, in --out or elsewhere
