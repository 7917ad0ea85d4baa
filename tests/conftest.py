"""Shared fixtures: slides written on the fly with the synthetic-slide writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathattn.synth.wsi import write_slide


@pytest.fixture
def make_slide(tmp_path: Path):
    """Write ``image`` as a slide ``{name}.tif`` (``.svs`` for the Aperio layout) and return its path.

    ``level_factor`` is the downsample between pyramid levels (4 gives levels at 1, 4, 16, ...).
    """
    folder = tmp_path / "slides"
    folder.mkdir(exist_ok=True)

    def make(name: str, image: np.ndarray, mpp: float, layout: str = "pyramid", level_factor: int = 4,
             mpp_metadata: bool = True) -> Path:  # fmt: skip
        return write_slide(folder / f"{name}.tif", image, mpp, layout=layout, level_factor=level_factor,
                           mpp_metadata=mpp_metadata)  # fmt: skip

    return make
