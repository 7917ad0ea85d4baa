"""What a WSOL evaluation writes: one result per method, its table rows, and the output files (atomically)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pathattn.evaluate import protocol
from pathattn.evaluate.plots import Curve, pr_figure, write_figure
from pathattn.io.jsonfile import write_json
from pathattn.io.manifest import write_csv

MODEL = "model"
"""The name of the evaluated model in tables and figures (beside the baselines)."""

HEADLINE = ("pxap", "dice", "patch_auroc", "row_auroc", "max_box_acc", "max_box_acc_v2", "gt_known_loc", "top1_loc")


@dataclass
class MethodResult:
    """One method's maps scored on both splits, with the thresholds the calibration split chose.

    Args:
        calibration: its scores on the calibration split.
        test: its scores on the test split.
        operating: the calibrated thresholds.
        patch_scores: per slide, (N,) per-patch scores (whole-slide evaluations only).
    """

    calibration: protocol.SplitScores
    test: protocol.SplitScores
    operating: protocol.Operating
    patch_scores: dict[str, np.ndarray] = field(default_factory=dict)

    def split(self, name: str) -> protocol.SplitScores:
        return self.calibration if name == "calibration" else self.test


def method_rows(
    name: str,
    result: MethodResult,
    splits: Mapping[str, Sequence[str]],
    extra: Callable[[MethodResult, Sequence[str]], dict[str, float]] | None = None,
    sample_columns: Callable[[str], dict[str, Any]] | None = None,
    id_column: str = "sample_id",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``summary.csv`` (one per split) and of the per-sample table of one method.

    Args:
        name: the method.
        result: its scores.
        splits: split name to its sample ids.
        extra: more split metrics (e.g. patch AUROC) from the result and the split's ids.
        sample_columns: more columns of a sample's row (e.g. whether the slide has tumor).
        id_column: the name of the per-sample table's id column.
    """
    summary, samples = [], []
    for split, ids in splits.items():
        metrics = protocol.summarize(result.split(split), result.operating)
        metrics |= extra(result, ids) if extra else {}
        summary.append({"method": name, "split": split, "n": len(ids), **metrics})
        for sample_id, row in protocol.sample_rows(result.split(split), result.operating).items():
            more = sample_columns(sample_id) if sample_columns else {}
            samples.append({"method": name, "split": split, id_column: sample_id, **more, **row})
    return summary, samples


def methods_block(summary: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``metrics.json``'s ``methods``: method -> split -> metrics, from the summary rows."""
    block: dict[str, dict[str, dict[str, Any]]] = {}
    for row in summary:
        block.setdefault(row["method"], {})[row["split"]] = {
            k: v for k, v in row.items() if k not in ("method", "split")
        }
    return block


def write_outputs(
    out: Path,
    metrics: Mapping[str, Any],
    summary: Sequence[Mapping[str, Any]],
    per_sample: tuple[str, Sequence[Mapping[str, Any]]],
    panels: Mapping[str, Mapping[str, Curve]],
) -> None:
    """Write ``summary.csv``, the per-sample CSV (``per_sample[0]``), ``pr_curves.png`` (with masks) and
    ``metrics.json`` last, each atomically; then print the test split's headline numbers on stderr."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "summary.csv", summary)
    write_csv(out / per_sample[0], per_sample[1])
    if any(panels.values()):
        write_figure(out / "pr_curves.png", pr_figure({k: v for k, v in panels.items() if v}))
    write_json(out / "metrics.json", dict(metrics), indent=2)
    _print_summary(metrics, out)


def _print_summary(metrics: Mapping[str, Any], out: Path) -> None:
    """The test split's headline numbers, one line per method, on stderr."""
    for method, splits in metrics["methods"].items():
        test = splits.get("test", {})
        values = ", ".join(f"{k} {test[k]:.3f}" for k in HEADLINE if isinstance(test.get(k), float))
        print(f"evaluate wsol: {method} (test, {test.get('n', 0)}): {values}", file=sys.stderr)
    print(f"evaluate wsol: results in {out}/ (metrics.json, summary.csv, pr_curves.png)", file=sys.stderr)


def result_panels(results: Mapping[str, MethodResult]) -> dict[str, dict[str, Curve]]:
    """Precision-recall curves of each method on both splits, with its operating point (pixel truth only)."""
    return {
        f"{split} split": {
            name: Curve(r.split(split).pixels, r.operating.pixel_index)  # type: ignore[arg-type]
            for name, r in results.items()
            if r.split(split).pixels is not None
        }
        for split in ("calibration", "test")
    }


def write_run(
    out: Path,
    metrics: dict[str, Any],
    summary: Sequence[Mapping[str, Any]],
    candidates: Mapping[str, protocol.SplitScores],
    results: Mapping[str, MethodResult],
    per_item: tuple[str, Sequence[Mapping[str, Any]]],
) -> dict[str, Any]:
    """Write a run's outputs, the calibration panel showing every candidate variant of the model; return metrics."""
    panels = result_panels(results)
    variants = {f"{MODEL}: {name}": Curve(s.pixels) for name, s in candidates.items() if s.pixels is not None}
    panels["calibration split"] = variants | {n: c for n, c in panels["calibration split"].items() if n != MODEL}
    write_outputs(out, metrics, summary, per_item, panels)
    return metrics
