"""The evaluation outputs of every process of a fit, each sample once (shared by the train stage's systems)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch


def gather_outputs(module: L.LightningModule, outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The outputs of every process, each sample once, in dataset order.

    Under DDP each process evaluates a shard of the samples, padded by Lightning's ``DistributedSampler`` to
    equal sizes with repeated samples; the shards are gathered to every process and the repeats dropped (by
    ``index``), so every process computes the metrics of the whole set.

    Args:
        module: the system being fitted (its trainer tells the world size).
        outputs: this process's tensors with one row per sample, ``index`` (n,) among them.

    Returns:
        The same keys over the whole set, as numpy arrays sorted by ``index``.
    """
    if module.trainer.world_size > 1:
        outputs = {k: v.flatten(0, 1) for k, v in module.all_gather(outputs).items()}
    arrays = {k: v.cpu().numpy() for k, v in outputs.items()}
    _, first = np.unique(arrays["index"], return_index=True)
    return {k: v[first] for k, v in arrays.items()}
