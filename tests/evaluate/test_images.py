"""Image score maps (``pathattn evaluate wsol --maps``): masks, ignore regions, the size policy and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.errors import PathattnError
from pathattn.evaluate.images import ImageWsolJob, run_image_wsol


def write_dataset(root: Path, n: int = 6, map_size: int = 16, mask_size: int = 16) -> None:
    """Maps that light up their mask's square (with noise), masks with an ignore ring, a split file."""
    rng = np.random.default_rng(0)
    (root / "maps").mkdir(parents=True)
    (root / "masks").mkdir()
    splits = ["image_id,split"]
    for i in range(n):
        mask = np.zeros((mask_size, mask_size), np.uint8)
        mask[4:10, 5:12] = 255
        ignore = cv2.dilate(mask, np.ones((3, 3), np.uint8)) - mask
        score = cv2.resize(mask.astype(np.float64), (map_size, map_size)) + 40 * rng.random((map_size, map_size))
        np.save(root / "maps" / f"im{i}.npy", score)
        cv2.imwrite(str(root / "masks" / f"im{i}.png"), mask)
        cv2.imwrite(str(root / "masks" / f"im{i}_ignore.png"), ignore)
        splits.append(f"im{i},{'calibration' if i < 2 else 'test'}")
    (root / "split.csv").write_text("\n".join(splits) + "\n")


def job(root: Path, **options) -> ImageWsolJob:
    return ImageWsolJob(root / "maps", root / "out", masks=root / "masks", split=root / "split.csv", **options)


def test_masks_with_ignore_regions(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    metrics = run_image_wsol(job(tmp_path))
    assert metrics["splits"] == {"calibration": ["im0", "im1"], "test": ["im2", "im3", "im4", "im5"]}
    test = metrics["methods"]["maps"]["test"]
    assert test["pxap"] > 0.9 and test["n_positive_pixels"] == 4 * 42
    assert (tmp_path / "out" / "pr_curves.png").is_file() and (tmp_path / "out" / "per_image.csv").is_file()


def test_one_folder_per_method_scored_beside_the_uniform_baseline(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    (tmp_path / "maps" / "lit").mkdir()
    (tmp_path / "maps" / "noise").mkdir()
    for path in sorted((tmp_path / "maps").glob("*.npy")):
        np.save(tmp_path / "maps" / "noise" / path.name, np.random.default_rng(len(path.name)).random((16, 16)))
        path.rename(tmp_path / "maps" / "lit" / path.name)
    methods = run_image_wsol(job(tmp_path))["methods"]
    assert list(methods) == ["lit", "noise", "uniform"]
    prevalence = 42 / (16 * 16 - (8 * 9 - 42))  # the 6 x 7 square over the pixels outside its ignored ring
    assert methods["uniform"]["test"]["pxap"] == pytest.approx(prevalence)
    assert methods["lit"]["test"]["pxap"] > 0.9 > 0.4 > methods["noise"]["test"]["pxap"]
    assert "uniform" not in run_image_wsol(job(tmp_path, baselines=()))["methods"]
    (tmp_path / "maps" / "uniform").mkdir()
    np.save(tmp_path / "maps" / "uniform" / "im0.npy", np.ones((16, 16)))
    with pytest.raises(PathattnError, match="has a folder named uniform, a baseline's name"):
        run_image_wsol(job(tmp_path))
    with pytest.raises(PathattnError, match="images have the uniform baseline only"):
        job(tmp_path, baselines=("few_shot",))


def test_size_policy_error_or_explicit_resize(tmp_path: Path) -> None:
    write_dataset(tmp_path, map_size=8)
    with pytest.raises(PathattnError, match="map 8x8 but mask 16x16"):
        run_image_wsol(job(tmp_path))
    assert run_image_wsol(job(tmp_path, resize_maps=True))["methods"]["maps"]["test"]["pxap"] > 0.8


def test_bad_maps_and_missing_truth(tmp_path: Path, capsys) -> None:
    write_dataset(tmp_path)
    score = np.load(tmp_path / "maps" / "im3.npy")
    score[0, 0] = np.nan
    np.save(tmp_path / "maps" / "im3.npy", score)
    with pytest.raises(PathattnError, match="im3.npy: score map has 1 NaN"):
        run_image_wsol(job(tmp_path))
    run_image_wsol(job(tmp_path, mode="reference", resize_maps=True))  # normalize_scoremap: a NaN map is zeros
    with open(tmp_path / "out" / "per_image.csv") as f:
        pxap = {row["image_id"]: float(row["pxap"]) for row in csv.DictReader(f) if row["method"] == "maps"}
    assert pxap["im3"] < 0.3 < 0.9 < min(v for k, v in pxap.items() if k != "im3")  # a constant map: prevalence
    (tmp_path / "boxes.csv").write_text("image_id,x0,y0,x1,y1\nim0,5,4,11,9\n")
    args = ["evaluate", "wsol", "--maps", str(tmp_path / "maps"), "--boxes", str(tmp_path / "boxes.csv")]
    assert main([*args, "--calibration-ids", "im0", "--out", str(tmp_path / "o")]) == 2
    assert "no box for image im1" in capsys.readouterr().err
    assert main([*args, "--mode", "reference", "--calibration-ids", "im0", "--out", str(tmp_path / "o")]) == 2
    assert "pass --image-sizes" in capsys.readouterr().err
    assert main(["evaluate", "wsol", "--maps", str(tmp_path / "maps"), "--out", str(tmp_path / "o")]) == 2
    assert "needs --boxes or --masks" in capsys.readouterr().err


def test_boxes_scaled_from_image_sizes(tmp_path: Path) -> None:
    write_dataset(tmp_path, n=4)
    # boxes given in a 64 x 64 image frame: x 20..47, y 16..39 is the mask square scaled by 4
    rows = "".join(f"im{i},20,16,47,39\n" for i in range(4))
    (tmp_path / "boxes.csv").write_text("image_id,x0,y0,x1,y1\n" + rows)
    (tmp_path / "sizes.csv").write_text("image_id,width,height\n" + "".join(f"im{i},64,64\n" for i in range(4)))
    metrics = run_image_wsol(ImageWsolJob(
        tmp_path / "maps", tmp_path / "out", boxes=tmp_path / "boxes.csv", image_sizes=tmp_path / "sizes.csv",
        calibration_ids=("im0",),
    ))  # fmt: skip
    assert metrics["methods"]["maps"]["test"]["max_box_acc"] == 1.0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["splits"]["test"] == ["im1", "im2", "im3"]
