"""Greedy counterfactual searches (HIPPO-search): remove or add one patch per round, the best one each time.

Each round scores every remaining candidate -- the bag with that candidate removed (``remove``) or added
(``insert``) -- and keeps the one the optimizer picks:

* ``minimize``: the lowest objective (removal: the patches the class depends on most, "high effect");
* ``maximize``: the highest (removal: evidence against the class; insertion: the most convincing patches);
* ``smallest_difference``: the least change from the current bag ("low effect").

Ties go to the first candidate in pool order (HIPPO's ``argmin``/``argmax``). With ``stop_on_flip`` the
search ends at the first round whose decision differs from the start bag's. A search never empties a bag
unless ``allow_empty`` (HIPPO's reference scores an empty bag when asked for N rounds; see
:mod:`pathattn.explain.hippo_compat`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.explain.model import Scoring
from pathattn.explain.options import OPTIMIZERS, Objective, Optimizer
from pathattn.threads import intra_op_threads

Mode = Literal["remove", "insert"]


class Backend(Protocol):
    """What a search needs from a back end (:class:`CachedBackend`, :class:`GenericBackend`).

    Both work on a pool of P standardised instances (the slide's patches, then any donor patches).
    """

    name: str
    threads: int | None  # torch's intra-op threads for a search's rounds (None: as they are)

    def logits(self, masks: torch.Tensor) -> torch.Tensor:
        """(B, C) float64 logits of the bags ``masks`` (B, P) bool; an empty bag gives the head's bias."""
        ...

    def toggle(self, alive: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Logits of the bag ``alive`` with each candidate's membership flipped (removed if in it, else added).

        Args:
            alive: (P,) bool, the current bag.
            candidates: (n,) int64 pool indices.

        Returns:
            (n, C) float64 logits, row j for the bag with candidate j flipped.
        """
        ...


@dataclass(frozen=True)
class SearchResult:
    """The record of a greedy search.

    Args:
        mode: ``remove`` or ``insert``.
        optimizer: how each round chose.
        objective: what was optimised.
        class_index: the class of the objective.
        order: (R,) int64 pool indices in the order they were removed or added.
        values: (R + 1,) float64 objective of the bag after each step (row 0: the start bag).
        outputs: (R + 1, C') model outputs (probabilities, or risk) after each step.
        decisions: (R + 1,) int64 decision after each step (empty: a survival model without a risk threshold).
        flipped_at: the first step whose decision differs from the start bag's (None: never).
        backend: the back end that scored the candidates.
        seconds: wall time of the search.
    """

    mode: Mode
    optimizer: Optimizer
    objective: Objective
    class_index: int
    order: np.ndarray
    values: np.ndarray
    outputs: np.ndarray
    decisions: np.ndarray
    flipped_at: int | None
    backend: str
    seconds: float


def choose(values: torch.Tensor, current: float, optimizer: Optimizer) -> int:
    """The position the optimizer picks among the candidates' objective ``values`` (n,); ties: the first.

    ``smallest_difference`` computes ``|values - current|`` in the dtype of ``values`` (float32 in HIPPO).
    """
    if optimizer == "minimize":
        return int(values.argmin())
    if optimizer == "maximize":
        return int(values.argmax())
    if optimizer == "smallest_difference":
        return int((values - current).abs().argmin())
    raise PathattnError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def _check(start: torch.Tensor, candidates: torch.Tensor, mode: Mode, rounds: int, allow_empty: bool) -> None:
    if mode not in ("remove", "insert"):
        raise PathattnError(f"unknown search mode {mode!r}; use remove or insert")
    inside = start[candidates]
    if mode == "remove" and not inside.all():
        raise PathattnError("removal candidates must be patches of the bag")
    if mode == "insert" and inside.any():
        raise PathattnError("insertion candidates must be patches outside the bag")
    if not 1 <= rounds <= len(candidates):
        raise PathattnError(f"rounds must be between 1 and the {len(candidates)} candidates, got {rounds}")
    if mode == "remove" and not allow_empty and rounds >= int(start.sum()):
        raise PathattnError(
            f"{rounds} removal rounds would empty the bag of {int(start.sum())} patches; "
            "use at most one round fewer (an empty bag has no prediction)"
        )


def greedy_search(
    backend: Backend,
    scoring: Scoring,
    start: torch.Tensor,
    candidates: torch.Tensor,
    *,
    mode: Mode = "remove",
    optimizer: Optimizer = "minimize",
    rounds: int = 1,
    stop_on_flip: bool = False,
    allow_empty: bool = False,
) -> SearchResult:
    """Greedy removal or insertion search over a pool of instances.

    Args:
        backend: scores candidate bags.
        scoring: objective, outputs and decision of a bag's logits.
        start: (P,) bool, the bag at the start (the slide's patches for removal; for insertion the slide's
            patches, or none to build a bag from scratch).
        candidates: (n,) int64 pool indices that may be removed (inside ``start``) or added (outside).
        mode: ``remove`` or ``insert``.
        optimizer: ``minimize``, ``maximize`` or ``smallest_difference`` of the objective.
        rounds: the most patches to remove or add.
        stop_on_flip: end after the first round whose decision differs from the start bag's.
        allow_empty: let removal score the empty bag (HIPPO compatibility only).

    Returns:
        The search's record.

    Raises:
        PathattnError: candidates on the wrong side of ``start``, or ``rounds`` out of range.
    """
    began = time.perf_counter()
    candidates = torch.unique(torch.as_tensor(candidates, dtype=torch.int64))  # sorted: HIPPO's candidate order
    if optimizer not in OPTIMIZERS:
        raise PathattnError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    _check(start, candidates, mode, rounds, allow_empty)
    decide = stop_on_flip or scoring.can_decide
    alive = start.clone()
    first = backend.logits(alive[None])
    values, outputs = [scoring.values(first)[0]], [scoring.outputs(first)[0]]
    decisions = [int(scoring.decisions(first)[0])] if decide else []
    remaining = torch.ones(len(candidates), dtype=torch.bool)
    order: list[int] = []
    with intra_op_threads(backend.threads):  # the rounds: many small passes over P instances
        for _ in range(rounds):
            pool_index = candidates[remaining]
            logits = backend.toggle(alive, pool_index)
            scores = scoring.values(logits)
            pick = choose(scores, float(values[-1]), optimizer)
            chosen = int(pool_index[pick])
            order.append(chosen)
            alive[chosen] = mode == "insert"
            remaining[torch.searchsorted(candidates, chosen)] = False  # candidates are sorted
            values.append(scores[pick])
            outputs.append(scoring.outputs(logits[pick : pick + 1])[0])
            if decide:
                decisions.append(int(scoring.decisions(logits[pick : pick + 1])[0]))
            if stop_on_flip and decisions[-1] != decisions[0]:
                break
    flips = [step for step, decision in enumerate(decisions) if decision != decisions[0]]
    return SearchResult(
        mode=mode,
        optimizer=optimizer,
        objective=scoring.objective,
        class_index=scoring.class_index,
        order=np.asarray(order, np.int64),
        values=torch.stack(values).double().numpy(),
        outputs=torch.stack(outputs).numpy(),
        decisions=np.asarray(decisions, np.int64),
        flipped_at=flips[0] if flips else None,
        backend=backend.name,
        seconds=time.perf_counter() - began,
    )
