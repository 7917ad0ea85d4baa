"""The counterfactual engine: one slide's bag (and optional donor patches) and every operation on it.

An :class:`Explainer` standardises the raw bag once, picks a back end and answers counterfactual questions:

* single interventions: :meth:`~Explainer.remove` a set (necessity), :meth:`~Explainer.keep` only a set,
  :meth:`~Explainer.add` donor patches from another slide (sufficiency), remove the top-q% attention
  patches, random sets of the same size as baselines, every single-patch removal (leave-one-out);
* greedy searches: :meth:`~Explainer.greedy_remove` and :meth:`~Explainer.greedy_insert`
  (:mod:`pathattn.explain.search`).

Indices: the slide's patches are 0 .. N-1 (rows of its feature file); donor patches are numbered
0 .. M-1 within the donor array and sit at N .. N+M-1 of the pool (:meth:`Explainer.donor`).

Back ends: ``auto`` takes the cached one (:mod:`pathattn.explain.cached`) when the network provides
``instance_terms`` (:class:`~pathattn.models.mil.base.InstanceSeparable`) and its cached logits match a
forward pass of the whole pool, else the generic one
(:mod:`pathattn.explain.generic`) with a :class:`BackendFallbackWarning`; :attr:`Explainer.backend_note`
says which was used and why.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.explain.cached import CachedBackend, instance_terms, unsupported_reason
from pathattn.explain.generic import GenericBackend
from pathattn.explain.model import Scoring
from pathattn.explain.options import BACKENDS, BackendName, Optimizer
from pathattn.explain.regions import check_indices, top_ranked
from pathattn.explain.search import Backend, SearchResult, greedy_search
from pathattn.models.trained import TrainedModel

AGREEMENT = 1e-4  # cached vs forward logits, relative to (1 + largest |logit|)
CHECK_INSTANCES = 4096  # instances of the bag on which they are compared


class BackendFallbackWarning(UserWarning):
    """The cached back end cannot serve a model; the generic one is used instead."""


@dataclass(frozen=True)
class Counterfactual:
    """A bag before and after one intervention.

    Args:
        operation: ``remove``, ``keep``, ``add`` or ``remove_top_attention``.
        patches: (k,) int64 pool indices the intervention names.
        before: (C,) float64 logits of the slide's bag.
        after: (C,) float64 logits of the counterfactual bag.
    """

    operation: str
    patches: np.ndarray
    before: torch.Tensor
    after: torch.Tensor

    def effect(self, scoring: Scoring) -> float:
        """Objective before minus after: positive when the intervention lowered the objective."""
        values = scoring.values(torch.stack([self.before, self.after]))
        return float(values[0] - values[1])


def _as_matrix(features: np.ndarray | torch.Tensor, dim: int, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(features, np.float32) if isinstance(features, np.ndarray) else features)
    if tensor.ndim != 2 or tensor.shape[1] != dim:
        raise PathattnError(f"{what} must have shape (N, {dim}) for this model, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise PathattnError(f"{what} hold NaN or Inf values; re-extract the features")
    return tensor.float()


def check_bag(n_pool: int) -> torch.Tensor:
    """(1, P) mask of the bag on which the cached logits are checked against a forward pass.

    At most :data:`CHECK_INSTANCES` instances, evenly spaced over the pool: the check tests that the model is what
    its cached terms say (a property of the architecture, not of the bag), and a forward pass over all of a large
    bag would cost as much as computing the terms again.
    """
    mask = torch.zeros(1, n_pool, dtype=torch.bool)
    mask[0, torch.linspace(0, n_pool - 1, min(n_pool, CHECK_INSTANCES)).round().long()] = True
    return mask


def make_backend(
    network: torch.nn.Module, pool: torch.Tensor, backend: BackendName, max_batch_instances: int
) -> tuple[Backend, str]:
    """The back end for ``network`` on ``pool`` (P, D) and a note saying which and why.

    Raises:
        PathattnError: ``backend="cached"`` for a model the cached back end cannot serve.
    """
    if backend not in BACKENDS:
        raise PathattnError(f"unknown back end {backend!r}; use one of {', '.join(BACKENDS)}")
    generic = GenericBackend(network, pool, max_batch_instances)
    if backend == "generic":
        return generic, "generic (requested)"
    reason = unsupported_reason(network)
    if reason is None:
        cached = CachedBackend(instance_terms(network, pool, max_batch_instances))
        expected, found = generic.logits(check_bag(len(pool))), cached.logits(check_bag(len(pool)))
        gap = float((expected - found).abs().max())
        if gap <= AGREEMENT * (1.0 + float(expected.abs().max())):
            return cached, f"cached ({type(network).__name__} is instance-separable)"
        reason = f"the cached logits of {type(network).__name__} differ from its forward pass by {gap:.3g}"
    if backend == "cached":
        raise PathattnError(f"the cached back end cannot serve this model: {reason}; use the auto or generic back end")
    warnings.warn(f"{reason}; using the generic back end (slower)", BackendFallbackWarning, stacklevel=3)
    return generic, f"generic (fallback: {reason})"


class Explainer:
    """Counterfactuals of one slide under one model.

    Args:
        model: the explained model.
        features: (N, D) raw features of the slide (N >= 1).
        donors: (M, D) raw features of patches that may be added (from other slides), or None.
        backend: ``auto``, ``cached`` or ``generic`` (module docstring).
        max_batch_instances: instance rows per network call of the generic back end.

    Raises:
        PathattnError: an empty bag, features of the wrong size, NaN/Inf, or an impossible back end.
    """

    def __init__(
        self,
        model: TrainedModel,
        features: np.ndarray | torch.Tensor,
        *,
        donors: np.ndarray | torch.Tensor | None = None,
        backend: BackendName = "auto",
        max_batch_instances: int = 65536,
    ) -> None:
        bag = _as_matrix(features, model.in_dim, "the slide's features")
        if len(bag) == 0:
            raise PathattnError("the slide's bag is empty (0 patches); there is nothing to explain")
        extra = _as_matrix(donors, model.in_dim, "the donor features") if donors is not None else bag[:0]
        self.model = model
        self.n_patches, self.n_donors = len(bag), len(extra)
        with torch.inference_mode():
            self.pool = model.normalize(torch.cat([bag, extra]).to(model.device))
        self.backend: Backend
        self.backend, self.backend_note = make_backend(model.network, self.pool, backend, max_batch_instances)

    @property
    def n_pool(self) -> int:
        """P = N + M, the slide's patches and the donors."""
        return self.n_patches + self.n_donors

    def mask(self, pool_indices: Sequence[int] | np.ndarray = ()) -> torch.Tensor:
        """(P,) bool with True at ``pool_indices``."""
        mask = torch.zeros(self.n_pool, dtype=torch.bool)
        mask[torch.as_tensor(np.asarray(pool_indices, np.int64))] = True
        return mask

    def bag(self) -> torch.Tensor:
        """(P,) bool mask of the slide's own patches."""
        return self.mask(np.arange(self.n_patches))

    def patches(self, indices: Sequence[int] | np.ndarray, what: str = "patch indices") -> np.ndarray:
        """Checked pool indices of the slide's patches ``indices`` (0 .. N-1)."""
        return check_indices(indices, self.n_patches, what)

    def donor(self, indices: Sequence[int] | np.ndarray, what: str = "donor indices") -> np.ndarray:
        """Pool indices of donor patches ``indices`` (0 .. M-1 within the donors)."""
        return check_indices(indices, self.n_donors, what) + self.n_patches

    def evaluate(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, C) float64 logits of the bags ``masks`` (B, P)."""
        return self.backend.logits(masks)

    def logits(self) -> torch.Tensor:
        """(C,) float64 logits of the slide's bag."""
        return self.evaluate(self.bag()[None])[0]

    @torch.inference_mode()
    def attention(self) -> np.ndarray:
        """(N, K) float32 raw attention of the network on the slide's bag."""
        output = self.model.network(self.pool[None, : self.n_patches])
        return output.attention[0].float().cpu().numpy()

    def _counterfactual(self, operation: str, patches: np.ndarray, after: torch.Tensor) -> Counterfactual:
        return Counterfactual(operation, patches, self.logits(), self.evaluate(after[None])[0])

    def remove(self, indices: Sequence[int] | np.ndarray) -> Counterfactual:
        """The bag without the patches ``indices`` (necessity); removing every patch is refused."""
        patches = self.patches(indices)
        if len(patches) == self.n_patches:
            raise PathattnError("removing every patch leaves an empty bag, which has no prediction")
        return self._counterfactual("remove", patches, self.bag() & ~self.mask(patches))

    def keep(self, indices: Sequence[int] | np.ndarray) -> Counterfactual:
        """Only the patches ``indices`` of the bag."""
        patches = self.patches(indices)
        return self._counterfactual("keep", patches, self.mask(patches))

    def add(self, donor_indices: Sequence[int] | np.ndarray) -> Counterfactual:
        """The bag plus donor patches ``donor_indices`` (sufficiency)."""
        patches = self.donor(donor_indices)
        return self._counterfactual("add", patches, self.bag() | self.mask(patches))

    def remove_top_attention(self, fraction: float, attention: np.ndarray | None = None) -> Counterfactual:
        """The bag without its ``ceil(fraction * N)`` highest-attention patches (at least one)."""
        ranked = top_ranked(self.attention() if attention is None else attention, fraction=fraction)
        removed = self.remove(ranked)
        return Counterfactual("remove_top_attention", removed.patches, removed.before, removed.after)

    def random_removals(self, size: int, n_draws: int, seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
        """Random sets of ``size`` patches removed, the baseline of a set of that size.

        Returns:
            sets: (n_draws, size) int64 patch indices; logits: (n_draws, C) float64 of the bags without them.
        """
        if not 1 <= size < self.n_patches or n_draws < 1:
            raise PathattnError(f"random sets need 1 <= size < {self.n_patches} patches and n_draws >= 1")
        generator = torch.Generator().manual_seed(seed)
        sets = torch.stack([torch.randperm(self.n_patches, generator=generator)[:size] for _ in range(n_draws)])
        masks = self.bag().expand(n_draws, -1).clone()
        masks[torch.arange(n_draws)[:, None], sets] = False
        return sets.numpy(), self.evaluate(masks)

    def leave_one_out(self) -> torch.Tensor:
        """(N, C) float64 logits of the bag without each single patch (one patch: its empty bag's logits)."""
        return self.backend.toggle(self.bag(), torch.arange(self.n_patches))

    def greedy_remove(
        self,
        scoring: Scoring,
        *,
        optimizer: Optimizer = "minimize",
        rounds: int | None = None,
        fraction: float | None = None,
        stop_on_flip: bool = False,
        candidates: Sequence[int] | np.ndarray | None = None,
        always: Sequence[int] | np.ndarray | None = None,
    ) -> SearchResult:
        """Greedy removal search (HIPPO-search) over the slide's patches.

        Args:
            scoring: objective and class.
            optimizer: ``minimize``, ``maximize`` or ``smallest_difference``.
            rounds: patches to remove; or ``fraction`` of N (rounded up); default: all but one.
            fraction: see ``rounds``.
            stop_on_flip: end at the first round whose decision differs from the slide's.
            candidates: the patches that may be removed (default: all); the others stay.
            always: donor indices present in every bag and never removed (HIPPO's ``constant_features``).
        """
        pool_candidates = self.patches(np.arange(self.n_patches) if candidates is None else candidates)
        start = self.bag() | self.mask(self.donor(always) if always is not None else [])
        count = _rounds(rounds, fraction, self.n_patches, self.n_patches - 1)
        return greedy_search(self.backend, scoring, start, torch.from_numpy(pool_candidates), mode="remove",
                             optimizer=optimizer, rounds=count, stop_on_flip=stop_on_flip)  # fmt: skip

    def greedy_insert(
        self,
        scoring: Scoring,
        *,
        optimizer: Optimizer = "maximize",
        rounds: int | None = None,
        stop_on_flip: bool = False,
        candidates: Sequence[int] | np.ndarray | None = None,
        from_empty: bool = False,
    ) -> SearchResult:
        """Greedy insertion search: add donor patches to the slide's bag, or build a bag from scratch.

        Args:
            scoring: objective and class.
            optimizer: ``maximize`` (default), ``minimize`` or ``smallest_difference``.
            rounds: patches to add (default: every candidate).
            stop_on_flip: end at the first round whose decision differs from the start bag's.
            candidates: pool indices that may be added (default: every donor; with ``from_empty``, every patch
                of the slide).
            from_empty: start from an empty bag (sufficiency of the slide's own patches) instead of the slide.
        """
        default = np.arange(self.n_patches) if from_empty else np.arange(self.n_patches, self.n_pool)
        pool_candidates = check_indices(default if candidates is None else candidates, self.n_pool, "candidates")
        if len(pool_candidates) == 0:
            raise PathattnError("insertion needs candidate patches: pass donor features (patches of another slide)")
        start = self.mask() if from_empty else self.bag()
        count = _rounds(rounds, None, len(pool_candidates), len(pool_candidates))
        return greedy_search(self.backend, scoring, start, torch.from_numpy(pool_candidates), mode="insert",
                             optimizer=optimizer, rounds=count, stop_on_flip=stop_on_flip)  # fmt: skip


def _rounds(rounds: int | None, fraction: float | None, n: int, default: int) -> int:
    """Rounds of a search: given, ``ceil(fraction * n)``, or ``default``."""
    if rounds is not None and fraction is not None:
        raise PathattnError("give the number of rounds or a fraction of the patches, not both")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise PathattnError(f"the fraction of patches must be in (0, 1], got {fraction}")
        return max(1, math.ceil(fraction * n))
    return default if rounds is None else rounds
