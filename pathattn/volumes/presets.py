"""Intensity presets: how each modality's values become the [0, 1] images the encoders see.

CT windows are the standard radiology display windows (level L, width W; values below L - W/2 map to 0,
above L + W/2 to 1), as listed by Radiopaedia's "Windowing (CT)":

==============  ======  ======  ================
preset          level   width   range (HU)
==============  ======  ======  ================
ct_soft_tissue    40     400    -160 .. 240
ct_lung         -600    1500   -1350 .. 150
ct_bone          400    1800    -500 .. 1300
ct_brain          40      80       0 .. 80
ct_liver          30     150     -45 .. 105
==============  ======  ======  ================

``pet_suv`` clips SUV to [0, 20] and divides by 20 (lesions of lymphoma reach SUVmax 10-30; physiological
brain and bladder uptake saturates). ``mr_percentile`` maps the 0.5th-99.5th percentiles of the foreground
to [0, 1] (clipping outside); ``mr_zscore`` standardises by the foreground's mean and standard deviation,
clips to ±3 and maps [-3, 3] to [0, 1]. ``none`` keeps the values as they are. Without a preset, a channel
gets its modality's default (:data:`DEFAULT_PRESET`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pathattn.errors import PathattnError

PresetKind = Literal["window", "zscore", "percentile", "none"]


@dataclass(frozen=True)
class Preset:
    """One intensity mapping.

    Args:
        name: the preset's name, as the user types it.
        kind: ``window`` (fixed range), ``percentile`` (foreground percentiles), ``zscore`` or ``none``.
        low: lower bound of a window, or the lower percentile.
        high: upper bound of a window, or the upper percentile.
    """

    name: str
    kind: PresetKind
    low: float = 0.0
    high: float = 1.0

    @property
    def uses_foreground(self) -> bool:
        """Whether the mapping's statistics come from the foreground (``percentile``, ``zscore``)."""
        return self.kind in ("percentile", "zscore")


def _window(name: str, level: float, width: float) -> Preset:
    return Preset(name, "window", level - width / 2, level + width / 2)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _window("ct_soft_tissue", 40, 400),
        _window("ct_lung", -600, 1500),
        _window("ct_bone", 400, 1800),
        _window("ct_brain", 40, 80),
        _window("ct_liver", 30, 150),
        Preset("pet_suv", "window", 0.0, 20.0),
        Preset("mr_percentile", "percentile", 0.5, 99.5),
        Preset("mr_zscore", "zscore", -3.0, 3.0),
        Preset("none", "none"),
    )
}

DEFAULT_PRESET = {"CT": "ct_soft_tissue", "PET": "pet_suv"}
"""Default preset per modality; any other modality (MR sequences) gets ``mr_percentile``."""


def default_preset(modality: str) -> str:
    """The preset a channel of ``modality`` gets when the user names none."""
    return DEFAULT_PRESET.get(modality.upper(), "mr_percentile")


def resolve_presets(spec: Sequence[str] | None, modalities: Sequence[str]) -> tuple[Preset, ...]:
    """One preset per channel, from the user's list (``--preset``) or the modalities' defaults.

    Args:
        spec: preset names, one per channel in the order of ``modalities``, or one for every channel, or
            ``MODALITY=name`` items (``CT=ct_lung``) for some channels; ``None`` or empty for the defaults.
        modalities: the channels' modalities.

    Raises:
        PathattnError: an unknown preset or modality, or a list of the wrong length.
    """
    names = [default_preset(m) for m in modalities]
    items = [s.strip() for s in spec or () if s.strip()]
    if any("=" in s for s in items):
        for item in items:
            modality, _, name = item.partition("=")
            if modality.upper() not in [m.upper() for m in modalities]:
                raise PathattnError(
                    f"--preset {item}: this volume has no {modality} channel (channels: {', '.join(modalities)})"
                )
            names[[m.upper() for m in modalities].index(modality.upper())] = name
    elif len(items) == 1:
        names = items * len(modalities)
    elif items:
        if len(items) != len(modalities):
            raise PathattnError(
                f"--preset gives {len(items)} presets for {len(modalities)} channels ({', '.join(modalities)}); "
                "give one per channel, one for all, or MODALITY=preset items"
            )
        names = items
    return tuple(_lookup(n) for n in names)


def _lookup(name: str) -> Preset:
    if name not in PRESETS:
        raise PathattnError(f"--preset {name!r} is not a preset; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def apply_preset(
    values: np.ndarray, preset: Preset, foreground: np.ndarray | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Map one channel's values with a preset.

    Args:
        values: (I, J, K) the channel in its units (HU, SUV, arbitrary MR units).
        preset: the mapping.
        foreground: (I, J, K) bool, the voxels the statistics of ``percentile`` and ``zscore`` come from
            (all voxels when None or empty).
        out: a float32 (I, J, K) array to write the result into (``values`` itself maps in place).

    Returns:
        (I, J, K) float32, in [0, 1] for every preset but ``none``.
    """
    values = np.asarray(values, np.float32)
    if preset.kind == "none" and out is not None:
        out[...] = values
        return out
    if preset.kind == "none":
        return values
    if preset.kind == "window":
        low, high = preset.low, preset.high
    else:
        sample = values[foreground] if foreground is not None and foreground.any() else values.ravel()
        if preset.kind == "percentile":
            low, high = (float(v) for v in np.percentile(sample, [preset.low, preset.high]))
        else:
            mean, std = float(sample.mean()), float(sample.std()) or 1.0
            low, high = mean + preset.low * std, mean + preset.high * std
    scale = 1.0 / (high - low) if high > low else 0.0
    mapped = np.subtract(values, np.float32(low), out=out, dtype=np.float32)
    mapped *= np.float32(scale)
    return np.clip(mapped, 0.0, 1.0, out=mapped)
