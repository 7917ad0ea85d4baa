"""Per-slide normalisation of patch scores."""

import numpy as np
import pytest

from pathattn.scoremaps.normalise import normalise


def test_percentile_by_hand():
    scores = np.array([3.0, 1.0, 2.0, 2.0, -np.inf])
    # ranks among the 4 finite scores: 4, 1, 2.5, 2.5 (ties averaged), divided by 4
    assert np.allclose(normalise(scores), [1.0, 0.25, 0.625, 0.625, np.nan], equal_nan=True)
    two_heads = np.stack([scores, -scores], axis=1)
    assert np.allclose(normalise(two_heads)[:, 1], [0.25, 1.0, 0.625, 0.625, np.nan], equal_nan=True)
    assert np.allclose(normalise(scores, "minmax"), [1.0, 0.0, 0.5, 0.5, np.nan], equal_nan=True)
    softmax = normalise(scores, "softmax")
    assert softmax[0] == 1.0 and np.allclose(softmax[1] / softmax[2], np.exp(-1.0))
    assert np.allclose(normalise(np.array([-1.0, 0.3, 2.0]), "raw"), [0.0, 0.3, 1.0])
    assert np.isnan(normalise(np.full(3, -np.inf))).all()
    with pytest.raises(ValueError, match="percentile"):
        normalise(scores, "rank")
