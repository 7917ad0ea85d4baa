"""The id rule and output paths that stay inside --out."""

import pytest

from pathattn.errors import PathattnError
from pathattn.io.ids import check_id, is_valid_id, output_path


@pytest.mark.parametrize("good", ["slide_001", "TCGA-A1-A0SB-01Z-00-DX1.8F9", "a", "7", "x+y", "s.v2"])
def test_valid_ids(good):
    assert is_valid_id(good) and check_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "/data/victim", "../../../../ESCAPED", "a/b", "a\\b", "..", "x..y", ".hidden", "-flag", "a b",
            "tumör", "x" * 201, "C:x"],
)  # fmt: skip
def test_invalid_ids_are_refused_with_the_fix(bad):
    assert not is_valid_id(bad)
    with pytest.raises(PathattnError, match=r"--samples s.csv line 3: slide id .* is not allowed.*slide_id"):
        check_id(bad, "slide", "--samples s.csv line 3")


def test_output_paths_stay_inside_out(tmp_path):
    assert output_path(tmp_path / "out", "coords", "s1.h5") == tmp_path / "out" / "coords" / "s1.h5"
    for parts in (("coords", "../../x.h5"), ("/etc/passwd",), ("..",), (".",)):
        with pytest.raises(PathattnError, match="outside --out"):
            output_path(tmp_path / "out", *parts)
