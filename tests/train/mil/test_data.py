"""Training bags: the sample sheet, feature files, validation and padded batches."""

import numpy as np
import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.io.bags import read_checked_bag, write_clam_pt, write_features
from pathattn.train.mil.data import (
    BagDataset,
    Sample,
    collate_bags,
    empty_bags,
    feature_dim,
    feature_stats,
    match_features,
    normalise_label,
    read_samples,
)

SHEET = "slide_id,patient_id,label,time,event\na,p1,tumor,10.5,1\nb,p1,tumor,10.5,1\nc,p2,normal,30,0\n"


def _sheet(tmp_path, text=SHEET, name="samples.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _bags(tmp_path, sizes, dim=4, pt=()):
    rng = np.random.default_rng(0)
    for slide, n in sizes.items():
        features = rng.normal(size=(n, dim)).astype(np.float32)
        if slide in pt:  # a bag from features alone: CLAM .pt, no coordinates
            write_clam_pt(tmp_path / "feats" / "pt_files" / f"{slide}.pt", features)
        else:
            coords = np.zeros((n, 2), np.int64)
            write_features(tmp_path / "feats" / "h5_files" / f"{slide}.h5", features, coords, {}, {"encoder": "x"})
    return tmp_path / "feats"


def test_read_samples_for_both_tasks(tmp_path):
    samples, classes = read_samples(_sheet(tmp_path), "classification")
    assert classes == ["normal", "tumor"] and [s.label for s in samples] == [1, 1, 0]
    samples, classes = read_samples(_sheet(tmp_path), "survival")
    assert classes == [] and samples[0].time == 10.5 and [s.event for s in samples] == [1, 1, 0]
    numeric = _sheet(tmp_path, "slide_id\tpatient_id\tlabel\na\tp\t10\nb\tq\t9\nc\tr\t2\n", "s.tsv")
    assert read_samples(numeric, "classification")[1] == ["2", "9", "10"]


@pytest.mark.parametrize(
    ("text", "task", "needle"),
    [
        ("slide_id,label\na,1\n", "classification", r"lacks the column\(s\) patient_id"),
        ("slide_id,patient_id,label\na,p,1\na,q,0\n", "classification", "twice"),
        ("slide_id,patient_id,time,event\na,p,soon,1\n", "survival", "not a number"),
        ("slide_id,patient_id,time,event\na,p,-3,1\n", "survival", "time > 0"),
        ("slide_id,patient_id,time,event\na,p,3,2\n", "survival", "event 0 or 1"),
        ("slide_id,patient_id,label\n", "classification", "no rows"),
    ],
)
def test_bad_sheets(tmp_path, text, task, needle):
    with pytest.raises(PathattnError, match=needle):
        read_samples(_sheet(tmp_path, text), task)


@pytest.mark.parametrize(
    ("cell", "label"),
    [("1", "1"), ("1.0", "1"), (" 01 ", "1"), ("1e0", "1"), ("+1.00", "1"), ("-0", "0"), ("0.50", "0.5"),
     (".5", "0.5"), ("tumor", "tumor"), (" Tumor ", "Tumor"), ("1_000", "1_000"), ("inf", "inf"), ("", ""),
     ("   ", ""), ("NaN", "")],
)  # fmt: skip
def test_normalise_label(cell, label):
    assert normalise_label(cell) == label


def test_spellings_of_one_number_are_one_class_named_by_its_integer_form(tmp_path):
    sheet = _sheet(tmp_path, "slide_id,patient_id,label\na,p,1.0\nb,q,1\nc,r,0\nd,s,0.0\ne,t, 2.50\n")
    samples, classes = read_samples(sheet, "classification")
    assert classes == ["0", "1", "2.5"] and [s.label for s in samples] == [1, 1, 0, 0, 2]
    assert read_samples(sheet, "classification", classes=["0.0", "1.00", "2.5"])[1] == ["0", "1", "2.5"]


@pytest.mark.parametrize("cell", ["", "  ", "nan"])
def test_a_missing_label_names_the_sheet_line_and_slide(tmp_path, cell):
    sheet = _sheet(tmp_path, f"slide_id,patient_id,label\na,p,tumor\n\nb,q,{cell}\nc,r,normal\n")
    with pytest.raises(PathattnError) as error:
        read_samples(sheet, "classification")
    message = str(error.value)
    assert message.startswith(f"--samples {sheet} line 4: slide b has no label") and "fill in its class" in message
    assert "\n" not in message


def test_match_features_and_missing(tmp_path):
    samples, _ = read_samples(_sheet(tmp_path), "classification")
    folder = _bags(tmp_path, {"a": 3, "b": 5}, pt={"b"})
    with pytest.raises(PathattnError, match="1 slides have no feature file .*: c; extract them or pass --skip-missing"):
        match_features(samples, folder)
    kept, paths = match_features(samples, folder, skip_missing=True)
    assert [s.slide_id for s in kept] == ["a", "b"] and paths["b"].suffix == ".pt"
    with pytest.raises(PathattnError, match="not found"):
        match_features(samples, tmp_path / "nowhere")


def test_feature_checks(tmp_path):
    folder = _bags(tmp_path, {"a": 3})
    write_features(folder / "h5_files" / "nan.h5", np.full((2, 4), np.nan, np.float32), np.zeros((2, 2)), {}, {})
    with pytest.raises(PathattnError, match="NaN or Inf features in 2 patches"):
        read_checked_bag(folder / "h5_files" / "nan.h5")
    with pytest.raises(PathattnError, match="4-d features but the other slides take 8-d"):
        read_checked_bag(folder / "h5_files" / "a.h5", expected_dim=8)
    _bags(tmp_path / "other", {"z": 2}, dim=6)
    paths = {"a": folder / "h5_files" / "a.h5", "z": tmp_path / "other" / "feats" / "h5_files" / "z.h5"}
    with pytest.raises(PathattnError, match="feature sizes differ between slides: 4-d \\(a\\), 6-d \\(z\\)"):
        feature_dim(paths)


def test_padded_batches_and_subsampling(tmp_path):
    samples, _ = read_samples(_sheet(tmp_path), "classification")
    folder = _bags(tmp_path, {"a": 3, "b": 5, "c": 9}, pt={"c"})
    kept, paths = match_features(samples, folder)
    dataset = BagDataset(kept, paths, feature_dim(paths))
    batch = collate_bags([dataset[0], dataset[1], dataset[2]])
    assert batch["features"].shape == (3, 9, 4) and batch["mask"].sum(1).tolist() == [3, 5, 9]
    assert batch["features"][0, 3:].abs().sum() == 0 and batch["label"].tolist() == [1, 1, 0]
    torch.testing.assert_close(batch["features"][2, :9], torch.from_numpy(read_checked_bag(paths["c"]).features))
    capped = BagDataset(kept, paths, 4, max_instances=4)
    torch.manual_seed(0)
    drawn = capped[2]["features"]
    assert drawn.shape == (4, 4)
    full = read_checked_bag(paths["c"]).features
    assert all(any(np.allclose(row, f) for f in full) for row in drawn.numpy())  # a subset of the bag's rows


def test_empty_bags_are_those_without_instances(tmp_path):
    folder = _bags(tmp_path, {"a": 3, "b": 0, "c": 0, "d": 2}, pt={"c", "d"})
    _, paths = match_features([Sample(s, s) for s in "abcd"], folder)
    assert empty_bags(paths) == ["b", "c"]


def test_feature_stats_pool_every_instance_of_every_bag(tmp_path):
    feats = _bags(tmp_path, {"a": 5, "b": 0, "c": 9})
    samples, _ = read_samples(_sheet(tmp_path), "classification")
    samples, paths = match_features(samples, feats)
    mean, std = feature_stats(BagDataset(samples, paths, 4))
    pooled = np.concatenate([read_checked_bag(paths[s]).features for s in ("a", "b", "c")])
    np.testing.assert_allclose(mean, pooled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, pooled.std(0), rtol=1e-5)


@pytest.mark.parametrize(("slide_id", "patient_id", "kind"), [("../x", "p1", "slide"), ("s1", "/etc/p", "patient")])
def test_ids_follow_the_id_rule(tmp_path, slide_id, patient_id, kind):
    from pathattn.train.mil.data import read_samples

    sheet = tmp_path / "samples.csv"
    sheet.write_text(f"slide_id,patient_id,label\nok,p0,1\n{slide_id},{patient_id},0\n")
    with pytest.raises(PathattnError, match=f"--samples {sheet} line 3: {kind} id .* is not allowed"):
        read_samples(sheet, "classification")


def test_a_volume_sheet_names_its_bags_by_volume_id(tmp_path):
    sheet = tmp_path / "samples.csv"
    sheet.write_text(
        "volume_id,patient_id,centre,label,ct_path\nP001_s1,P001,A,1,a.nii.gz\nP002_s1,P002,B,0,b.nii.gz\n"
    )
    samples, classes = read_samples(sheet, "classification")
    assert [s.slide_id for s in samples] == ["P001_s1", "P002_s1"] and classes == ["0", "1"]
