"""Training bags: the sample sheet, feature files, validation and padded batches."""

import numpy as np
import pytest
import torch

from pathattn.errors import PathattnError
from pathattn.io.bags import read_checked_bag, write_clam_pt, write_features
from pathattn.train.mil.data import (
    BagDataset,
    collate_bags,
    feature_dim,
    feature_stats,
    match_features,
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


def test_feature_stats_pool_every_instance_of_every_bag(tmp_path):
    feats = _bags(tmp_path, {"a": 5, "b": 0, "c": 9})
    samples, _ = read_samples(_sheet(tmp_path), "classification")
    samples, paths = match_features(samples, feats)
    mean, std = feature_stats(BagDataset(samples, paths, 4))
    pooled = np.concatenate([read_checked_bag(paths[s]).features for s in ("a", "b", "c")])
    np.testing.assert_allclose(mean, pooled.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, pooled.std(0), rtol=1e-5)
