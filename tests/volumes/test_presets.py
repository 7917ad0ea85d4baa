import numpy as np
import pytest

from pathattn.errors import PathattnError
from pathattn.volumes.presets import PRESETS, apply_preset, resolve_presets


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("ct_soft_tissue", -160, 240), ("ct_lung", -1350, 150), ("ct_bone", -500, 1300), ("ct_brain", 0, 80),
     ("ct_liver", -45, 105), ("pet_suv", 0, 20)],
)  # fmt: skip
def test_windows_have_the_documented_ranges(name, low, high):
    hu = np.array([low - 10, low, (low + high) / 2, high, high + 10], np.float32)
    assert apply_preset(hu, PRESETS[name]).tolist() == pytest.approx([0, 0, 0.5, 1, 1])


def test_percentile_and_zscore_use_the_foreground_statistics():
    rng = np.random.default_rng(0)
    values = rng.normal(100, 10, (20, 20, 20)).astype(np.float32)
    values[:5] = 0  # background, left out of the statistics
    foreground = values > 50
    mapped = apply_preset(values, PRESETS["mr_percentile"], foreground)
    inside = values[foreground]
    low, high = np.percentile(inside, [0.5, 99.5])
    expected = np.clip((values - low) / (high - low), 0, 1)
    np.testing.assert_allclose(mapped, expected, atol=1e-5)
    z = apply_preset(values, PRESETS["mr_zscore"], foreground)
    mean, std = inside.mean(), inside.std()
    np.testing.assert_allclose(z, np.clip(((values - mean) / std + 3) / 6, 0, 1), atol=1e-5)
    assert apply_preset(values, PRESETS["none"]) is not None and apply_preset(values, PRESETS["none"]).max() > 100


def test_presets_per_channel_defaults_and_errors():
    assert [p.name for p in resolve_presets(None, ["PET", "CT"])] == ["pet_suv", "ct_soft_tissue"]
    assert [p.name for p in resolve_presets(None, ["T1"])] == ["mr_percentile"]
    assert [p.name for p in resolve_presets(["CT=ct_lung"], ["PET", "CT"])] == ["pet_suv", "ct_lung"]
    assert [p.name for p in resolve_presets(["none"], ["PET", "CT"])] == ["none", "none"]
    assert [p.name for p in resolve_presets(["pet_suv", "ct_bone"], ["PET", "CT"])] == ["pet_suv", "ct_bone"]
    with pytest.raises(PathattnError, match="--preset 'ct_sharp' is not a preset; choose from ct_soft_tissue"):
        resolve_presets(["ct_sharp"], ["CT"])
    with pytest.raises(PathattnError, match="gives 3 presets for 2 channels"):
        resolve_presets(["none", "none", "none"], ["PET", "CT"])
    with pytest.raises(PathattnError, match="this volume has no MR channel"):
        resolve_presets(["MR=mr_zscore"], ["PET", "CT"])
