"""What a counterfactual measures on a trained model.

The model is a :class:`~pathattn.models.trained.TrainedModel` (:func:`~pathattn.models.trained.load_trained`
reads checkpoints of ``pathattn train``, HIPPO and CLAM-SB; any MIL network can be wrapped directly). Raw
bags are standardised **once**, when an explainer is built; every counterfactual bag is then a subset of
those standardised rows, so removing or adding a patch never re-standardises anything.

:class:`Scoring` turns bag logits into the number a search optimises (the *objective*), the model's outputs
(class probabilities, or one risk for survival: HIPPO's ``model_outputs``) and the decision (for stopping
when it flips):

============  =================================================================================================
objective     value for class k of logits l (B, C)
============  =================================================================================================
``log_odds``  ``l_k - logsumexp_{j != k} l_j`` = log(p_k / (1 - p_k)); the default: it keeps ordering the
              candidates when p_k rounds to 1.0 (HIPPO's probability does not)
``prob``      ``softmax(l)_k`` (HIPPO's objective)
``logit``     ``l_k``
``risk``      survival models: ``l_0`` (Cox) or ``-sum_t S(t)`` of the discrete hazards (NLL)
============  =================================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pathattn.errors import PathattnError
from pathattn.explain.options import OBJECTIVES, Objective
from pathattn.models.trained import TrainedModel


@dataclass(frozen=True)
class Scoring:
    """How bag logits are read: the objective of one class, the outputs and the decision.

    Args:
        model: the explained model (its task decides which objectives exist).
        objective: what a search optimises (module docstring).
        class_index: the class whose objective is measured (classification; ignored for ``risk``).
        risk_threshold: survival: the decision is ``risk > risk_threshold`` (needed to stop on a flip).
        dtype: the precision of values and outputs; float32 reproduces HIPPO's float32 probabilities.
    """

    model: TrainedModel
    objective: Objective = "log_odds"
    class_index: int = 1
    risk_threshold: float | None = None
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise PathattnError(f"unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}")
        survival = self.model.task == "survival"
        if survival != (self.objective == "risk"):
            kind = "survival models need --objective risk" if survival else "risk is for survival models"
            raise PathattnError(f"objective {self.objective!r} does not fit a {self.model.task} model: {kind}")
        n_classes = int(self.model.network.n_classes)
        if not survival and not 0 <= self.class_index < n_classes:
            raise PathattnError(f"class index {self.class_index} out of range: the model has {n_classes} classes")

    def values(self, logits: torch.Tensor) -> torch.Tensor:
        """The objective of every bag: logits (B, C) -> (B,) in ``dtype``."""
        logits = logits.to(self.dtype)
        k = self.class_index
        if self.objective == "risk":
            return self.outputs(logits)[:, 0]
        if self.objective == "prob":  # over the classes of a (C, B) copy: ~5x faster than rows of C = 2 at large B
            return torch.softmax(logits.T.contiguous(), dim=0)[k]
        if self.objective == "logit" or logits.shape[-1] == 1:
            return logits[:, k]
        others = torch.cat([logits[:, :k], logits[:, k + 1 :]], dim=-1)
        return logits[:, k] - torch.logsumexp(others, dim=-1)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's outputs: class probabilities (B, C), or the risk (B, 1) of a survival model."""
        return self.model.scores(logits.to(self.dtype))

    @property
    def can_decide(self) -> bool:
        """Whether a decision exists: always for classification, with a risk threshold for survival."""
        return self.model.task == "classification" or self.risk_threshold is not None

    def decisions(self, logits: torch.Tensor) -> torch.Tensor:
        """The decision of every bag (B,) int64: the predicted class, or 1 where the risk exceeds the threshold."""
        if self.model.task == "classification":
            return logits.argmax(dim=-1)
        if self.risk_threshold is None:
            raise PathattnError("stopping on a flip of a survival model needs a risk threshold (--risk-threshold)")
        return (self.outputs(logits)[:, 0] > self.risk_threshold).long()
