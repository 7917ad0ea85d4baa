"""Cross-validation splits: patient grouping, stratification, leakage checks, label checks, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pathattn.errors import PathattnError
from pathattn.fitting.sample_table import check_labels, patient_labels, slide_patients
from pathattn.fitting.splits import Fold, Splits, check_no_leakage, load_splits, make_splits, save_splits


def toy_table(n_patients: int = 40) -> list[dict[str, str]]:
    """Balanced two-class cohort; every third patient has two slides."""
    rows = []
    for p in range(n_patients):
        slides = ["a", "b"] if p % 3 == 0 else ["a"]
        for s in slides:
            rows.append({"slide_id": f"P{p:02d}-{s}", "patient_id": f"P{p:02d}", "label": str(p % 2)})
    return rows


def survival_table(n_patients: int = 30) -> list[dict[str, str]]:
    rows = []
    for p in range(n_patients):
        for s in ["a", "b"] if p % 4 == 0 else ["a"]:
            rows.append(
                {"slide_id": f"S{p}-{s}", "patient_id": f"S{p}", "time": str(3 + p), "event": str(int(p % 3 != 0))}
            )
    return rows


@pytest.mark.parametrize("val_fraction", [0.0, 0.25])
def test_folds_partition_slides_and_keep_patients_together(val_fraction):
    table = toy_table()
    splits = make_splits(table, n_folds=5, seed=0, val_fraction=val_fraction)
    everything = {row["slide_id"] for row in table}
    tested = [s for fold in splits.folds for s in fold.test]
    assert sorted(tested) == sorted(everything)  # every slide in exactly one test fold
    patient = slide_patients(table)
    label = {row["slide_id"]: row["label"] for row in table}
    for fold in splits.folds:
        assert set(fold.train) | set(fold.val) | set(fold.test) == everything
        parts = [{patient[s] for s in part} for part in (fold.train, fold.val, fold.test)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert {label[s] for s in fold.test} == {"0", "1"}  # stratified: both classes in every test fold
        if val_fraction:
            assert {label[s] for s in fold.val} == {"0", "1"}
            assert 0.15 < len(parts[1]) / (len(parts[0]) + len(parts[1])) < 0.35
        else:
            assert fold.val == ()
    check_no_leakage(splits, patient)


def test_seed_reproducible_and_changes_folds():
    table = toy_table()
    assert make_splits(table, seed=3) == make_splits(table, seed=3)
    assert make_splits(table, seed=3).folds != make_splits(table, seed=4).folds


def test_survival_stratifies_by_event():
    table = survival_table()
    splits = make_splits(table, n_folds=3, task="survival")
    assert splits.stratify == "event"
    event = {row["slide_id"]: row["event"] for row in table}
    for fold in splits.folds:
        assert {event[s] for s in fold.test} == {"0", "1"}


def test_without_patient_column_every_slide_is_a_patient():
    table = [{"slide_id": f"s{i}", "label": str(i % 2)} for i in range(10)]
    assert slide_patients(table) == {f"s{i}": f"s{i}" for i in range(10)}
    assert len(make_splits(table, n_folds=2)) == 2


def test_save_load_round_trip(tmp_path: Path):
    table = toy_table()
    splits = make_splits(table, n_folds=4, seed=1, val_fraction=0.2)
    path = tmp_path / "run" / "splits.json"
    save_splits(path, splits)
    document = json.loads(path.read_text())
    assert document["schema"] == "pathattn.splits" and document["version"] == 1
    assert document["seed"] == 1 and document["n_folds"] == 4 and document["slide_patient"]["P00-b"] == "P00"
    assert load_splits(path, table) == splits
    assert load_splits(path) == splits
    assert not list(path.parent.glob(".*tmp*"))  # atomic write leaves no temporary


def test_load_rejects_other_slides(tmp_path: Path):
    table = toy_table()
    path = tmp_path / "splits.json"
    save_splits(path, make_splits(table))
    changed = [row for row in table if row["slide_id"] != "P05-a"] + [
        {"slide_id": "NEW-1", "patient_id": "NEW", "label": "1"}
    ]
    with pytest.raises(
        PathattnError, match=r"1 slide\(s\) not in samples.csv \(P05-a\).*missing from the splits \(NEW-1\)"
    ):
        load_splits(path, changed)
    moved = [dict(row, patient_id="P01") if row["slide_id"] == "P00-b" else row for row in table]
    with pytest.raises(PathattnError, match="other patients.*P00-b"):
        load_splits(path, moved)


def test_load_rejects_bad_files(tmp_path: Path):
    path = tmp_path / "splits.json"
    with pytest.raises(PathattnError, match="not found"):
        load_splits(path)
    path.write_text("{not json")
    with pytest.raises(PathattnError, match="not valid JSON"):
        load_splits(path)
    path.write_text(json.dumps({"schema": "pathattn.splits", "version": 99}))
    with pytest.raises(PathattnError, match="version 99"):
        load_splits(path)
    save_splits(path, make_splits(toy_table()))
    document = json.loads(path.read_text())
    document["folds"][0]["test"].append(document["folds"][1]["test"][0])  # a slide in two test folds
    path.write_text(json.dumps(document))
    with pytest.raises(PathattnError, match="exactly once"):
        load_splits(path)


def test_leakage_detected_on_hand_made_split():
    patient_of = {"s1": "A", "s2": "A", "s3": "B", "s4": "C", "s5": "C"}
    good = Fold(train=("s1", "s2"), val=("s3",), test=("s4", "s5"))
    bad = Fold(train=("s1", "s4"), val=("s3",), test=("s2", "s5"))
    splits = Splits((good, bad), patient_of, n_folds=2)
    with pytest.raises(PathattnError) as error:
        check_no_leakage(splits, patient_of)
    message = str(error.value)
    assert "patient A in train and test of fold 1 (slides s1, s2)" in message
    assert "patient C in train and test of fold 1" in message
    assert "fold 0" not in message and "\n" not in message
    check_no_leakage(Splits((good,), patient_of, n_folds=1), patient_of)


def test_disagreeing_patient_labels_named():
    table = toy_table()
    table[1] = dict(table[1], label="1")  # P00-b disagrees with P00-a
    with pytest.raises(PathattnError, match=r"patient P00 .*'label' in samples.csv \(P00-a=0, P00-b=1\)"):
        patient_labels(table)
    with pytest.raises(PathattnError, match="patient P00"):
        make_splits(table)


def test_single_class_message():
    with pytest.raises(PathattnError) as error:
        check_labels(["1", "1", "1"])
    assert (
        str(error.value)
        == "label column 'label' of samples.csv has only one class (1); a classifier needs at least two"
    )
    table = [dict(row, label="1") for row in toy_table()]
    with pytest.raises(PathattnError, match="only one class"):
        make_splits(table)
    assert check_labels(["b", "a", "b"]) == ["a", "b"]


def test_input_errors_name_column_and_fix():
    with pytest.raises(PathattnError, match="column 'label' of samples.csv is missing or empty for slide x1"):
        make_splits([{"slide_id": "x1"}, {"slide_id": "x2", "label": "0"}], n_folds=2)
    with pytest.raises(PathattnError, match="more than once"):
        make_splits([{"slide_id": "x", "label": "0"}, {"slide_id": "x", "label": "1"}], n_folds=2)
    with pytest.raises(PathattnError, match="fewer than --n-folds 5"):
        make_splits(toy_table(4))
    with pytest.raises(PathattnError, match="no event"):
        make_splits([dict(row, event="0") for row in survival_table()], task="survival")
    with pytest.raises(PathattnError, match="0 \\(censored\\) or 1"):
        make_splits([dict(row, event="yes") for row in survival_table()], task="survival")
    with pytest.raises(PathattnError, match="--val-fraction"):
        make_splits(toy_table(), val_fraction=0.8)
