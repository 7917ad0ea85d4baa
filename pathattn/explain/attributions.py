"""Gradient and perturbation attributions of the instance features (captum), one number per patch.

Both explain the objective of :class:`~pathattn.explain.model.Scoring` as a function of the standardised
bag ``x (1, N, D)``, against the baseline ``x = 0`` (the training fold's mean feature, when the checkpoint
standardises; otherwise a zero feature):

* ``integrated_gradients`` (Sundararajan et al. 2017): the path integral of the gradient from the baseline
  to the bag, summed over each patch's D features. The patch scores add up to ``f(bag) - f(baseline bag)``
  up to the reported convergence delta.
* ``feature_ablation``: ``f(bag)`` minus ``f(bag with patch i set to the baseline)``, every patch in turn
  (one perturbation per patch, batched). Captum ablates one gate per patch that scales its features (0: the
  baseline), rather than masking the (N, D) features, which would build N copies of the bag's mask. Unlike a
  HIPPO removal the patch stays in the bag, as an average patch, so it still takes attention.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from captum.attr import FeatureAblation, IntegratedGradients

from pathattn.explain.engine import Explainer
from pathattn.explain.model import Scoring

AttributionMethod = Literal["integrated_gradients", "feature_ablation"]
ATTRIBUTION_METHODS: tuple[AttributionMethod, ...] = ("integrated_gradients", "feature_ablation")


def _forward(explainer: Explainer, scoring: Scoring):
    def forward(bags: torch.Tensor) -> torch.Tensor:
        return scoring.values(explainer.model.network(bags).logits)

    return forward


def patch_attributions(
    explainer: Explainer,
    scoring: Scoring,
    method: AttributionMethod,
    *,
    n_steps: int = 32,
    max_batch_instances: int = 65536,
) -> tuple[np.ndarray, float]:
    """One attribution per patch of the slide.

    Args:
        explainer: the slide (its standardised bag; donors are not used).
        scoring: the objective explained.
        method: ``integrated_gradients`` or ``feature_ablation`` (module docstring).
        n_steps: integration steps of integrated gradients.
        max_batch_instances: instance rows per network call.

    Returns:
        scores: (N,) float64 per-patch attribution, and the convergence delta of integrated gradients
        (``f(bag) - f(baseline) - sum(scores)``; 0 for feature ablation).
    """
    n = explainer.n_patches
    bag = explainer.pool[:n].clone()[None]  # a normal tensor: the pool was made under inference mode
    per_call = max(1, max_batch_instances // n)
    forward = _forward(explainer, scoring)
    with torch.enable_grad():
        if method == "integrated_gradients":
            attribution, delta = IntegratedGradients(forward).attribute(
                bag, baselines=torch.zeros_like(bag), n_steps=n_steps, internal_batch_size=per_call,
                return_convergence_delta=True,
            )  # fmt: skip
            return attribution[0].sum(dim=-1).double().cpu().numpy(), float(delta.abs().max())
        if method == "feature_ablation":
            gates = torch.ones(1, n, device=bag.device)  # patch i at the baseline = its gate at 0

            def gated(values: torch.Tensor) -> torch.Tensor:
                return forward(bag * values[..., None])

            attribution = FeatureAblation(gated).attribute(gates, baselines=0.0, perturbations_per_eval=per_call)
            return attribution[0].double().detach().cpu().numpy(), 0.0
    raise ValueError(f"unknown attribution method {method!r}; use one of {', '.join(ATTRIBUTION_METHODS)}")
