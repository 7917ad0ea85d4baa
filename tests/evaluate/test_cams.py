"""CAMs: the shared convention, Grad-CAM against captum and against the closed form, Eigen-CAM's sign fix,
and CAMs of a toy classifier scored by ``pathattn evaluate wsol --maps``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from pytorch_grad_cam import EigenCAM

from pathattn.cli.main import main
from pathattn.evaluate import cams
from pathattn.scoremaps.wsol import normalize_map

SIZE = 32


class BrightSpotNet(torch.nn.Module):
    """Class 1 = bright, class 0 = dark: a fixed conv (two detectors, two random channels), GAP and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.pool = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(4, 2)
        with torch.no_grad():
            conv = self.features[0]
            conv.weight[:2] = 0.0
            conv.weight[0, :, 1, 1] = 1.0  # brightness
            conv.weight[1, :, 1, 1] = -1.0  # darkness
            conv.bias[:2] = torch.tensor([-0.5, 1.5])
            self.head.weight.copy_(torch.tensor([[0.0, 1.0, 0.1, -0.1], [1.0, 0.0, -0.1, 0.1]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def bright_squares(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Images with one bright 8 x 8 square on a dim noisy background, and the squares' boxes (x0, y0, x1, y1)."""
    rng = np.random.default_rng(seed)
    images, boxes = np.full((n, 3, SIZE, SIZE), 0.1, np.float32), []
    images += 0.05 * rng.random(images.shape, dtype=np.float32)
    for i in range(n):
        x, y = rng.integers(2, SIZE - 10, 2)
        images[i, :, y : y + 8, x : x + 8] = 1.0
        boxes.append([x, y, x + 7, y + 7])
    return torch.from_numpy(images), np.array(boxes)


@pytest.fixture(scope="module")
def net() -> BrightSpotNet:
    return BrightSpotNet().eval()


@pytest.mark.parametrize("method", list(cams.CAM_METHODS))
def test_every_method_finds_the_square_under_one_convention(net: BrightSpotNet, method: str) -> None:
    images, boxes = bright_squares(3)
    maps = cams.compute_cams(net, net.features, images, [1, 1, 1], method)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float64
    for score, (x0, y0, x1, y1) in zip(maps, boxes, strict=True):
        assert score.min() == 0.0 and score.max() == 1.0
        inside = np.zeros((SIZE, SIZE), bool)
        inside[y0 : y1 + 1, x0 : x1 + 1] = True
        assert score[inside].mean() > 3 * score[~inside].mean(), method


def test_gradcam_equals_captum_and_the_closed_form(net: BrightSpotNet) -> None:
    images, _ = bright_squares(2, seed=1)
    ours = cams.compute_cams(net, net.features, images, [1, 1], "gradcam")
    layer = LayerGradCam(net, net.features).attribute(images, target=1, relu_attributions=True)
    for i in range(2):
        low = normalize_map(layer[i, 0].detach().numpy())
        upsampled = normalize_map(cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR))
        np.testing.assert_allclose(ours[i], upsampled, atol=1e-5)
    # GAP + linear head: Grad-CAM is ReLU(Σ_k w_k A^k) / Z, the original CAM of Zhou et al., up to normalisation
    with torch.no_grad():
        cam = torch.einsum("k,bkhw->bhw", net.head.weight[1], net.features(images)).relu().numpy()
    for i in range(2):
        np.testing.assert_allclose(ours[i], normalize_map(cv2.resize(normalize_map(cam[i]), (SIZE, SIZE))), atol=1e-5)


def test_eigencam_sign_correction_survives_an_svd_sign_flip(net: BrightSpotNet, monkeypatch) -> None:
    images, _ = bright_squares(1, seed=2)
    reference = cams.compute_cams(net, net.features, images, method="eigencam")
    svd = np.linalg.svd

    def flipped(a, *args, **kwargs):  # another LAPACK: the same decomposition with the signs flipped
        u, s, vt = svd(a, *args, **kwargs)
        return -u, s, -vt

    monkeypatch.setattr(np.linalg, "svd", flipped)
    np.testing.assert_allclose(cams.compute_cams(net, net.features, images, method="eigencam"), reference, atol=1e-6)
    with EigenCAM(model=net, target_layers=[net.features]) as plain:  # the library's own Eigen-CAM loses the map
        lost = normalize_map(plain(input_tensor=images, targets=None)[0])
    assert np.abs(lost - reference[0]).max() > 0.5


def test_cam_input_errors(net: BrightSpotNet) -> None:
    images, _ = bright_squares(2)
    with pytest.raises(ValueError, match="unknown CAM method"):
        cams.compute_cams(net, net.features, images, [1, 1], "layercam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 images"):
        cams.compute_cams(net, net.features, images, [1])
    with pytest.raises(ValueError, match="out of range"):
        cams.compute_cams(net, net.features, images, [5, 5])


def test_cams_scored_by_evaluate_wsol_maps(net: BrightSpotNet, tmp_path: Path) -> None:
    images, boxes = bright_squares(8, seed=3)
    ids = [f"img{i}" for i in range(8)]
    cams.write_score_maps(tmp_path / "maps", ids, cams.compute_cams(net, net.features, images, [1] * 8, "gradcam++"))
    with open(tmp_path / "boxes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "x0", "y0", "x1", "y1"])
        writer.writerows([i, *b] for i, b in zip(ids, boxes.tolist(), strict=True))
    with open(tmp_path / "classification.csv", "w") as f:
        f.write("image_id,correct\n" + "".join(f"{i},{int(k != 7)}\n" for k, i in enumerate(ids)))
    args = ["evaluate", "wsol", "--maps", str(tmp_path / "maps"), "--boxes", str(tmp_path / "boxes.csv")]
    args += ["--classification", str(tmp_path / "classification.csv"), "--calibration-ids", "img0", "img1"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    test = json.loads((tmp_path / "out" / "metrics.json").read_text())["methods"]["maps"]["test"]
    assert test["n"] == 6 and test["max_box_acc"] == 1.0 and test["gt_known_loc"] >= 0.8
    with open(tmp_path / "out" / "per_image.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["method"] == "maps"]
    hits = {r["image_id"]: float(r["box_iou_largest"]) >= 0.5 for r in rows}  # at the calibrated threshold
    assert test["gt_known_loc"] == pytest.approx(np.mean(list(hits.values())))
    assert test["top1_loc"] == pytest.approx(np.mean([hit and i != "img7" for i, hit in hits.items()]))
