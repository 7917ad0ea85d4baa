"""Attention heatmaps: normalisation, rendering over a real slide, QuPath GeoJSON, and the command line."""

import cv2
import h5py
import numpy as np
import pytest

from pathattn.cli import main as cli_main
from pathattn.errors import PathattnError
from pathattn.explain.heatmap import HeatmapStyle, heatmap_geojson, heatmap_slide
from pathattn.explain.heatmap_run import read_captions
from pathattn.io.coords import read_coords
from pathattn.io.geojson import read_annotations
from pathattn.io.samples import SlideEntry
from pathattn.io.scores import read_patch_scores, write_patch_scores
from pathattn.io.slide import Slide
from pathattn.tile.run import TileJob, tile_slide

# Two tissue rectangles on a 4096 x 3072 px slide at 0.25 µm/px; 512 level-0 px patches: 6 + 4 patches.
RECTS = [(512, 512, 2048, 1536), (2560, 1536, 3584, 2560)]
HOT = {(512, 512): 10.0, (512, 1024): 9.0}  # planted high attention
COLD = {(2560, 1536): 1.0, (3072, 1536): 2.0, (2560, 2048): 3.0, (3072, 2048): 4.0}


def rect_image(width=4096, height=3072):
    image = np.full((height, width, 3), 242, np.uint8)
    for x0, y0, x1, y1 in RECTS:
        image[y0:y1, x0:x1] = (200, 120, 170)
    return image


def planted_scores(coords):
    """Distinct scores: the HOT patches highest, the COLD ones lowest, the rest in between."""
    middle = iter(range(5, 100))
    return np.array([HOT.get(c) or COLD.get(c) or float(next(middle)) for c in map(tuple, coords.tolist())])


def write_attention(path, coords_file, attention, model="abmil", slide_id=None):
    """An attention file in the format of 'pathattn predict'."""
    data = read_coords(coords_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("attention", data=np.asarray(attention, np.float32).reshape(len(data), -1))
        coords = f.create_dataset("coords", data=data.coords)
        for key, value in data.attrs.items():
            coords.attrs[key] = value
        f.attrs["model"] = model
        f.attrs["slide_id"] = slide_id or path.stem
    return path


@pytest.fixture
def tiled(make_slide, tmp_path):
    """Slide ``s`` tiled into ``tmp_path/tiles`` with planted attention in ``tmp_path/pred``."""
    slide = make_slide("s", rect_image(), mpp=0.25)
    job = TileJob(tmp_path / "tiles")
    assert tile_slide(SlideEntry("s", slide), job).n_patches == 10
    coords = read_coords(job.coords_path("s")).coords
    attention = write_attention(tmp_path / "pred" / "attention" / "s.h5", job.coords_path("s"), planted_scores(coords))
    return slide, job, attention


def test_heatmap_on_a_slide(tiled, tmp_path):
    slide, job, attention = tiled
    paths = heatmap_slide(attention, tmp_path / "out", HeatmapStyle(top_k=3), tissue_geojson=job.tissue_path("s"))
    image = cv2.cvtColor(cv2.imread(str(paths["png"])), cv2.COLOR_BGR2RGB).astype(int)
    with Slide(slide) as s:
        thumbnail, scale = s.read_at_mpp(1.0)  # the default: about 1024 px on the long side
    assert scale == (4.0, 4.0) and image.shape[1] == 1024
    image = image[image.shape[0] - thumbnail.shape[0] :]  # below the caption banner
    centre = lambda x, y: image[(y + 256) // 4, (x + 256) // 4]  # noqa: E731
    for x, y in HOT:
        r, g, b = centre(x, y)
        assert r > g + 40 and r > b + 40, (x, y, r, g, b)
    for x, y in COLD:
        r, g, b = centre(x, y)
        assert b > r + 40, (x, y, r, g, b)
    tissue = np.zeros(thumbnail.shape[:2], bool)
    for x0, y0, x1, y1 in RECTS:
        tissue[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4] = True
    assert (image[~tissue] == thumbnail[~tissue]).all()  # glass is untouched
    assert np.abs(image[tissue] - thumbnail[tissue]).mean() > 20  # the heatmap is not blank
    assert paths["slide_id"] == "s" and paths["n_patches"] == 10 and paths["model"] == "abmil"


def test_geojson_round_trip(tiled, tmp_path):
    _, job, attention = tiled
    data = read_patch_scores(attention)
    paths = heatmap_slide(attention, tmp_path / "out", HeatmapStyle(top_k=3))
    detections = read_annotations(paths["geojson"])
    assert len(detections) == 10 and {d.name for d in detections} == {"Attention"}
    assert {d.properties["objectType"] for d in detections} == {"detection"}
    by_corner = {tuple(map(int, d.geometry.bounds[:2])): d.properties["measurements"] for d in detections}
    for corner, score in zip(map(tuple, data.coords.tolist()), data.values[:, 0], strict=True):
        assert by_corner[corner]["attention"] == pytest.approx(score)
    assert (
        by_corner[(512, 512)]["attention_percentile"] == 1.0 and by_corner[(2560, 1536)]["attention_percentile"] == 0.1
    )
    assert detections[0].geometry.area == 512**2
    top = read_annotations(paths["top"])
    assert paths["top"].name == "s_top3.geojson" and [t.name for t in top] == ["Top attention"] * 3
    assert [t.properties["measurements"]["attention"] for t in top] == sorted(data.values[:, 0])[::-1][:3]
    assert [t.properties["measurements"]["rank"] for t in top] == [1, 2, 3]
    assert top[0].properties["objectType"] == "annotation"


def test_masked_instances_are_left_out():
    coords = np.array([[0, 0], [256, 0], [512, 0]])
    detections, top = heatmap_geojson(coords, 256, np.array([1.0, -np.inf, 0.5]), top_k=5)
    assert len(detections) == 2 and len(top) == 2
    assert [d.properties["measurements"]["attention_percentile"] for d in detections] == [1.0, 0.5]


def test_bad_inputs(tiled, tmp_path):
    slide, job, attention = tiled
    with pytest.raises(PathattnError, match="--head 1 does not exist"):
        heatmap_slide(attention, tmp_path / "out", HeatmapStyle(head=1))
    small = write_attention(tmp_path / "x" / "s.h5", job.coords_path("s"), np.zeros(10))
    with h5py.File(small, "a") as f:
        f["coords"].attrs["level0_width"] = 1000
    with pytest.raises(PathattnError, match="4096x3072 px but"):
        heatmap_slide(small, tmp_path / "out")


def test_read_captions(tmp_path):
    sheet = tmp_path / "predictions.csv"
    sheet.write_text("slide_id,prediction,prob_0,prob_1\na,1,0.2,0.8\nb,0,0.9,0.1\n")
    assert read_captions(sheet) == {"a": "prediction 1 (p=0.80)", "b": "prediction 0 (p=0.90)"}
    sheet.write_text("slide_id,n_patches,prediction,risk\na,3,,0.5312\nb,0,,\n")  # survival; b had no patches
    assert read_captions(sheet) == {"a": "risk 0.531"}
    assert read_captions(tmp_path / "missing.csv") == {}


@pytest.fixture
def heatmap_cli(monkeypatch):
    """``main(["heatmap", ...])``, whether or not the command is registered in main.py yet."""
    if "heatmap" not in cli_main.COMMANDS:
        monkeypatch.setattr(cli_main, "COMMANDS", (*cli_main.COMMANDS, "heatmap"))
    return lambda *args: cli_main.main(["heatmap", *map(str, args)])


def _error_lines(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("pathattn")]


def test_cli_missing_slide_then_moved_slide(make_slide, tmp_path, heatmap_cli, capsys):
    job = TileJob(tmp_path / "tiles")
    for name in ("a", "b"):
        tile_slide(SlideEntry(name, make_slide(name, rect_image(), mpp=0.25)), job)
        write_attention(tmp_path / "pred" / "attention" / f"{name}.h5", job.coords_path(name), np.arange(10.0))
    (tmp_path / "pred" / "predictions.csv").write_text("slide_id,prediction,prob_0,prob_1\na,1,0.3,0.7\n")
    moved = tmp_path / "moved" / "b.tif"
    moved.parent.mkdir()
    (tmp_path / "slides" / "b.tif").rename(moved)
    out = tmp_path / "out"
    assert heatmap_cli("--predictions", tmp_path / "pred", "--out", out, "--tiles", tmp_path / "tiles") == 1
    errors = _error_lines(capsys)
    assert len(errors) == 1 and "1 of 2 slides failed, first: b: slide not found" in errors[0]
    rows = {line.split(",")[0]: line for line in (out / "manifest.csv").read_text().splitlines()[1:]}
    assert ",done,10,abmil," in rows["a"] and "tissue/a.geojson" in rows["a"] and ",failed," in rows["b"]
    assert sorted(p.name for p in out.glob("a_*")) == ["a_heatmap.geojson", "a_heatmap.png", "a_top20.geojson"]
    assert not list(out.glob("b_*"))
    sheet = tmp_path / "samples.csv"
    sheet.write_text(f"slide_id,slide_path\nb,{moved}\n")
    assert heatmap_cli("--predictions", tmp_path / "pred", "--out", out, "--samples", sheet) == 0
    rows = {line.split(",")[0]: line for line in (out / "manifest.csv").read_text().splitlines()[1:]}
    assert ",skipped," in rows["a"] and ",done,10," in rows["b"] and str(moved) in rows["b"]


def test_cli_slide_ids(make_slide, tmp_path, heatmap_cli, capsys):
    """One job per slide (as the workflow runs it): only the named slide is rendered."""
    job = TileJob(tmp_path / "tiles")
    for name in ("a", "b"):
        tile_slide(SlideEntry(name, make_slide(name, rect_image(), mpp=0.25)), job)
        write_attention(tmp_path / "pred" / "attention" / f"{name}.h5", job.coords_path(name), np.arange(10.0))
    out = tmp_path / "out"
    args = ("--predictions", tmp_path / "pred", "--out", out, "--top-k", 3, "--slide-ids")
    assert heatmap_cli(*args, "b") == 0
    assert sorted(p.name for p in out.glob("*_*")) == ["b_heatmap.geojson", "b_heatmap.png", "b_top3.geojson"]
    assert heatmap_cli(*args, "b", "c") == 2
    errors = _error_lines(capsys)
    assert len(errors) == 1 and f"--slide-ids: 1 slide(s) not in --predictions {tmp_path / 'pred'}: c;" in errors[0]


def test_cli_no_finite_attention_fails_that_slide(make_slide, tmp_path, heatmap_cli, capsys):
    job = TileJob(tmp_path / "tiles")
    for name, attention in (("a", np.full(10, np.nan)), ("b", np.arange(10.0)), ("c", np.full(10, -np.inf))):
        tile_slide(SlideEntry(name, make_slide(name, rect_image(), mpp=0.25)), job)
        write_attention(tmp_path / "pred" / "attention" / f"{name}.h5", job.coords_path(name), attention)
    before, out = {p.name for p in tmp_path.iterdir()}, tmp_path / "out"
    assert heatmap_cli("--predictions", tmp_path / "pred", "--out", out) == 1
    errors = _error_lines(capsys)
    source = tmp_path / "pred" / "attention" / "a.h5"
    assert errors == [
        f"pathattn heatmap: error: 2 of 3 slides failed, first: a: no finite attention in {source}; re-run "
        f"'pathattn predict' (all in {out / 'manifest.csv'})"
    ]
    rows = {line.split(",")[0]: line for line in (out / "manifest.csv").read_text().splitlines()[1:]}
    assert ",failed," in rows["a"] and ",done,10," in rows["b"] and ",failed," in rows["c"]
    assert sorted(p.name for p in out.glob("*_*")) == ["b_heatmap.geojson", "b_heatmap.png", "b_top20.geojson"]
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert {p.name for p in tmp_path.iterdir()} - before == {"out"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--predictions", "{tmp}/nope"], "--predictions folder not found"),
        (["--predictions", "{tmp}"], "holds no attention files"),
        (["--predictions", "{tmp}", "--cmap", "rainbowish"], "--cmap rainbowish"),
        (["--predictions", "{tmp}", "--alpha", "2"], "--alpha"),
        (["--predictions", "{tmp}", "--tiles", "{tmp}/nope"], "--tiles folder not found"),
        (["--predictions", "{tmp}", "--normalise", "rank"], "--normalise"),
    ],
)
def test_cli_bad_options(tmp_path, heatmap_cli, capsys, args, needle):
    args = [a.format(tmp=tmp_path) for a in args]
    assert heatmap_cli(*args, "--out", tmp_path / "out") == 2
    errors = _error_lines(capsys)
    assert len(errors) == 1 and needle in errors[0]


def test_cli_heatmap_straight_from_a_hippo_checkpoint(tiled, tmp_path, heatmap_cli):
    """No predict run: a HIPPO state dict on the slide's features, attention drawn and the prediction captioned."""
    hippo = pytest.importorskip("hippo")
    from pathattn.io.bags import write_features

    _, job, _ = tiled
    coords = read_coords(job.coords_path("s"))
    features = np.random.default_rng(0).normal(size=(len(coords), 8)).astype(np.float32)
    write_features(tmp_path / "feats" / "h5_files" / "s.h5", features, coords.coords, coords.attrs, {"encoder": "x"})
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = hippo.AttentionMILModel(in_features=8, L=16, D=8, num_classes=2, gated_attention=True).eval()
    torch.save(model.state_dict(), tmp_path / "model_best.pt")
    out = tmp_path / "out"
    args = ("--checkpoint", tmp_path / "model_best.pt", "--features", tmp_path / "feats", "--out", out)
    assert heatmap_cli(*args, "--tiles", job.out, "--top-k", 3) == 0
    top = read_annotations(out / "s_top3.geojson")
    with torch.no_grad():
        attention = model(torch.from_numpy(features)).attention[:, 0].numpy()
    expected = np.sort(attention)[::-1][:3]
    np.testing.assert_allclose([t.properties["measurements"]["attention"] for t in top], expected, atol=1e-5)
    assert (out / "s_heatmap.png").is_file()
    assert heatmap_cli("--checkpoint", tmp_path / "model_best.pt", "--out", out) == 2  # no --features


def test_cli_refuses_volumes_in_one_line(tmp_path, heatmap_cli, capsys):
    """A predict run on volumes: each volume is recorded as failed with where its attention is drawn instead."""
    attrs = {"coord_space": "voxel_ijk", "coord_order": "ijk", "name": "v1", "mode": "slices", "axis_index": 2}
    coords = np.zeros((4, 3), np.int64)
    coords[:, 2] = np.arange(4)
    write_patch_scores(tmp_path / "pred" / "attention" / "v1.h5", np.ones((4, 1), np.float32), coords, attrs, {})
    out = tmp_path / "out"
    assert heatmap_cli("--predictions", tmp_path / "pred", "--out", out) == 1
    errors = _error_lines(capsys)
    assert len(errors) == 1 and "v1 is a volume: heatmaps are drawn over slides; 'pathattn report'" in errors[0]
    assert not list(out.glob("v1_*"))
