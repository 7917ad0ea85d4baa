"""What a counterfactual explains: a trained MIL network, its feature standardisation, and what is measured.

:class:`ExplainedModel` wraps the network of a ``pathattn train`` checkpoint (or any MIL network, e.g. a
HIPPO model loaded with :func:`pathattn.models.mil.abmil_from_hippo`) with the per-fold standardisation of
its :class:`~pathattn.train.system.MILSystem`. Raw bags are standardised **once**, when an explainer is
built; every counterfactual bag is then a subset of those standardised rows, so removing or adding a patch
never re-standardises anything.

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

import os
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from pathattn.errors import PathattnError
from pathattn.explain.options import OBJECTIVES, Objective

Task = Literal["classification", "survival"]


@dataclass(frozen=True)
class ExplainedModel:
    """A MIL network with the transform its inputs need.

    Args:
        network: maps ``features (B, N, D)`` and ``mask (B, N)`` to a ``MILOutput``; put in eval mode here.
        task: ``classification`` (logits of C classes) or ``survival``.
        survival_loss: how a survival network's logits become a risk: ``nll`` (discrete hazards) or ``cox``.
        class_names: the class names in index order (classification).
        feature_mean: (D,) subtracted from raw features (None: no standardisation).
        feature_std: (D,) raw features are divided by it after centring.
        name: the registered model name, for the outputs.
    """

    network: nn.Module
    task: Task = "classification"
    survival_loss: Literal["nll", "cox"] = "nll"
    class_names: tuple[str, ...] = ()
    feature_mean: torch.Tensor | None = None
    feature_std: torch.Tensor | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.network.eval()

    @classmethod
    def from_system(cls, system: nn.Module) -> ExplainedModel:
        """The network and standardisation of a :class:`~pathattn.train.system.MILSystem`."""
        hparams = system.hparams
        standardize = hparams.get("feature_norm", "none") != "none"
        return cls(
            network=system.model,
            task=hparams.get("task", "classification"),
            survival_loss=hparams.get("survival_loss", "nll"),
            class_names=tuple(hparams.get("class_names") or ()),
            feature_mean=system.feature_mean.detach().clone() if standardize else None,
            feature_std=system.feature_std.detach().clone() if standardize else None,
            name=(hparams.get("model_spec") or {}).get("name", type(system.model).__name__),
        )

    @classmethod
    def load(cls, checkpoint: str | os.PathLike[str], device: str = "cpu") -> ExplainedModel:
        """Load a checkpoint of ``pathattn train`` (``RUN/fold_k/checkpoints/*.ckpt``)."""
        from pathattn.train.system import MILSystem

        return cls.from_system(MILSystem.load(checkpoint, map_location=device))

    @property
    def in_dim(self) -> int:
        """D, the feature size the network takes."""
        return int(self.network.in_dim)

    @property
    def device(self) -> torch.device:
        """Where the network's parameters are."""
        return next(self.network.parameters()).device

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Raw ``features`` (..., D) as the network sees them (standardised with the checkpoint's statistics)."""
        if self.feature_mean is None or self.feature_std is None:
            return features
        mean, std = self.feature_mean.to(features), self.feature_std.to(features)
        return (features - mean) / std


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

    model: ExplainedModel
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
        if self.objective == "prob":
            return torch.softmax(logits, dim=-1)[:, k]
        if self.objective == "logit" or logits.shape[-1] == 1:
            return logits[:, k]
        others = torch.cat([logits[:, :k], logits[:, k + 1 :]], dim=-1)
        return logits[:, k] - torch.logsumexp(others, dim=-1)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """The model's outputs: class probabilities (B, C), or the risk (B, 1) of a survival model."""
        logits = logits.to(self.dtype)
        if self.model.task == "classification":
            return torch.softmax(logits, dim=-1)
        if self.model.survival_loss == "cox":
            return logits[:, :1]
        from pathattn.train.survival import risk_from_hazards

        return risk_from_hazards(logits)[:, None]

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
