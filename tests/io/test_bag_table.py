"""Tables of instances (the classic MIL benchmark files) as bags: layout, the packaged tables, one-line errors."""

import csv

import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.io.bag_table import packaged_table, read_bag_table, write_bag_folder
from pathattn.io.bags import read_bag

ROWS = [
    "1,7,0.5,1.5,2.5",
    "1,7,1.0,2.0,3.0",
    "0,3,-1,0,1e2",
    "1,7,4,5,6",  # a bag's rows need not be adjacent
]


def table(tmp_path, lines, name="bags.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_are_grouped_by_bag_in_first_seen_order(tmp_path):
    bags = read_bag_table(table(tmp_path, ROWS))
    assert bags.bag_ids == ["7", "3"] and bags.labels == ["1", "0"]
    np.testing.assert_array_equal(bags.features[0], [[0.5, 1.5, 2.5], [1, 2, 3], [4, 5, 6]])
    assert bags.features[1].dtype == np.float32 and bags.features[1].tolist() == [[-1, 0, 100]]


def test_chosen_columns_and_a_header(tmp_path):
    lines = ["bag,f1,label,f2", "a,1,pos,2", "b,3,neg,4", "a,5,pos,6"]
    bags = read_bag_table(table(tmp_path, lines), label_column=2, bag_column=0, header=True)
    assert bags.bag_ids == ["a", "b"] and bags.labels == ["pos", "neg"]
    assert bags.features[0].tolist() == [[1, 2], [5, 6]]


def test_the_folder_is_what_train_reads(tmp_path):
    sheet = write_bag_folder(read_bag_table(table(tmp_path, ROWS)), tmp_path / "out")
    with open(sheet) as f:
        rows = list(csv.DictReader(f))
    assert rows == [
        {"slide_id": "7", "patient_id": "7", "label": "1", "n_instances": "3"},
        {"slide_id": "3", "patient_id": "3", "label": "0", "n_instances": "1"},
    ]
    bag = read_bag(tmp_path / "out" / "h5_files" / "7.h5")
    assert bag.coords is None and bag.features.shape == (3, 3) and bag.attrs["encoder"] == "table"
    with pytest.raises(PathattnError, match="already holds"):
        write_bag_folder(read_bag_table(table(tmp_path, ROWS[:1])), tmp_path / "out")
    write_bag_folder(read_bag_table(table(tmp_path, ROWS[:1])), tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out" / "h5_files").iterdir()) == ["7.h5"]  # replaced whole


@pytest.mark.parametrize(
    ("lines", "kwargs", "message"),
    [
        (["1,7,0.5", "1,7"], {}, r"^--csv \S+ line 2 has 2 columns, the first row 3; every instance needs"),
        (["1,7"], {}, r"^--csv \S+ has 2 columns; it needs a label, a bag id and at least one feature$"),
        (["1,7,0.5", "1,7,abc"], {}, r"^--csv \S+ line 2 column 3: feature 'abc' is not a finite number$"),
        (["1,7,nan"], {}, r"line 1 column 3: feature 'nan' is not a finite number; pass --header if the first"),
        (["label,bag,x", "1,7,2"], {}, r"line 1 column 3: feature 'x' is not a finite number; pass --header"),
        (["1,7,0.5", "0,7,1"], {}, r"^--csv \S+: bag 7 is labelled 1 on line 1 and 0 on line 2; a bag has one label"),
        ([",7,0.5"], {}, r"^--csv \S+ line 1: bag 7 has no label; fill in the label column$"),
        (["1,../x,0.5"], {}, r"^--csv \S+ line 1: bag id '../x' is not allowed"),
        (["1,7,0.5"], {"bag_column": 0}, r"^--label-column 0 and --bag-column 0 must be two different columns"),
        (["1,7,0.5"], {"label_column": 3}, r"must be two different columns of the 3 in --csv"),
        (["", ""], {}, r"^--csv \S+ holds no instance rows"),
        (["x"], {"header": True}, r"^--csv \S+ holds no instance rows"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, lines, kwargs, message):
    with pytest.raises(PathattnError, match=message):
        read_bag_table(table(tmp_path, lines), **kwargs)


def test_a_missing_file(tmp_path):
    with pytest.raises(PathattnError, match=r"^--csv file not found: "):
        read_bag_table(tmp_path / "none.csv")


def test_packaged_benchmark_tables(monkeypatch):
    musk1 = read_bag_table(packaged_table("musk1"))
    assert len(musk1.bag_ids) == 92 and sum(map(len, musk1.features)) == 476
    assert musk1.features[0].shape[1] == 166 and musk1.labels.count("1") == 47
    with pytest.raises(PathattnError, match=r"^--dataset fox is not packaged; choose one of musk1, musk2, elephant"):
        packaged_table("fox")
    monkeypatch.setattr("pathattn.io.bag_table.PACKAGED", {"musk1": ("no-such-distribution", "x.csv")})
    monkeypatch.setattr("pathattn.io.bag_table.PACKAGE_PIN", {"no-such-distribution": "no-such-distribution==1"})
    with pytest.raises(PathattnError, match=r"needs the package no-such-distribution==1: pip install"):
        packaged_table("musk1")
