"""Everything the explain stage computes for one slide, as one JSON-ready record (schema in docs/explain.md).

Methods (each adds a block to the record):

* ``compare``: top-q attention, HIPPO top-effect and random removals of the same size, single-patch effects,
  their Spearman correlation with attention, and the curves of the figure (:mod:`pathattn.explain.cohort`);
* ``search``: HIPPO's greedy removal search with the chosen optimizer; its result also fills HIPPO's keys
  ``optimized_class_index``, ``model_outputs`` and ``ablated_patches`` at the top of the record;
* ``region``: the annotated region removed (necessity) and kept alone, and the cohort flags;
* ``insertion``: greedy insertion of donor patches (another slide's, its annotated region with annotations);
* ``attributions``: integrated gradients and feature ablation per patch, against attention and effect.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from pathattn.errors import PathattnError
from pathattn.explain.attributions import ATTRIBUTION_METHODS, patch_attributions
from pathattn.explain.cohort import annotation_flags, compare_slide, spearman
from pathattn.explain.engine import Explainer
from pathattn.explain.hippo_compat import hippo_greedy_search
from pathattn.explain.model import Scoring
from pathattn.explain.options import METHODS, Method, Objective, Optimizer
from pathattn.explain.regions import ranking_scores, top_ranked
from pathattn.explain.search import SearchResult

SCHEMA = "pathattn-explain/1"
CURVE_POINTS = 40


@dataclass(frozen=True)
class SlideSettings:
    """What to compute per slide (the options of ``pathattn explain``).

    Args:
        methods: the blocks to compute (module docstring).
        objective: ``log_odds`` (default), ``prob``, ``logit`` (classification) or ``risk`` (survival).
        target: the class explained: ``predicted`` (each slide's predicted class) or a class name.
        positive_class: the class counted as positive for flags and insertion (default: the last class).
        optimizer: the greedy search's optimizer.
        fraction: q, the share of patches of the compared sets and of the search (ceil(q N) patches).
        rounds: search rounds instead of ``fraction``.
        stop_on_flip: end the searches when the decision flips.
        risk_threshold: survival: the decision is ``risk > risk_threshold``.
        n_random: random sets per slide.
        seed: seed of the random sets.
        insert_rounds: most donor patches added by the insertion search.
        small_tumor: the largest share of patches of a tumor flagged as small.
        ig_steps: integration steps of integrated gradients.
        hippo_compat: run ``search`` with HIPPO's reference semantics (:mod:`pathattn.explain.hippo_compat`).
    """

    methods: tuple[Method, ...] = ("compare", "search")
    objective: Objective = "log_odds"
    target: str = "predicted"
    positive_class: str | None = None
    optimizer: Optimizer = "minimize"
    fraction: float = 0.05
    rounds: int | None = None
    stop_on_flip: bool = False
    risk_threshold: float | None = None
    n_random: int = 20
    seed: int = 0
    insert_rounds: int = 10
    small_tumor: float = 0.1
    ig_steps: int = 32
    hippo_compat: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        checks = [
            (not unknown, f"unknown method(s) {', '.join(unknown)}; use {', '.join(METHODS)}"),
            (0.0 < self.fraction < 1.0, f"--fraction must be in (0, 1) (a share of the patches, e.g. 0.05), got "
                                        f"{self.fraction}"),
            (self.rounds is None or self.rounds >= 1, f"--rounds must be at least 1, got {self.rounds}"),
            (self.n_random >= 1 and self.insert_rounds >= 1 and self.ig_steps >= 1,
             "--n-random, --insert-rounds and --ig-steps must be at least 1"),
            (0.0 <= self.small_tumor <= 1.0, f"--small-tumor must be in [0, 1], got {self.small_tumor}"),
            (self.seed >= 0, f"--seed must be 0 or more, got {self.seed}"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise PathattnError(message)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass
class SlideInputs:
    """One slide's data besides its features.

    Args:
        slide_id: the slide.
        coords: (N, 2) level-0 top-left x, y of the patches, or None.
        region: (k,) indices of the annotated patches, or None without annotations.
        donor: the donor slide's id and the (M,) indices, in the donor's feature file, of the explainer's M
            donor patches (offered for insertion), or None.
    """

    slide_id: str
    coords: np.ndarray | None = None
    region: np.ndarray | None = None
    donor: tuple[str, np.ndarray] | None = None


def _float(value: float) -> float | None:
    """A JSON number, None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def _floats(values: np.ndarray | torch.Tensor) -> list:
    """An array as (nested) lists of JSON numbers (None for NaN)."""
    array = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, np.float64)
    return [_floats(row) for row in array] if array.ndim > 1 else [_float(v) for v in array.tolist()]


def _state(scoring: Scoring, logits: torch.Tensor) -> dict[str, Any]:
    """Outputs, objective and decision of one bag's logits (C,)."""
    row = logits[None]
    state = {"outputs": _floats(scoring.outputs(row)[0]), "objective": float(scoring.values(row)[0])}
    if scoring.can_decide:
        state["decision"] = int(scoring.decisions(row)[0])
    return state


def class_index(explainer: Explainer, name: str) -> int:
    """The index of class ``name`` (``predicted``: the slide's predicted class) of a classification model."""
    if name == "predicted":
        return int(explainer.logits().argmax())
    names = list(explainer.model.class_names)
    if name not in names:
        raise PathattnError(f"class {name!r} is not a class of the model ({', '.join(names) or 'unnamed'})")
    return names.index(name)


def positive_index(explainer: Explainer, name: str | None) -> int:
    """The index of the positive class: ``name``, or the last class."""
    return class_index(explainer, name) if name is not None else int(explainer.model.network.n_classes) - 1


def _search_block(result: SearchResult, coords: np.ndarray | None) -> dict[str, Any]:
    """A search's record (with the coordinates of removed patches when the slide has them)."""
    block = {key: getattr(result, key) for key in ("mode", "optimizer", "objective", "flipped_at", "backend")}
    block |= {"rounds": len(result.order), "values": _floats(result.values), "outputs": _floats(result.outputs),
              "decisions": result.decisions.tolist(), "seconds": round(result.seconds, 4)}  # fmt: skip
    if coords is not None and result.mode == "remove":
        block["coords"] = coords[result.order].tolist()
    return block


def _prefix_curve(explainer: Explainer, scoring: Scoring, orders: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Objective after removing the first s patches of each order (R, n) for each s of ``steps``: (R, S)."""
    masks = explainer.bag().expand(len(orders) * len(steps), -1).clone()
    for row, (order, s) in enumerate((o, s) for o in orders for s in steps):
        masks[row, torch.from_numpy(order[:s])] = False
    return scoring.values(explainer.evaluate(masks)).numpy().reshape(len(orders), len(steps))


def removal_curves(explainer: Explainer, scoring: Scoring, search: SearchResult, attention: np.ndarray,
                   n_random: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """Objective against patches removed in search order, attention order and random order (mean and sd)."""
    total = len(search.order)
    steps = np.unique(np.linspace(0, total, min(total + 1, CURVE_POINTS)).round().astype(np.int64))
    generator = np.random.default_rng(seed)
    draws = np.stack([generator.permutation(explainer.n_patches)[:total] for _ in range(n_random)])
    random = _prefix_curve(explainer, scoring, draws, steps)
    return {
        "removed": steps.tolist(),
        "search": _floats(search.values[steps]),
        "attention": _floats(_prefix_curve(explainer, scoring, top_ranked(attention, k=total)[None], steps)[0]),
        "random_mean": _floats(random.mean(axis=0)),
        "random_sd": _floats(random.std(axis=0)),
    }


def _compare(explainer: Explainer, scoring: Scoring, attention: np.ndarray, settings: SlideSettings) -> dict:
    """The ``compare`` method: its block, the single-patch effects and the removal curves."""
    result = compare_slide(explainer, scoring, attention, settings.fraction, settings.n_random, settings.seed)
    curves = removal_curves(explainer, scoring, result.search, attention, settings.n_random, settings.seed)
    block = {
        "k": result.k,
        "baseline": result.baseline,
        "effects": result.effects,
        "random_effects": _floats(result.random_effects),
        "top_attention": result.top_attention.tolist(),
        "top_effect": result.top_effect.tolist(),
        "spearman": {"rho": _float(result.spearman[0]), "p": _float(result.spearman[1])},
    }
    return {"compare": block, "curves": curves, "single_effect": _floats(result.single_effects)}


def _search(explainer: Explainer, scoring: Scoring, settings: SlideSettings, coords: np.ndarray | None) -> dict:
    """The ``search`` method: its block and HIPPO's top-level keys."""
    rounds = settings.rounds
    if settings.hippo_compat:
        if settings.stop_on_flip:
            raise PathattnError("--hippo-compat reproduces HIPPO's search, which cannot stop on a flip")
        count = rounds or max(1, math.ceil(settings.fraction * explainer.n_patches))
        hippo = hippo_greedy_search(explainer, scoring.class_index, settings.optimizer, count)
        objective = "risk" if explainer.model.task == "survival" else "prob"
        block = {"hippo_compat": True, "optimizer": settings.optimizer, "objective": objective, "rounds": count}
        return {
            "search": block,
            "optimized_class_index": hippo["optimized_class_index"],
            "model_outputs": _floats(hippo["model_outputs"]),
            "ablated_patches": hippo["ablated_patches"].tolist(),
        }
    fraction = None if rounds is not None else settings.fraction
    result = explainer.greedy_remove(scoring, optimizer=settings.optimizer, rounds=rounds, fraction=fraction,
                                     stop_on_flip=settings.stop_on_flip)  # fmt: skip
    return {"search": {"hippo_compat": False, **_search_block(result, coords)},
            "optimized_class_index": scoring.class_index, "model_outputs": _floats(result.outputs),
            "ablated_patches": result.order.tolist()}  # fmt: skip


def _region_block(explainer: Explainer, scoring: Scoring, region: np.ndarray, positive: int,
                  settings: SlideSettings, record: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    n = explainer.n_patches
    share = len(region) / n
    block: dict[str, Any] = {"n_patches": int(len(region)), "share": share, "indices": region.tolist()}
    whole = explainer.logits()
    decision_positive = int(whole.argmax()) == positive if explainer.model.task == "classification" else False
    without = whole
    if 0 < len(region) < n:
        removed = explainer.remove(region)
        without = removed.after
        block["remove"] = _state(scoring, removed.after) | {"effect": removed.effect(scoring)}
        block["keep"] = _state(scoring, explainer.keep(region).after)
    if "compare" in record:
        inside = set(region.tolist())
        for name in ("top_attention", "top_effect"):
            chosen = record["compare"][name]
            block[f"{name}_in_region"] = sum(i in inside for i in chosen) / len(chosen)
    if explainer.model.task == "classification":
        block["flags"] = annotation_flags(
            decision_positive=decision_positive, region_share=share,
            positive_without_region=int(without.argmax()) == positive, small_tumor=settings.small_tumor,
        )  # fmt: skip
    return block


def _insertion_block(explainer: Explainer, positive: int, settings: SlideSettings,
                     donor: tuple[str, np.ndarray]) -> dict[str, Any]:  # fmt: skip
    donor_id, offered = donor
    objective = "risk" if explainer.model.task == "survival" else settings.objective
    scoring = Scoring(explainer.model, objective, positive, settings.risk_threshold)
    result = explainer.greedy_insert(scoring, rounds=min(settings.insert_rounds, explainer.n_donors),
                                     stop_on_flip=settings.stop_on_flip)  # fmt: skip
    names = explainer.model.class_names
    block = {"donor": donor_id, "class_index": positive, "class": names[positive] if names else str(positive),
             "candidates": explainer.n_donors}  # fmt: skip
    return block | _search_block(result, None) | {"order": offered[result.order - explainer.n_patches].tolist()}


def _attributions(explainer: Explainer, scoring: Scoring, settings: SlideSettings, patches: dict) -> dict:
    """Per-patch attributions (added to ``patches``) and their block: convergence and rank correlations."""
    attention = np.asarray(patches["attention"], np.float64)
    effect = patches.get("single_effect")
    block: dict[str, Any] = {}
    for method in ATTRIBUTION_METHODS:
        scores, delta = patch_attributions(explainer, scoring, method, n_steps=settings.ig_steps)
        patches[method] = _floats(scores)
        block[method] = {"delta": delta, "spearman_attention": _float(spearman(scores, attention)[0])}
        if effect is not None:
            block[method]["spearman_effect"] = _float(spearman(scores, np.asarray(effect, np.float64))[0])
    return block


def explain_slide(explainer: Explainer, inputs: SlideInputs, settings: SlideSettings) -> dict[str, Any]:
    """The record of one slide (module docstring; schema in docs/explain.md).

    Raises:
        PathattnError: a method that needs missing inputs (``region`` without annotations, ``insertion``
            without a donor), an unknown class, or a bag too small for a method.
    """
    model = explainer.model
    survival = model.task == "survival"
    k = 0 if survival else class_index(explainer, settings.target)
    positive = 0 if survival else positive_index(explainer, settings.positive_class)
    scoring = Scoring(model, "risk" if survival else settings.objective, k, settings.risk_threshold)
    attention = explainer.attention()
    record: dict[str, Any] = {
        "schema": SCHEMA, "slide_id": inputs.slide_id, "model": model.name, "task": model.task,
        "classes": list(model.class_names), "n_patches": explainer.n_patches, "backend": explainer.backend.name,
        "backend_note": explainer.backend_note, "settings": settings.as_dict(),
        "target": {"class_index": k, "class": model.class_names[k] if model.class_names else str(k),
                   "objective": scoring.objective, "positive_class_index": positive},
        "prediction": _state(scoring, explainer.logits()),
        "patches": {"attention": _floats(ranking_scores(attention))},
    }  # fmt: skip
    if "compare" in settings.methods:
        compared = _compare(explainer, scoring, attention, settings)
        record["patches"]["single_effect"] = compared.pop("single_effect")
        record |= compared
    if "search" in settings.methods:
        record |= _search(explainer, scoring, settings, inputs.coords)
    if "region" in settings.methods:
        if inputs.region is None:
            raise PathattnError("method 'region' needs annotations (--annotations DIR of {slide_id}.geojson)")
        record["region"] = _region_block(explainer, scoring, inputs.region, positive, settings, record)
    if "insertion" in settings.methods and inputs.donor is not None:
        record["insertion"] = _insertion_block(explainer, positive, settings, inputs.donor)
    if "attributions" in settings.methods:
        record["attributions"] = _attributions(explainer, scoring, settings, record["patches"])
    return record
