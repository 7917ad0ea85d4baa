"""The option names of the explain stage, kept free of heavy imports so that the command line can list them."""

from __future__ import annotations

from typing import Literal

Objective = Literal["log_odds", "prob", "logit", "risk"]
OBJECTIVES: tuple[Objective, ...] = ("log_odds", "prob", "logit", "risk")
Optimizer = Literal["minimize", "maximize", "smallest_difference"]
OPTIMIZERS: tuple[Optimizer, ...] = ("minimize", "maximize", "smallest_difference")
BackendName = Literal["auto", "cached", "generic"]
BACKENDS: tuple[BackendName, ...] = ("auto", "cached", "generic")
Method = Literal["compare", "search", "region", "insertion", "attributions"]
METHODS: tuple[Method, ...] = ("compare", "search", "region", "insertion", "attributions")
