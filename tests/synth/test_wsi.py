"""Tests of the synthetic slide and cohort generator (small slides, a few seconds in all)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openslide
import pytest
import shapely
from shapely.geometry import box

from pathattn.cli.main import main
from pathattn.io.geojson import read_annotations
from pathattn.synth.cohort import _survival, generate_cohort
from pathattn.synth.wsi import synth_slide

SMALL: dict[str, Any] = {"width": 1536, "height": 1024, "mpp": 1.0}
SEED = 4  # the first three slides of this seed hold a patient with two slides, and both labels
H_OD = np.array([0.62, 0.72, 0.30])
E_OD = np.array([0.12, 0.74, 0.38])


def read_pixels(path: Path) -> np.ndarray:
    """Level 0 of a slide as ``(height, width, 3)`` uint8."""
    with openslide.OpenSlide(str(path)) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))


def rows(csv_path: Path) -> list[dict[str, str]]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, 3, SEED, **SMALL)
    return out


@pytest.mark.parametrize(
    ("layout", "mpp", "metadata", "levels", "vendor", "power"),
    [
        ("pyramid", 1.0, True, 2, "generic-tiff", None),
        ("pyramid", 1.0, False, 2, "generic-tiff", None),
        ("single-level", 1.0, True, 1, "generic-tiff", None),
        ("aperio", 0.25, True, 2, "aperio", "40"),
        ("aperio", 0.5, False, 2, "aperio", "20"),
    ],
)
def test_layouts_open_in_openslide(tmp_path, layout, mpp, metadata, levels, vendor, power):
    path, _ = synth_slide(
        tmp_path / "s.tif", seed=1, label=1, width=1536, height=1024, mpp=mpp, layout=layout, mpp_metadata=metadata
    )
    assert path.suffix == (".svs" if layout == "aperio" else ".tif")
    with openslide.OpenSlide(str(path)) as slide:
        props = slide.properties
        assert slide.level_count == levels
        assert slide.dimensions == (1536, 1024)
        if levels == 2:
            assert slide.level_dimensions[1] == (384, 256)
        assert props["openslide.vendor"] == vendor
        assert props.get("openslide.objective-power") == power
        if metadata:
            assert float(props["openslide.mpp-x"]) == pytest.approx(mpp, rel=1e-4)
            assert float(props["openslide.mpp-y"]) == pytest.approx(mpp, rel=1e-4)
        else:
            assert "openslide.mpp-x" not in props


def test_default_pyramid_has_three_levels(tmp_path):
    path, _ = synth_slide(tmp_path / "s.tif", seed=0, label=0, width=6144, height=4608, mpp=0.5)
    with openslide.OpenSlide(str(path)) as slide:
        assert slide.level_dimensions == ((6144, 4608), (1536, 1152), (384, 288))


def test_cohort_files_and_samples_csv(cohort):
    table = rows(cohort / "samples.csv")
    assert list(table[0]) == ["slide_id", "patient_id", "label", "time", "event", "slide_path"]
    assert [r["slide_id"] for r in table] == ["slide_000", "slide_001", "slide_002"]
    assert {r["label"] for r in table} == {"0", "1"}
    for r in table:
        assert (cohort / r["slide_path"]).is_file()
        assert (cohort / "annotations" / f"{r['slide_id']}.geojson").is_file()
        assert float(r["time"]) > 0 and r["event"] in {"0", "1"}
    by_patient: dict[str, list[dict[str, str]]] = {}
    for r in table:
        by_patient.setdefault(r["patient_id"], []).append(r)
    pairs = [p for p in by_patient.values() if len(p) == 2]
    assert pairs, "expected a patient with two slides"
    for pair in pairs:
        assert pair[0]["label"] == pair[1]["label"]
        assert (pair[0]["time"], pair[0]["event"]) == (pair[1]["time"], pair[1]["event"])
    meta = json.loads((cohort / "cohort.json").read_text())
    assert meta["params"]["seed"] == SEED and meta["params"]["n_slides"] == 3
    truth = {s["slide_id"]: s for s in meta["slides"]}
    for r in table:
        t = truth[r["slide_id"]]
        assert t["label"] == int(r["label"])
        assert (t["n_tumor_regions"] > 0) == (t["label"] == 1) == (t["tumor_area_mm2"] > 0)


def test_same_seed_same_cohort_and_slide_k_independent_of_n(cohort, tmp_path):
    again = generate_cohort(tmp_path / "again", 3, SEED, **SMALL)
    assert again.read_bytes() == (cohort / "samples.csv").read_bytes()
    shorter = tmp_path / "two"
    generate_cohort(shorter, 2, SEED, **SMALL)
    for k in range(3):
        name = f"slides/slide_{k:03d}.tif"
        assert np.array_equal(read_pixels(tmp_path / "again" / name), read_pixels(cohort / name))
        if k < 2:
            assert np.array_equal(read_pixels(shorter / name), read_pixels(cohort / name))
    geometries = [
        [f["geometry"] for f in json.loads((root / "annotations/slide_000.geojson").read_text())["features"]]
        for root in (cohort, shorter)
    ]
    assert geometries[0] == geometries[1]


def test_other_seed_differs(cohort, tmp_path):
    generate_cohort(tmp_path, 1, SEED + 1, **SMALL)
    assert not np.array_equal(
        read_pixels(tmp_path / "slides/slide_000.tif"), read_pixels(cohort / "slides/slide_000.tif")
    )


def stain_density(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin density ``(h, w)`` by colour deconvolution, and a tissue mask ``(h, w)``."""
    od = -np.log10(np.clip(rgb.astype(np.float32), 1, 255) / 242.0)
    unmix = np.linalg.pinv(np.stack([H_OD, E_OD], axis=1))
    hem = (od.reshape(-1, 3) @ unmix.T)[:, 0].reshape(rgb.shape[:2])
    return hem, od.sum(axis=2) > 0.15


def test_tumor_polygons_inside_tissue_and_visibly_tumor(cohort):
    meta = {s["slide_id"]: s for s in json.loads((cohort / "cohort.json").read_text())["slides"]}
    positives = [k for k, s in meta.items() if s["label"] == 1]
    assert positives
    for slide_id, truth in meta.items():
        annotations = read_annotations(cohort / "annotations" / f"{slide_id}.geojson")
        if truth["label"] == 0:
            assert annotations == []
            continue
        assert len(annotations) == truth["n_tumor_regions"] and {a.name for a in annotations} == {"Tumor"}
        union = shapely.union_all([a.geometry for a in annotations])
        assert box(0, 0, SMALL["width"], SMALL["height"]).contains(union)
        assert union.area * SMALL["mpp"] ** 2 / 1e6 == pytest.approx(truth["tumor_area_mm2"], rel=1e-3)
        rgb = read_pixels(cohort / "slides" / f"{slide_id}.tif")
        hem, tissue = stain_density(rgb)
        inside = np.zeros(rgb.shape[:2], np.uint8)
        for a in annotations:
            cv2.fillPoly(inside, [np.round(np.asarray(a.geometry.exterior.coords)).astype(np.int32)], 1)
        inside = inside.astype(bool)
        assert tissue[inside].mean() > 0.97, "tumor must lie inside tissue"
        normal = tissue & ~inside
        assert hem[inside].mean() > hem[normal].mean() + 0.12  # more hematoxylin
        assert rgb[inside].mean() < rgb[normal].mean() - 15  # darker
        nuclei_inside, nuclei_normal = (hem[inside] > 0.35).mean(), (hem[normal] > 0.35).mean()
        assert nuclei_inside > max(2 * nuclei_normal, nuclei_normal + 0.15)  # more nuclei coverage


def test_survival_shorter_with_more_tumor():
    def mean_time(area: float, label: int) -> float:
        return float(np.mean([_survival(0, p, label, area)[0] for p in range(400)]))

    assert mean_time(1.0, 1) < mean_time(0.05, 1) < mean_time(0.0, 0)


def test_resume_skips_valid_slides_and_overwrite_regenerates(tmp_path):
    generate_cohort(tmp_path, 2, 0, **SMALL)
    slide = tmp_path / "slides/slide_001.tif"
    before = os.stat(slide)
    generate_cohort(tmp_path, 2, 0, **SMALL)
    after = os.stat(slide)
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    slide.write_bytes(b"not a tiff")  # a corrupt slide is regenerated
    generate_cohort(tmp_path, 2, 0, **SMALL)
    repaired = os.stat(slide)
    assert repaired.st_size > 1000
    generate_cohort(tmp_path, 2, 0, overwrite=True, **SMALL)
    again = os.stat(slide)
    assert (again.st_mtime_ns, again.st_ino) != (repaired.st_mtime_ns, repaired.st_ino)
    assert not list(tmp_path.glob("slides/.*"))  # no temporaries left


def test_cli_generates_a_cohort(tmp_path, capsys):
    code = main(
        [
            "synth",
            "wsi",
            "--out",
            str(tmp_path),
            "--n-slides",
            "2",
            "--seed",
            "3",
            "--width",
            "512",
            "--height",
            "384",
            "--mpp",
            "2.0",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("samples.csv")
    assert len(rows(tmp_path / "samples.csv")) == 2


@pytest.mark.parametrize(
    ("args", "option"), [(["--n-slides", "0"], "--n-slides"), (["--mpp", "0"], "--mpp"), (["--width", "-5"], "--width")]
)
def test_cli_rejects_bad_options(tmp_path, capsys, args, option):
    assert main(["synth", "wsi", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err
    assert not (tmp_path / "samples.csv").exists()


def test_cli_refuses_slides_too_large_for_memory_before_allocating(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["synth", "wsi", "--out", str(out), "--width", "2000000", "--height", "2000000"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "pathattn synth: error: --width 2000000 x --height 2000000 px needs about 89,407.0 GiB of memory"
    )
    assert "GiB available; use smaller --width/--height (the defaults are 6144 x 4608)" in err
    assert list(tmp_path.iterdir()) == []  # nothing written, in --out or elsewhere


def test_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "cohort").write_text("a file")
    assert main(["synth", "wsi", "--out", str(tmp_path / "cohort"), "--n-slides", "1"]) == 2
    err = capsys.readouterr().err.strip()
    expected = f"--out {tmp_path / 'cohort'} is a file, not a folder; pass a folder (it is created if missing)"
    assert err == f"pathattn synth: error: {expected}"
    assert [p.name for p in tmp_path.iterdir()] == ["cohort"]
