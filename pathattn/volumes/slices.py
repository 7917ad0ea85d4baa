"""Slices and 3-D patches cut from a prepared volume, as the images a 2-D network sees (stage-neutral).

``extract`` embeds them and the image classifiers of ``train`` (``pathattn classify``) learn from them, so both
see the same pixels. **The channel rule**: a slice has n = channels x (2 context + 1) planes, modality by
modality and, within one, from the lowest index to the highest (k - context ... k + context; beyond the first
or last slice the edge slice is repeated). A network takes 3 channels: n = 1 is repeated (a, a, a); n = 2
(PET/CT, or two sequences) becomes (a, b, a); n = 3 is taken as RGB in that order. Planes are in the
radiological display orientation (:func:`pathattn.volumes.display.display_plane`), resized to the network's
input (area when shrinking on both sides, else bilinear; the whole plane, aspect not kept), clipped to [0, 1]
and scaled to uint8. A label plane is cut the same way and resized with nearest neighbours
(:func:`slice_mask`), so a lesion mask lies on the pixels of its slice image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from pathattn.volumes.display import display_plane

RGB_FROM: dict[int, tuple[int, int, int]] = {1: (0, 0, 0), 2: (0, 1, 0), 3: (0, 1, 2)}
"""The channel rule: which of the n planes of a slice become R, G and B."""


def slice_planes(image: np.ndarray, axis: int, index: int, context: int) -> np.ndarray:
    """The n planes of a 2.5-D slice in display orientation (the channel rule, module docstring).

    Args:
        image: (C, I, J, K) prepared volume.
        axis: the slice axis (0, 1, 2).
        index: the slice's index along it.
        context: neighbours on each side (the edge slice is repeated beyond the volume).

    Returns:
        (C * (2 context + 1), H, W) float32, modality by modality, from the lowest index to the highest.
    """
    depth = image.shape[1 + axis]
    picks = [min(max(index + offset, 0), depth - 1) for offset in range(-context, context + 1)]
    return np.stack([display_plane(channel, axis, pick) for channel in image for pick in picks])


def slice_image(planes: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The planes of a slice as the encoder's uint8 RGB input.

    Args:
        planes: (n, H, W) with n in 1, 2, 3 (:data:`RGB_FROM`).
        size: (height, width) of the encoder's input.

    Returns:
        (3, height, width) uint8: resized (area when shrinking on both sides, else bilinear), clipped to
        [0, 1], times 255 and rounded.
    """
    n, rows, cols = planes.shape
    height, width = (int(v) for v in size)
    image = np.ascontiguousarray(planes.transpose(1, 2, 0), np.float32)
    if (rows, cols) != (height, width):
        interp = cv2.INTER_AREA if rows >= height and cols >= width else cv2.INTER_LINEAR
        image = cv2.resize(image, (width, height), interpolation=interp).reshape(height, width, n)
    uint8 = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(uint8.transpose(2, 0, 1)[list(RGB_FROM[n])])


def patch_block(image: np.ndarray, corner: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """The (C, Pi, Pj, Pk) float32 block of a 3-D patch whose lowest corner is voxel ``corner``."""
    (i, j, k), (a, b, c) = (int(v) for v in corner), (int(v) for v in size)
    return np.ascontiguousarray(image[:, i : i + a, j : j + b, k : k + c], np.float32)


def slice_mask(label: np.ndarray, axis: int, index: int, size: Sequence[int]) -> np.ndarray:
    """The lesion mask of a slice on the pixels of :func:`slice_image`.

    Args:
        label: (I, J, K) label volume on the prepared grid (0: background).
        axis: the slice axis.
        index: the slice's index along it.
        size: (height, width) of the slice image.

    Returns:
        (height, width) bool: label > 0, resized with nearest neighbours.
    """
    plane = (display_plane(label, axis, index) > 0).astype(np.uint8)
    height, width = (int(v) for v in size)
    if plane.shape != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_NEAREST)
    return plane > 0
