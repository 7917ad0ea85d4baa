"""Grid planning and exact coverage fractions."""

import numpy as np
import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from pathattn.tile.grid import GridSpec, coverage, grid_axes, grid_corners


def _spec(size0, stride0):
    return GridSpec(256, 0, size0, size0, stride0, 0.5, 0.5)


def test_axes_keep_patches_inside_the_slide():
    xs, ys = grid_axes(1000, 700, _spec(256, 256))
    assert xs.tolist() == [0, 256, 512] and ys.tolist() == [0, 256]
    xs, _ = grid_axes(1000, 700, _spec(256, 192))  # overlap of 64
    assert xs.tolist() == [0, 192, 384, 576] and xs[-1] + 256 <= 1000
    xs, ys = grid_axes(100, 100, _spec(256, 256))
    assert len(xs) == 0 and len(ys) == 0


def test_coverage_exact_on_rectangles_and_holes():
    corners = grid_corners(np.arange(0, 1000, 100), np.arange(0, 500, 100))
    frac = coverage(box(100, 100, 350, 300), corners, 100).reshape(5, 10)
    expected = np.zeros((5, 10))
    expected[1:3, 1:3] = 1
    expected[1:3, 3] = 0.5
    np.testing.assert_allclose(frac, expected, atol=1e-6)
    ring = Polygon([(0, 0), (1000, 0), (1000, 500), (0, 500)], [[(200, 100), (400, 100), (400, 300), (200, 300)]])
    frac = coverage(ring, corners, 100).reshape(5, 10)
    assert frac[1:3, 2:4].max() == 0 and frac.sum() == pytest.approx(50 - 4)


def test_coverage_matches_brute_force_on_irregular_shapes():
    rng = np.random.default_rng(0)
    shape = MultiPolygon([Polygon(rng.uniform(0, 800, (12, 2))).convex_hull for _ in range(1)]).buffer(15)
    corners = grid_corners(np.arange(0, 900, 64), np.arange(0, 900, 64))
    frac = coverage(shape, corners, 96)
    brute = [shape.intersection(box(x, y, x + 96, y + 96)).area / 96**2 for x, y in corners]
    np.testing.assert_allclose(frac, brute, atol=1e-5)


def test_empty_inputs():
    assert coverage(MultiPolygon(), grid_corners(np.arange(3), np.arange(2)), 10).tolist() == [0] * 6
    assert coverage(box(0, 0, 5, 5), np.zeros((0, 2), np.int64), 10).shape == (0,)
