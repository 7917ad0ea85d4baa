"""Counterfactuals on the synthetic cohort: the trained model's decisions rest on the planted tumors.

Gated ABMIL cross-validated on the 40-slide cohort (:func:`tests.conftest.trained_synthetic_run`) is explained by
``pathattn explain --run`` (each slide with its out-of-fold model) with the tumor annotations and two tumor
slides as donors, and checked on the records:

* removing the annotated tumor patches flips positive slides (predicted positive) to negative;
* adding a few tumor patches of a donor slide flips negative slides (predicted negative) to positive;
* the greedy search (minimize the tumor log-odds) removes tumor patches first;
* across slides, the search's patches and the top-attention patches matter more than random ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pathattn.cli.main import main
from pathattn.io.manifest import read_manifest


def explain_synthetic(cohort_root: Path, samples: Path, features: Path, run: Path, out: Path) -> dict:
    """Run ``pathattn explain`` on the cohort and return the records by slide id (and the cohort tests)."""
    labels = {row["slide_id"]: row["label"] for row in read_manifest(samples)}
    donors = [slide_id for slide_id, label in sorted(labels.items()) if label == "1"][:2]
    args = ["explain", "--run", str(run), "--features", str(features), "--samples", str(samples), "--out", str(out),
            "--annotations", str(cohort_root / "annotations"), "--donors", *donors, "--insert-rounds", "3",
            "--stop-on-flip", "--no-figures"]  # fmt: skip
    assert main(args) == 0
    records = {s: json.loads((out / "slides" / f"{s}.json").read_text()) for s in labels}
    return {"labels": labels, "records": records, "cohort": json.loads((out / "cohort.json").read_text())}


def check_counterfactuals(result: dict) -> None:
    """The assertions of the module docstring."""
    labels, records = result["labels"], result["records"]
    positive = [r for s, r in records.items() if labels[s] == "1" and r["prediction"]["decision"] == 1]
    negative = [r for s, r in records.items() if labels[s] == "0" and r["prediction"]["decision"] == 0]
    assert len(positive) >= 15 and len(negative) >= 15

    flipped = [r["region"]["remove"]["decision"] == 0 for r in positive]
    assert np.mean(flipped) >= 0.85, f"tumor removal flipped {sum(flipped)} of {len(positive)} positive slides"

    inserted = [r["insertion"]["flipped_at"] is not None for r in negative]
    assert np.mean(inserted) >= 0.85, f"3 tumor patches flipped {sum(inserted)} of {len(negative)} negative slides"

    first_is_tumor, tumor_share = [], []
    for r in positive:
        tumor = set(r["region"]["indices"])
        found = r["ablated_patches"]
        first_is_tumor.append(found[0] in tumor)
        tumor_share.append(np.mean([i in tumor for i in found]))
    assert np.mean(first_is_tumor) >= 0.9 and np.mean(tumor_share) >= 0.8, (first_is_tumor, tumor_share)

    tests = {(t["first"], t["second"]): t for t in result["cohort"]["tests"]}
    search_vs_random = tests[("top_effect", "random")]
    assert search_vs_random["p_value"] < 1e-3 and search_vs_random["rank_biserial"] > 0.9
    assert tests[("top_effect", "top_attention")]["median_difference"] >= 0  # greedy never does worse here
    assert tests[("top_attention", "random")]["p_value"] < 0.05


@pytest.mark.slow
def test_counterfactuals_find_the_planted_tumors(synthetic_cohort, trained_synthetic_run, tmp_path):
    result = explain_synthetic(synthetic_cohort.root, synthetic_cohort.samples, synthetic_cohort.features,
                               trained_synthetic_run, tmp_path / "explain")  # fmt: skip
    check_counterfactuals(result)
