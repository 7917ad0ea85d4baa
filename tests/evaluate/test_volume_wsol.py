"""``pathattn evaluate wsol`` on volumes: hand-made tilings (coords with label fractions) and attention files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.evaluate.volume_run import VolumeWsolJob, run_volume_wsol
from pathattn.evaluate.volumes import VolumeRows, coordinate_space, row_map, voxel_counts
from pathattn.io.bags import read_bag, write_features
from pathattn.io.coords import PatchCoords, write_coords
from pathattn.io.scores import read_patch_scores, write_patch_scores
from pathattn.registry import create_model
from pathattn.scoremaps import wsol
from pathattn.tile.volume_grid import box_fractions
from pathattn.train.mil.system import MILSystem

THRESHOLDS = wsol.threshold_grid(0.001)
PLANE = (10, 10, 1)  # a slice of 10 x 10 voxels


def slice_coords(n: int) -> np.ndarray:
    coords = np.zeros((n, 3), np.int64)
    coords[:, 2] = np.arange(n)
    return coords


def tiling_attrs(volume_id: str, n: int, size=PLANE, mode: str = "slices", label: bool = True) -> dict:
    return {
        "coord_space": "voxel_ijk", "coord_order": "ijk", "name": volume_id, "mode": mode, "axis": "axial",
        "axis_index": 2, "shape": np.array([10, 10, n]), "spacing": np.array([1.0, 1.0, 2.0]),
        "patch_size_vox": np.array(size), "label_path": f"/labels/{volume_id}.nii.gz" if label else "",
    }  # fmt: skip


def write_volume(
    root: Path, volume_id: str, scores: np.ndarray, lesion: np.ndarray, foreground: np.ndarray | None = None,
    label: bool = True, features: bool = False,
) -> None:  # fmt: skip
    """``root/tiles/coords/{id}.h5`` (fractions) and ``root/pred/attention/{id}.h5`` (scores) of one volume."""
    n = len(scores)
    coords, attrs = slice_coords(n), tiling_attrs(volume_id, n, label=label)
    foreground = np.ones(n) if foreground is None else foreground
    classes = ["lesion"] if np.any(lesion > 0) else []  # the tiling names the label values present
    fractions = np.asarray(lesion, np.float32)[:, None][:, : len(classes)]
    write_coords(
        root / "tiles" / "coords" / f"{volume_id}.h5", PatchCoords(coords, attrs, foreground, fractions, classes)
    )
    attention = np.asarray(scores, np.float32)[:, None]
    write_patch_scores(
        root / "pred" / "attention" / f"{volume_id}.h5", attention, coords, attrs, {"slide_id": volume_id}
    )
    if features:
        rng = np.random.default_rng(len(volume_id) + n)
        feats = rng.standard_normal((n, 4)).astype(np.float32)
        feats[:, 0] += 3 * (np.asarray(lesion) > 0)
        write_features(root / "features" / "h5_files" / f"{volume_id}.h5", feats, coords, attrs, {"encoder": "t"})


# lesion fraction per slice of six volumes; v5 is lesion-free
LESIONS = {
    "v0": [0, 0, 1, 1, 0, 0, 0, 0],
    "v1": [0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    "v2": [0, 0, 0, 0, 1, 1, 1, 0],
    "v3": [1, 0, 0, 0, 0, 0],
    "v4": [0, 0, 0, 0, 0, 1, 1, 0, 0],
    "v5": [0, 0, 0, 0, 0, 0, 0],
}
CALIBRATION = ("v0", "v1", "v5")


def write_cohort(root: Path, scores: str = "perfect", features: bool = False) -> Path:
    """Pure rows: lesion slices are all lesion (foreground fraction = lesion fraction = 1), the others lesion-free."""
    rng = np.random.default_rng(0)
    for volume_id, lesion in LESIONS.items():
        lesion = np.asarray(lesion, np.float64)
        values = {"perfect": lesion, "inverted": -lesion, "noisy": lesion + 0.8 * rng.standard_normal(len(lesion))}
        write_volume(root, volume_id, values[scores], lesion, np.ones(len(lesion)), features=features)
    return root


def job(root: Path, out: str = "out", **options) -> VolumeWsolJob:
    defaults = {"calibration_ids": CALIBRATION, "baselines": ("uniform",)}
    return VolumeWsolJob(root / "pred", root / "tiles", root / out, **(defaults | options))


def test_pxap_of_slices_is_the_voxel_grid_painted_by_slice_scores() -> None:
    lesion, foreground = np.array([0.0, 0.2, 0.5, 0.0]), np.array([0.5, 0.6, 0.5, 0.4])
    volume = VolumeRows("v", np.array([0.1, 0.9, 0.5, 0.3]), lesion, foreground, 100, "slices", {})
    score_map = row_map(volume.scores, "minmax")
    np.testing.assert_allclose(score_map, [0.0, 1.0, 0.5, 0.25])
    counts = voxel_counts(score_map, volume, THRESHOLDS)
    # by hand: slice 1 (score 1) holds 20 lesion and 40 other foreground voxels, slice 2 (0.5) 50 and 0
    assert counts.pxap() == pytest.approx(20 / 60 * 20 / 70 + 70 / 110 * 50 / 70)
    assert counts.n_positive == 70 and counts.negative.sum() == 50 + 40 + 0 + 40
    # the same volume painted voxel by voxel: a row of 100 voxels per slice, air ignored
    voxels = np.repeat(score_map[:, None], 100, axis=1)
    position = np.arange(100)[None, :]
    truth = position < np.rint(lesion * 100)[:, None]
    air = position >= np.rint(np.maximum(foreground, lesion) * 100)[:, None]
    assert wsol.pixel_counts(voxels, truth, THRESHOLDS, air).pxap() == pytest.approx(counts.pxap())


def test_pxap_of_patches_is_the_voxel_grid_painted_by_patch_scores() -> None:
    rng = np.random.default_rng(1)
    label = np.zeros((4, 4, 4), bool)
    label[1:3, 0:3, 1:4] = True
    body = np.ones_like(label)
    body[3, 3] = False  # some air
    size = np.array([2, 2, 2])
    corners = np.stack(np.meshgrid(*[np.arange(0, 4, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    scores = rng.random(len(corners))
    volume = VolumeRows("v", scores, box_fractions(label, corners, size).astype(np.float64),
                        box_fractions(body, corners, size).astype(np.float64), 8, "patches", {})  # fmt: skip
    painted = np.zeros(label.shape)
    for corner, score in zip(corners, row_map(scores, "minmax"), strict=True):
        i, j, k = corner
        painted[i : i + 2, j : j + 2, k : k + 2] = score
    expected = wsol.pixel_counts(
        painted.reshape(1, -1), label.reshape(1, -1), THRESHOLDS, ~(body | label).reshape(1, -1)
    )
    assert voxel_counts(row_map(scores, "minmax"), volume, THRESHOLDS).pxap() == pytest.approx(expected.pxap())


def test_perfect_uniform_and_inverted_scores(tmp_path: Path) -> None:
    perfect = run_volume_wsol(job(write_cohort(tmp_path / "a")))["methods"]
    model, uniform = perfect["model"]["test"], perfect["uniform"]["test"]
    assert model["row_auroc"] == 1 and model["row_auprc"] == 1 and model["pxap"] == pytest.approx(1)
    assert model["mean_volume_row_auroc"] == 1 and model["n_volumes_row_auc"] == 3 and model["dice"] == 1
    test_ids = ("v2", "v3", "v4")
    prevalence = sum(sum(LESIONS[v]) for v in test_ids) / sum(len(LESIONS[v]) for v in test_ids)
    assert uniform["pxap"] == pytest.approx(prevalence) and uniform["row_auroc"] == 0.5
    assert uniform["mean_volume_row_auroc"] == 0.5 and uniform["row_auprc"] == pytest.approx(prevalence)
    inverted = run_volume_wsol(job(write_cohort(tmp_path / "b", "inverted"), normalisations=("minmax",)))
    worst = inverted["methods"]["model"]["test"]
    assert worst["row_auroc"] == 0 and worst["mean_volume_row_auroc"] == 0
    assert worst["pxap"] == pytest.approx(prevalence)  # lesion only at the lowest threshold: the uniform map's PxAP


def test_protocol_outputs_and_baselines(tmp_path: Path) -> None:
    root = write_cohort(tmp_path, "noisy", features=True)
    write_volume(root, "v6", np.zeros(5), np.zeros(5), label=False)  # tiled without a label volume
    out = root / "out"
    metrics = run_volume_wsol(job(root, normalisations=("percentile", "minmax"), baselines=("uniform", "few_shot"),
                                  features=root / "features"))  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"metrics.json", "summary.csv", "per_slide.csv", "pr_curves.png"}
    assert metrics["kind"] == "volumes" and json.loads((out / "metrics.json").read_text())["kind"] == "volumes"
    assert "v6" in metrics["skipped"] and "label volume" in metrics["skipped"]["v6"]
    assert metrics["splits"] == {"calibration": list(CALIBRATION), "test": ["v2", "v3", "v4"]}
    variants = metrics["calibration"]["variants"]
    assert set(variants) == {"percentile", "minmax"} and metrics["calibration"]["selected_by"] == "pxap"
    assert metrics["calibration"]["chosen"]["name"] == max(variants, key=lambda n: variants[n]["pxap"])
    methods = metrics["methods"]
    assert methods["model"]["test"]["threshold"] == methods["model"]["calibration"]["threshold"]
    assert methods["few_shot"]["test"]["row_auroc"] > 0.5 and "max_box_acc" not in methods["model"]["test"]
    rows = list(csv.DictReader(open(out / "per_slide.csv")))
    assert len(rows) == 3 * 6 and {r["slide_id"] for r in rows} == set(LESIONS)
    lesion_free = [r for r in rows if r["slide_id"] == "v5"]
    assert {r["has_lesion"] for r in lesion_free} == {"0"} and {r["row_auroc"] for r in lesion_free} == {"nan"}
    assert {r["n_rows"] for r in rows if r["slide_id"] == "v1"} == {"10"}
    drawn = run_volume_wsol(job(root, "drawn", calibration_ids=None, n_calibration=4))["splits"]
    assert len(drawn["calibration"]) == 2 and set(drawn["calibration"] + drawn["test"]) == set(LESIONS)
    with pytest.raises(PathattnError, match="the calibration split has no volume with lesion"):
        run_volume_wsol(job(root, "c", calibration_ids=("v5",)))


def test_positive_fraction_and_classes(tmp_path: Path) -> None:
    lesion = np.array([0.0, 0.05, 0.5, 0.0])
    write_volume(tmp_path, "a", np.array([0.0, 0.9, 0.5, 0.1]), lesion)
    write_volume(tmp_path, "b", np.array([0.0, 0.2, 0.9, 0.1]), lesion)
    crosses = run_volume_wsol(job(tmp_path, "x", calibration_ids=("a",)))["methods"]["model"]["test"]
    assert crosses["n_positive_rows"] == 2 and crosses["row_auroc"] == 1
    half = run_volume_wsol(job(tmp_path, "y", calibration_ids=("a",), positive_fraction=0.1))
    assert half["methods"]["model"]["test"]["n_positive_rows"] == 1  # the 5% slice is left out
    with pytest.raises(PathattnError, match="the calibration split has no volume with lesion"):
        run_volume_wsol(job(tmp_path, "z", calibration_ids=("a",), classes=("edema",)))  # no lesion class chosen


def test_volume_coordinates_survive_features_and_scores(tmp_path: Path) -> None:
    coords, attrs = slice_coords(5), tiling_attrs("v", 5)
    write_features(tmp_path / "f.h5", np.ones((5, 3), np.float32), coords, attrs, {})
    bag = read_bag(tmp_path / "f.h5")
    write_patch_scores(tmp_path / "s.h5", np.ones((5, 1)), bag.coords, bag.attrs["coords"], {})
    scores = read_patch_scores(tmp_path / "s.h5")
    assert scores.coords.shape == (5, 3) and np.array_equal(scores.coords, coords)
    assert scores.attrs["coord_space"] == "voxel_ijk" and coordinate_space(tmp_path) == "voxel_ijk"


def test_predict_keeps_volume_coordinates(tmp_path: Path) -> None:
    """``pathattn predict`` on volume features writes (N, 3) coordinates and the tiling attributes, which the
    volume evaluation then reads."""
    root = write_cohort(tmp_path, features=True)
    torch.manual_seed(0)
    spec = {"name": "abmil", "kwargs": {"in_dim": 4, "n_classes": 2, "embed_dim": 8}}
    system = MILSystem(create_model("abmil", **spec["kwargs"]), model_spec=spec, class_names=["normal", "lesion"])
    torch.save({"state_dict": system.state_dict(), "hyper_parameters": dict(system.hparams)}, tmp_path / "m.ckpt")
    args = ["--features", str(root / "features"), "--checkpoint", str(tmp_path / "m.ckpt")]
    assert main(["predict", *args, "--out", str(tmp_path / "predicted")]) == 0
    scores = read_patch_scores(tmp_path / "predicted" / "attention" / "v1.h5")
    assert np.array_equal(scores.coords, slice_coords(10)) and scores.attrs["coord_space"] == "voxel_ijk"
    args = ["--scores", str(tmp_path / "predicted"), "--tiles", str(root / "tiles"), "--calibration-ids", *CALIBRATION]
    assert main(["evaluate", "wsol", *args, "--out", str(tmp_path / "out")]) == 0


def test_cli_end_to_end(tmp_path: Path, capsys) -> None:
    root = write_cohort(tmp_path, "noisy")
    args = ["evaluate", "wsol", "--scores", str(root / "pred"), "--tiles", str(root / "tiles")]
    assert main([*args, "--calibration-ids", *CALIBRATION, "--out", str(root / "out")]) == 0
    assert "model (test, 3): pxap" in capsys.readouterr().err
    summary = list(csv.DictReader(open(root / "out" / "summary.csv")))
    assert {(r["method"], r["split"]) for r in summary} == {(m, s) for m in ("model", "uniform")
                                                             for s in ("calibration", "test")}  # fmt: skip
    assert {"pxap", "row_auroc", "row_auprc", "mean_volume_row_auroc", "dice"} <= set(summary[0])
    config = Path(__file__).resolve().parents[2] / "configs" / "evaluate" / "wsol_volumes.yaml"
    assert main([*args, "--config", str(config), "--calibration-ids", *CALIBRATION, "--out", str(root / "cfg")]) == 0
    variants = json.loads((root / "cfg" / "metrics.json").read_text())["calibration"]["variants"]
    assert set(variants) == {"percentile", "minmax"}


def _mixed_slide_file(root: Path) -> list[str]:
    with h5py.File(root / "pred" / "attention" / "v4.h5", "r+") as f:
        f["coords"].attrs["coord_space"] = "level0_xy"
    return []


def _other_rows(root: Path) -> list[str]:
    write_patch_scores(root / "pred" / "attention" / "v4.h5", np.ones((3, 1)), slice_coords(3),
                       tiling_attrs("v4", 3), {})  # fmt: skip
    return []


def _maps(root: Path) -> list[str]:
    for volume_id, lesion in LESIONS.items():
        with h5py.File(root / "pred" / "attention" / f"{volume_id}.h5", "r+") as f:
            f.create_dataset("cam", data=np.ones((len(lesion), 2, 2)))
    return ["--dataset", "cam"]


def _unlabelled(root: Path) -> list[str]:
    for path in (root / "tiles" / "coords").glob("*.h5"):
        with h5py.File(path, "r+") as f:
            f["coords"].attrs["label_path"] = ""
            f["annotation_fraction"].attrs["classes"] = "[]"
    return []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--annotations", "{root}"], "--annotations is for slides; volumes take their lesion from"),
        (["--smooth-um", "8"], "--smooth-um is for slide rasters; drop it for volumes"),
        (["--positive-fraction", "1"], "--positive-fraction must be in [0, 1)"),
        (["--tiles", "{root}/missing"], "holds volumes: pass --tiles, the volume tiling folder"),
        (["--calibration-ids", "v9"], "calibration volumes ['v9'] have no scores or no label volume"),
        (["--baselines", "few_shot"], "the few_shot baseline needs --features"),
        (_mixed_slide_file, "v4.h5: coordinates are not volume voxels (coord_space 'level0_xy'"),
        (_other_rows, "hold different rows (3 and 9); the scores come from another tiling"),
        (_maps, "per-row maps of shape (2, 2) are not supported on volumes"),
        (_unlabelled, "no volume has both scores in"),
    ],
)  # fmt: skip
def test_cli_bad_inputs_are_one_line_errors(tmp_path: Path, capsys, extra, message) -> None:
    root = write_cohort(tmp_path / "c")
    extra = extra(root) if callable(extra) else [a.format(root=root) for a in extra]
    args = ["evaluate", "wsol", "--scores", str(root / "pred"), "--tiles", str(root / "tiles")]
    if "--calibration-ids" not in extra:
        args += ["--calibration-ids", *CALIBRATION]
    out = tmp_path / "out"
    assert main([*args, *extra, "--out", str(out)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("pathattn evaluate: error: ") and message in errors[0]
    assert not out.exists()


def test_positive_fraction_is_refused_for_slides(mini_cohort, tmp_path: Path, capsys) -> None:
    args = ["evaluate", "wsol", "--scores", str(mini_cohort.scores), "--annotations", str(mini_cohort.annotations)]
    assert main([*args, "--positive-fraction", "0.2", "--out", str(tmp_path / "out")]) == 2
    assert "--positive-fraction is for volumes" in capsys.readouterr().err
