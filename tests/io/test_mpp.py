"""Level-0 resolution: the documented order of sources (the user's value first: it overrides the metadata)."""

import pytest

from pathattn.io.slide import Mpp, resolve_mpp


@pytest.mark.parametrize(
    ("properties", "user", "expected"),
    [
        ({"openslide.mpp-x": "0.2527", "openslide.mpp-y": "0.2529", "openslide.objective-power": "20"}, 9.0,
         Mpp(9.0, 9.0, "user")),
        ({"openslide.mpp-x": "0.2527", "openslide.mpp-y": "0.2529", "openslide.objective-power": "20"}, None,
         Mpp(0.2527, 0.2529, "openslide")),
        ({"tiff.ResolutionUnit": "centimeter", "tiff.XResolution": "40000", "tiff.YResolution": "20000"}, None,
         Mpp(0.25, 0.5, "tiff-resolution")),
        ({"tiff.ResolutionUnit": "inch", "tiff.XResolution": "50800", "openslide.objective-power": "40"}, None,
         Mpp(0.5, 0.5, "tiff-resolution")),
        ({"tiff.ResolutionUnit": "none", "tiff.XResolution": "1", "openslide.objective-power": "40"}, None,
         Mpp(0.25, 0.25, "objective-power")),
        ({"openslide.objective-power": "not a number"}, 0.3, Mpp(0.3, 0.3, "user")),
        ({"openslide.mpp-x": "0", "openslide.mpp-y": "nan"}, 0.5, Mpp(0.5, 0.5, "user")),
        ({}, None, None),
    ],
)  # fmt: skip
def test_resolution_order(properties, user, expected):
    assert resolve_mpp(properties, user) == expected


def test_one_axis_is_enough():
    assert resolve_mpp({"openslide.mpp-x": "0.5"}) == Mpp(0.5, 0.5, "openslide")
