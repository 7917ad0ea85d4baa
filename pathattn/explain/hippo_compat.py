"""HIPPO compatibility mode: ``hippo.greedy_search`` (hippo-nn 0.1.0) reproduced on pathattn's back ends.

The reference scores candidates by the float32 softmax probability of one class and keeps the first
candidate among equal scores. When a prediction saturates (p rounds to exactly 1.0 in float32), every
candidate ties and the reference removes patches 0, 1, 2, ... in index order until p leaves 1.0. pathattn's
default objective, the log-odds in float64, orders those candidates by their real effect instead. This mode
reproduces the reference's semantics for equivalence checks and for comparing with published HIPPO results:

* objective: the float32 softmax probability of ``output_index_to_optimize`` (a survival model: its risk);
  ``smallest_difference`` subtracts the current bag's value in float32; ties go to the first remaining patch;
* ``num_rounds``: None or 0 means N - 1; N rounds are allowed and the last one scores **empty bags**
  (the logits are the head's bias);
* ``constant_features`` (the explainer's donor patches): present in the **baseline row only** -- the
  reference drops them from every round.

The last two are defects of the reference that pathattn's own searches do not have
(:meth:`Explainer.greedy_remove <pathattn.explain.engine.Explainer.greedy_remove>` refuses to empty a bag
and keeps ``always`` patches in every round).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.explain.engine import Explainer
from pathattn.explain.model import Scoring
from pathattn.explain.search import Optimizer, greedy_search

HIPPO_KEYS = ("optimized_class_index", "model_outputs", "ablated_patches")


def hippo_greedy_search(
    explainer: Explainer,
    output_index_to_optimize: int,
    optimizer: Optimizer,
    num_rounds: int | None = None,
    constant_features: bool = False,
) -> dict[str, Any]:
    """``hippo.greedy_search`` on the explainer's bag, with the reference's semantics (module docstring).

    Args:
        explainer: the slide's bag; its donor patches are HIPPO's ``constant_features`` when that is set.
        output_index_to_optimize: the class whose probability is optimised.
        optimizer: ``minimize``, ``maximize`` or ``smallest_difference`` (HIPPO's functions of those names).
        num_rounds: patches to remove; None or 0: N - 1; at most N.
        constant_features: treat the explainer's donors as HIPPO's constant features.

    Returns:
        HIPPO's result: ``optimized_class_index`` (int), ``model_outputs`` (R + 1, C) float32 with row 0 the
        baseline, ``ablated_patches`` (R,) int64 patch indices in removal order.

    Raises:
        PathattnError: ``num_rounds`` negative or above N, or a class index out of range.
    """
    n = explainer.n_patches
    rounds = num_rounds or n - 1
    if rounds <= 0 or rounds > n:
        raise PathattnError(f"num_rounds must be between 1 and the {n} patches (None or 0: {n - 1}), got {rounds}")
    objective = "risk" if explainer.model.task == "survival" else "prob"
    scoring = Scoring(explainer.model, objective, output_index_to_optimize, dtype=torch.float32)
    result = greedy_search(explainer.backend, scoring, explainer.bag(), torch.arange(n), mode="remove",
                           optimizer=optimizer, rounds=rounds, allow_empty=True)  # fmt: skip
    outputs = result.outputs.astype(np.float32)
    if constant_features:
        with_constants = explainer.bag() | explainer.mask(explainer.donor(np.arange(explainer.n_donors)))
        outputs[0] = scoring.outputs(explainer.evaluate(with_constants[None]))[0].numpy()
    return {"optimized_class_index": output_index_to_optimize, "model_outputs": outputs,
            "ablated_patches": result.order}  # fmt: skip
