"""Nonsensical parameters are refused with the option's name."""

import pytest

from pathattn.errors import PathattnError
from pathattn.tile.params import GridParams, TissueParams


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"patch_size": -256}, "--patch-size"),
        ({"patch_size": 0}, "--patch-size"),
        ({"mpp": 0}, "--mpp"),
        ({"overlap": -1}, "--overlap"),
        ({"overlap": 256}, "--overlap"),
        ({"overlap": 300}, "--overlap"),
        ({"min_tissue": 1.5}, "--min-tissue"),
    ],
)
def test_grid_params(kwargs, option):
    with pytest.raises(PathattnError, match=option):
        GridParams(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [({"median_blur": 4}, "--median-blur"), ({"threshold": 300}, "--tissue-threshold"), ({"seg_mpp": -1}, "--seg-mpp"),
     ({"min_area_mm2": -1}, "--min-tissue-area"), ({"method": "magic"}, "--tissue-method")],
)  # fmt: skip
def test_tissue_params(kwargs, option):
    with pytest.raises(PathattnError, match=option):
        TissueParams(**kwargs)
