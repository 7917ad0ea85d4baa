"""Predict with a trained MIL checkpoint: one prediction per slide and the attention of every patch.

Outputs under ``OUT``::

    OUT/predictions.csv             slide_id, n_patches, prediction and prob_<class> (or risk), checkpoint
    OUT/attention/{slide_id}.h5     attention (N, K) float32 raw (pre-softmax) scores of K heads, aligned
                                    with coords (N, 2) copied from the feature file (with the tiling
                                    attributes), file attributes model, slide_id, checkpoint
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.io.bags import find_bags, read_bag, write_features
from pathattn.io.manifest import write_csv
from pathattn.train.data import load_features
from pathattn.train.system import MILSystem


def _select(found: dict[str, Path], slide_ids: Sequence[str] | None, features: Path) -> dict[str, Path]:
    if not found:
        raise PathattnError(
            f"--features {features} holds no feature files; pass the output folder of 'pathattn extract'"
        )
    if slide_ids is None:
        return found
    missing = [s for s in slide_ids if s not in found]
    if missing:
        raise PathattnError(f"{len(missing)} slides have no feature file in {features}: {', '.join(missing[:10])}")
    return {s: found[s] for s in slide_ids}


@torch.inference_mode()
def predict(
    checkpoint: str | Path,
    features: str | Path,
    out: str | Path,
    slide_ids: Sequence[str] | None = None,
    device: str = "cpu",
) -> list[dict[str, object]]:
    """Run a checkpoint of ``pathattn train`` on feature files.

    Args:
        checkpoint: a ``.ckpt`` written by cross-validation (``RUN/fold_k/checkpoints/best.ckpt``).
        features: folder of feature files (pathattn, CLAM or TRIDENT).
        out: output folder (module docstring).
        slide_ids: the slides to predict (default: every feature file).
        device: where the model runs.

    Returns:
        The rows of ``predictions.csv``.

    Raises:
        PathattnError: unreadable checkpoint, missing features, or features of another size than the model's.
    """
    checkpoint, features, out = Path(checkpoint), Path(features), Path(out)
    if not checkpoint.is_file():
        raise PathattnError(f"--checkpoint not found: {checkpoint}")
    system = MILSystem.load(checkpoint, map_location=device).eval()
    classes = system.hparams.get("class_names") or []
    dim = int(system.model.in_dim)
    rows = []
    for slide_id, path in sorted(_select(find_bags(features), slide_ids, features).items()):
        bag = read_bag(path)
        bag_features = load_features(path, dim)
        row: dict[str, object] = {"slide_id": slide_id, "n_patches": len(bag_features)}
        if len(bag_features) == 0:
            rows.append(row | {"prediction": "", "checkpoint": str(checkpoint)})
            continue
        output = system(torch.from_numpy(bag_features)[None].to(device), None)
        scores = system.scores(output.logits)[0].cpu().numpy()
        if classes:
            row["prediction"] = classes[int(np.argmax(scores))]
            row |= {f"prob_{name}": float(p) for name, p in zip(classes, scores, strict=True)}
        else:
            row |= {"prediction": "", "risk": float(scores[0])}
        rows.append(row | {"checkpoint": str(checkpoint)})
        attention = output.attention[0].float().cpu().numpy()
        attrs = {"model": system.hparams["model_spec"]["name"], "slide_id": slide_id, "checkpoint": str(checkpoint)}
        coords_attrs = bag.attrs.get("coords", {})
        write_features(out / "attention" / f"{slide_id}.h5", attention, bag.coords, coords_attrs, attrs, "attention")
    write_csv(out / "predictions.csv", rows)
    return rows
