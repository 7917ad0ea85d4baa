"""What every report section shares: the :class:`Section` record, number formatting and the slide's prediction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pathattn.report.inputs import ReportInputs


@dataclass(frozen=True)
class Section:
    """One section of the report.

    Args:
        key: its HTML id (``#key`` links to it).
        title: its heading.
        template: the Jinja2 source of its body; it sees ``data``.
        data: what the body shows.
    """

    key: str
    title: str
    template: str
    data: dict[str, Any] = field(default_factory=dict)


def fmt(value: float | str | None, digits: int = 3) -> str:
    """A metric value as text: ``digits`` decimals, ``n/a`` for None or nan."""
    if value is None or value == "":
        return "n/a"
    value = float(value)
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def slide_score(inputs: ReportInputs, slide_id: str) -> float | None:
    """The number that orders the heatmaps, highest first (None: the slide has no prediction).

    P(class 1) of a binary classifier, the top probability of a multi-class one, the risk of a survival
    model: out of fold where the training run has the slide, else from ``pathattn predict``.
    """
    row = inputs.oof.get(slide_id) or inputs.predicted.get(slide_id) or {}
    try:
        if row.get("risk"):
            return float(row["risk"])
        probs = [float(value) for key, value in row.items() if key.startswith("prob_") and value]
    except ValueError:
        return None
    if not probs:
        return None
    return probs[1] if len(probs) == 2 else max(probs)


def prediction_text(row: Mapping[str, str]) -> str:
    """A predictions row as text: ``label (p=0.912)``, or ``risk 1.234`` for a survival model (empty: none)."""
    prediction, risk = row.get("prediction", ""), row.get("risk", "")
    if prediction:
        prob = row.get(f"prob_{prediction}", "")
        return f"{prediction} (p={fmt(prob)})" if prob else prediction
    return f"risk {fmt(risk)}" if risk else ""


def cell(inputs: ReportInputs, slide_id: str, key: str) -> str:
    """A column of the slide from the training predictions, else the sample sheet."""
    return inputs.oof.get(slide_id, {}).get(key) or inputs.samples.get(slide_id, {}).get(key, "")
