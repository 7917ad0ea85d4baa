"""HIPPO and CLAM-SB checkpoints on the command line: ``pathattn explain`` and ``predict`` give their outputs.

A HIPPO ``AttentionMILModel`` state dict (hippo-nn, the reference implementation) and a CLAM-SB checkpoint
(CLAM's key names; its forward restated from the paper in ``tests/conftest.py``) are passed as they are, with
their format detected; the attention and the class probabilities pathattn records must be those of the
original architectures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pathattn.cli.main import main
from pathattn.io.bags import write_features
from pathattn.io.manifest import read_manifest
from pathattn.io.scores import read_patch_scores
from pathattn.models.mil import CLAMSB
from pathattn.models.mil.adapters import CLAM_SB_KEYS, rename_keys

DIM, SLIDES, PATCH = 12, ("a", "b", "c"), 256


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Three bags of 9 to 25 patches on a grid, with coordinates."""
    root = tmp_path_factory.mktemp("foreign")
    rng = np.random.default_rng(4)
    bags = {}
    for k, slide_id in enumerate(SLIDES):
        n = 9 + 8 * k
        bags[slide_id] = rng.normal(size=(n, DIM)).astype(np.float32)
        coords = np.array([(i % 5 * PATCH, i // 5 * PATCH) for i in range(n)], np.int64)
        write_features(root / "features" / "h5_files" / f"{slide_id}.h5", bags[slide_id], coords,
                       {"patch_size_level0": PATCH}, {"encoder": "test"})  # fmt: skip
    return root / "features", bags


def hippo_checkpoint(path: Path):
    """A seeded HIPPO model and its state dict saved as HIPPO saves ``model_best.pt``."""
    hippo = pytest.importorskip("hippo")
    torch.manual_seed(5)
    reference = hippo.AttentionMILModel(in_features=DIM, L=16, D=8, num_classes=2, gated_attention=True).eval()
    torch.save(reference.state_dict(), path)

    def forward(bag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            output = reference(torch.from_numpy(bag))
        return torch.softmax(output.logits, -1)[0].numpy(), output.attention[:, 0].numpy()

    return forward


def clam_checkpoint(path: Path, clam_forward):
    """A seeded CLAM-SB state dict under CLAM's key names (``s_0_checkpoint.pt``)."""
    torch.manual_seed(6)
    reverse = {ours: clam for clam, ours in CLAM_SB_KEYS.items() if not clam.startswith("attention_net.2.")}
    weights = rename_keys(CLAMSB(DIM, 2, embed_dim=16, attn_dim=8).state_dict(), reverse)
    torch.save(weights, path)

    def forward(bag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, raw = clam_forward(weights, torch.from_numpy(bag))
        return torch.softmax(logits, -1)[0].numpy(), raw[:, 0].numpy()

    return forward


@pytest.mark.parametrize(("kind", "name"), [("hippo", "abmil"), ("clam_sb", "clam_sb")])
def test_explain_and_predict_give_the_original_attention_and_prediction(features, tmp_path, clam_forward, kind,
                                                                        name):  # fmt: skip
    folder, bags = features
    path = tmp_path / ("model_best.pt" if kind == "hippo" else "s_0_checkpoint.pt")
    forward = hippo_checkpoint(path) if kind == "hippo" else clam_checkpoint(path, clam_forward)
    out = tmp_path / "explain"
    args = ["explain", "--checkpoint", str(path), "--features", str(folder), "--out", str(out)]
    assert main([*args, "--no-figures", "--method", "compare", "--n-random", "3"]) == 0
    assert {row["status"] for row in read_manifest(out / "manifest.csv")} == {"done"}
    predicted = tmp_path / "predict"
    assert main(["predict", "--checkpoint", str(path), "--features", str(folder), "--out", str(predicted),
                 "--checkpoint-format", kind]) == 0  # fmt: skip
    rows = {row["slide_id"]: row for row in read_manifest(predicted / "predictions.csv")}
    for slide_id, bag in bags.items():
        probabilities, attention = forward(bag)
        record = json.loads((out / "slides" / f"{slide_id}.json").read_text())
        assert record["model"] == name and record["classes"] == ["0", "1"]
        np.testing.assert_allclose(record["prediction"]["outputs"], probabilities, rtol=0, atol=1e-6)
        np.testing.assert_allclose(record["patches"]["attention"], attention, rtol=0, atol=1e-5)
        assert rows[slide_id]["prediction"] == str(int(np.argmax(probabilities)))
        assert float(rows[slide_id]["prob_1"]) == pytest.approx(probabilities[1], abs=1e-6)
        scores = read_patch_scores(predicted / "attention" / f"{slide_id}.h5")
        np.testing.assert_allclose(scores.head(0), attention, rtol=0, atol=1e-5)


def test_the_wrong_format_named_is_one_line(features, tmp_path, capsys):
    folder, _ = features
    path = tmp_path / "model_best.pt"
    hippo_checkpoint(path)
    args = ["explain", "--checkpoint", str(path), "--features", str(folder), "--out", str(tmp_path / "o")]
    assert main([*args, "--checkpoint-format", "clam_sb", "--no-figures"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pathattn")]
    assert len(err) == 1 and "is not a CLAM-SB state dict" in err[0] and "--checkpoint-format" in err[0]
