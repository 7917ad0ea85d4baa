"""The QC image of a tiled volume: orthogonal planes and a montage of kept slices, with outlines.

Top row: the sagittal, coronal and axial planes through the centre of the foreground. Bottom row: up to
``MONTAGE`` planes along the slice axis, evenly spaced over the kept rows. The first channel is shown (after
its preset); the foreground is outlined in green, label voxels in red.
"""

from __future__ import annotations

import numpy as np

from pathattn.scoremaps.render import add_caption
from pathattn.volumes.display import FOREGROUND_COLOR, LESION_COLOR, hstack_padded, render_plane
from pathattn.volumes.prepare import PreparedVolume

MONTAGE = 8
ROW_HEIGHT = 256


def montage_indices(kept: np.ndarray, count: int = MONTAGE) -> list[int]:
    """Up to ``count`` evenly spaced entries of the sorted unique plane indices ``kept``."""
    unique = np.unique(kept)
    if len(unique) <= count:
        return unique.tolist()
    return unique[np.linspace(0, len(unique) - 1, count).round().astype(int)].tolist()


def body_centre(foreground: np.ndarray) -> list[int]:
    """The middle of the foreground's extent along each axis (of the volume when there is no foreground)."""
    if not foreground.any():
        return [n // 2 for n in foreground.shape]
    centre = []
    for axis in range(3):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(3) if a != axis)))
        centre.append(int(present[0] + present[-1]) // 2)
    return centre


def render_volume_qc(volume: PreparedVolume, coords: np.ndarray, axis: int, caption: str) -> np.ndarray:
    """Draw the QC image.

    Args:
        volume: the prepared volume (its foreground and label are outlined).
        coords: (N, 3) the kept rows of the grid.
        axis: the slice axis.
        caption: one line of text above the image.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    values = volume.image[0]
    masks = [(volume.foreground, FOREGROUND_COLOR)] if volume.foreground is not None else []
    if volume.label is not None:
        masks.append((volume.label > 0, LESION_COLOR))
    centre = body_centre(volume.foreground if volume.foreground is not None else np.ones(values.shape, bool))
    planes = [render_plane(values, volume.spacing, a, centre[a], ROW_HEIGHT, masks) for a in range(3)]
    kept = coords[:, axis] if len(coords) else np.asarray([centre[axis]])
    montage = [render_plane(values, volume.spacing, axis, i, ROW_HEIGHT // 2, masks) for i in montage_indices(kept)]
    top, bottom = hstack_padded(planes), hstack_padded(montage)
    width = max(top.shape[1], bottom.shape[1])
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in (top, bottom)]
    return add_caption(np.concatenate(rows, axis=0), caption)
