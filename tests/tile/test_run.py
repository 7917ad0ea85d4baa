"""Tiling real slide files end to end: counts, coordinates, resolution sources, resume, atomicity."""

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from shapely.geometry import box

from pathattn.io.coords import is_complete, read_coords
from pathattn.io.geojson import Annotation, read_annotations, write_annotations
from pathattn.io.samples import SlideEntry
from pathattn.tile import run as tile_run
from pathattn.tile.params import GridParams, TileParams
from pathattn.tile.run import TileJob, tile_batch, tile_slide

# Two tissue rectangles aligned to the 512 level-0 px grid (256 px at 0.5 µm/px on a 0.25 µm/px scan):
# 3 x 2 = 6 patches and 2 x 2 = 4 patches.
RECTS = [(512, 512, 2048, 1536), (2560, 1536, 3584, 2560)]


def rect_image(width=4096, height=3072):
    image = np.full((height, width, 3), 242, np.uint8)
    for x0, y0, x1, y1 in RECTS:
        image[y0:y1, x0:x1] = (200, 120, 170)
    return image


@pytest.mark.parametrize(("layout", "level_factor", "patch_level", "read_size"),
                         [("pyramid", 4, 0, 512), ("pyramid", 2, 1, 256), ("single-level", 4, 0, 512)])  # fmt: skip
def test_counts_coords_and_read_plan(make_slide, tmp_path, layout, level_factor, patch_level, read_size):
    path = make_slide("s", rect_image(), mpp=0.25, layout=layout, level_factor=level_factor)
    result = tile_slide(SlideEntry("s", path), TileJob(tmp_path / "out"))
    assert result.status == "done" and result.n_patches == 10 and result.mpp_source == "openslide"
    data = read_coords(tmp_path / "out" / "coords" / "s.h5")
    expected = {(x, y) for x0, y0, x1, y1 in RECTS for x in range(x0, x1, 512) for y in range(y0, y1, 512)}
    assert {tuple(c) for c in data.coords.tolist()} == expected
    assert (data.coords >= 0).all() and (data.coords + 512 <= [4096, 3072]).all()
    a = data.attrs
    # patch_size is the side read at patch_level (CLAM's meaning); the target size is target_patch_size
    assert (a["patch_level"], a["read_size"], a["patch_size"], a["target_patch_size"], a["patch_size_level0"]) == (
        patch_level,
        read_size,
        read_size,
        256,
        512,
    )
    assert (a["level0_width"], a["level0_height"], a["mpp_level0"], a["target_mpp"]) == (4096, 3072, 0.25, 0.5)
    # the magnification of the level read (TRIDENT's reader then reads the same region as CLAM's)
    assert a["target_magnification"] == 40 / 2**patch_level and a["level0_magnification"] == 40
    assert data.tissue_fraction.min() > 0.8


def test_tissue_area_matches_the_truth(make_slide, tmp_path):
    path = make_slide("s", rect_image(), mpp=0.25)
    job = TileJob(tmp_path / "out", TileParams(GridParams(min_tissue=0.0, patch_size=128)))
    tile_slide(SlideEntry("s", path), job)
    data = read_coords(job.coords_path("s"))
    measured = data.tissue_fraction.sum() * data.attrs["patch_size_level0"] ** 2
    truth = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in RECTS)
    assert measured == pytest.approx(truth, rel=0.06)


def test_overlap_and_min_tissue(make_slide, tmp_path):
    path = make_slide("s", rect_image(), mpp=0.25)
    job = TileJob(tmp_path / "out", TileParams(GridParams(overlap=128, min_tissue=0.9)))
    tile_slide(SlideEntry("s", path), job)
    data = read_coords(job.coords_path("s"))
    # overlap in pixels of the level read (as patch_size), and as given at the target resolution
    assert data.attrs["stride_level0"] == 256 and data.attrs["overlap"] == 256 and data.attrs["target_overlap"] == 128
    assert (data.coords % 256 == 0).all() and data.tissue_fraction.min() >= 0.9
    assert len(data) > 10  # overlapping windows add positions inside the rectangles


def test_annotations_and_tissue_geojson_override(make_slide, tmp_path):
    path = make_slide("s", rect_image(), mpp=0.25)
    (tmp_path / "ann").mkdir()
    (tmp_path / "mask").mkdir()
    write_annotations(tmp_path / "ann" / "s.geojson", [Annotation(box(512, 512, 1024, 1280), "Tumor")])
    job = TileJob(tmp_path / "out", annotations=tmp_path / "ann")
    tile_slide(SlideEntry("s", path), job)
    data = read_coords(job.coords_path("s"))
    assert data.classes == ["Tumor"]
    by_xy = dict(zip(map(tuple, data.coords.tolist()), data.annotation_fraction[:, 0].tolist(), strict=True))
    assert by_xy[(512, 512)] == pytest.approx(1.0) and by_xy[(512, 1024)] == pytest.approx(0.5)
    assert sum(by_xy.values()) == pytest.approx(1.5)
    # a corrected mask (as exported from QuPath) replaces detection and selects from the same grid
    write_annotations(tmp_path / "mask" / "s.geojson", [Annotation(box(0, 0, 1024, 1024), "Tissue")])
    job = TileJob(tmp_path / "out2", tissue_geojson=tmp_path / "mask")
    result = tile_slide(SlideEntry("s", path), job)
    assert result.tissue_source.endswith("s.geojson")
    assert sorted(read_coords(job.coords_path("s")).coords.tolist()) == [[0, 0], [0, 512], [512, 0], [512, 512]]


def test_outputs_resume_and_overwrite(make_slide, tmp_path):
    paths = [make_slide(name, rect_image(), mpp=0.25) for name in ("a", "b")]
    job = TileJob(tmp_path / "out")
    entries = [SlideEntry(p.stem, p) for p in paths]
    assert [r.status for r in tile_batch(entries, job)] == ["done", "done"]
    tissue = read_annotations(job.tissue_path("a"))
    assert [a.name for a in tissue] == ["Tissue"]
    assert job.qc_path("a").stat().st_size > 1000
    mtime = job.coords_path("a").stat().st_mtime_ns
    again = tile_batch(entries, job)
    assert [r.status for r in again] == ["skipped", "skipped"] and again[0].n_patches == 10
    assert job.coords_path("a").stat().st_mtime_ns == mtime
    redo = tile_batch(entries[:1], TileJob(tmp_path / "out", overwrite=True))
    assert redo[0].status == "done" and job.coords_path("a").stat().st_mtime_ns != mtime
    manifest = job.manifest_path.read_text().splitlines()
    assert manifest[0].startswith("slide_id,status,n_patches,mpp,mpp_source") and len(manifest) == 3


def test_interrupted_write_leaves_no_file(make_slide, tmp_path, monkeypatch):
    path = make_slide("s", rect_image(), mpp=0.25)
    real = tile_run.write_coords

    def crash_midway(target, data):
        data.attrs["unstorable"] = object()  # h5py fails after the datasets were created
        real(target, data)

    monkeypatch.setattr(tile_run, "write_coords", crash_midway)
    job = TileJob(tmp_path / "out")
    result = tile_slide(SlideEntry("s", path), job)
    assert result.status == "failed" and "TypeError" in result.error
    assert not job.coords_path("s").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp-" in p.name]
    monkeypatch.setattr(tile_run, "write_coords", real)
    assert tile_slide(SlideEntry("s", path), job).status == "done"  # the next run finishes it


def test_parallel_workers_match_serial(make_slide, tmp_path):
    entries = [SlideEntry(n, make_slide(n, rect_image(), mpp=0.25)) for n in ("a", "b", "c")]
    serial = tile_batch(entries, TileJob(tmp_path / "one"))
    parallel = tile_batch(entries, TileJob(tmp_path / "two"), workers=2)
    assert [(r.slide_id, r.status, r.n_patches) for r in serial] == [
        (r.slide_id, r.status, r.n_patches) for r in parallel
    ]


def test_concurrent_runs_share_one_manifest(make_slide, tmp_path):
    entries = [SlideEntry(n, make_slide(n, rect_image(), mpp=0.25)) for n in ("a", "b", "c", "d")]
    job = TileJob(tmp_path / "out")
    with ThreadPoolExecutor(4) as pool:  # four one-slide runs into one folder, as Snakemake jobs do
        list(pool.map(lambda e: tile_batch([e], job), entries))
    rows = job.manifest_path.read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["a", "b", "c", "d"]


def test_killed_run_leaves_only_complete_files(make_slide, tmp_path):
    for k in range(8):
        make_slide(f"s{k}", rect_image(), mpp=0.25)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pathattn.cli.main", "tile", "--slides", str(tmp_path / "slides"), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not list((out / "coords").glob("s*.h5")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for path in (out / "coords").glob("s*.h5"):  # whatever exists under a final name is complete
        assert is_complete(path) and len(read_coords(path)) == 10
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    # the re-run finished the batch and removed the killed run's temporary file
    assert sorted(p.name for p in (out / "coords").iterdir()) == [f"s{k}.h5" for k in range(8)]
