"""Body / foreground detection of a volume: the volume's counterpart of a slide's tissue mask.

* **CT**: voxels above ``ct_threshold`` HU (-500 by default: air and lung parenchyma below it, fat, soft
  tissue and bone above), the largest 3-D connected component (the body; the table and noise go), then
  holes filled slice by slice along the slice axis (lungs and bowel gas become foreground).
* **Any other modality** (PET, MR): Otsu's threshold over the volume, then the same largest component and
  hole filling.

Multi-modal volumes take the foreground of their reference channel: the CT when present, else the first.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

CT_THRESHOLD_HU = -500.0


def threshold_mask(values: np.ndarray, modality: str, ct_threshold: float = CT_THRESHOLD_HU) -> np.ndarray:
    """Voxels brighter than the modality's threshold.

    Args:
        values: (I, J, K) one channel in its units (HU for CT).
        modality: the channel's modality.
        ct_threshold: HU threshold for CT.

    Returns:
        (I, J, K) bool.
    """
    if modality.upper() == "CT":
        return values > ct_threshold
    if float(values.max()) <= float(values.min()):
        return np.zeros(values.shape, bool)
    return values > threshold_otsu(values)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3-D connected component (face connectivity) of a mask; empty stays empty."""
    labels, count = ndimage.label(mask)
    if count <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())


def fill_holes_by_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill the holes of every 2-D slice of ``mask`` taken along ``axis`` (0, 1 or 2), in one labelling pass.

    The background is labelled with in-plane connectivity only (components never cross slices); a component
    that does not reach its slice's border is a hole.
    """
    structure = np.zeros((3, 3, 3), bool)
    index = [slice(None)] * 3
    index[axis] = 1
    structure[tuple(index)] = ndimage.generate_binary_structure(2, 1)
    labels, _ = ndimage.label(~mask, structure)
    outside = np.zeros(labels.max() + 1, bool)
    for edge_axis in (a for a in range(3) if a != axis):
        for end in (0, -1):
            outside[np.take(labels, end, axis=edge_axis)] = True
    outside[0] = False  # label 0 is the mask itself: kept
    return ~outside[labels]


def foreground_mask(
    values: np.ndarray, modality: str, axis: int = 2, ct_threshold: float = CT_THRESHOLD_HU
) -> np.ndarray:
    """The body of a volume.

    Args:
        values: (I, J, K) the reference channel in its units.
        modality: its modality (``CT`` thresholds in HU, others by Otsu).
        axis: the slice axis along which holes are filled (2: axial on a RAS grid).
        ct_threshold: HU threshold for CT.

    Returns:
        (I, J, K) bool, all False when nothing stands out.
    """
    mask = largest_component(threshold_mask(values, modality, ct_threshold))
    return fill_holes_by_slice(mask, axis) if mask.any() else mask
