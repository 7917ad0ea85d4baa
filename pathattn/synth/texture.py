"""Noise, texture and geometry primitives of the synthetic tissue (:mod:`pathattn.synth.tissue`).

Smooth multi-octave noise fields, a tiled fine grain, stroma fibres drawn as polylines, jittered point grids
and polygon masks, all with numpy and OpenCV. Points are ``(x, y)`` in level-0 pixels; OpenCV draws with
:data:`SHIFT` sub-pixel bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), level-0 pixels
SHIFT = 2  # sub-pixel bits of OpenCV drawing
GRAIN = (1009, 997)  # period of the tiled fine texture, odd so that it never lines up with tiles


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float, octaves: int = 3) -> np.ndarray:
    """Band-limited noise: random coarse grids, cubic-upsampled and summed over octaves.

    Args:
        rng: random generator.
        shape: ``(height, width)`` of the result.
        cell_px: size of the coarsest features, pixels; each octave halves it (and the amplitude, 0.6x).
        octaves: number of octaves.

    Returns:
        Noise ``(height, width)``, float32, zero mean and unit standard deviation.
    """
    height, width = shape
    fine = max(cell_px / 2 ** (octaves - 1), 1.0)
    gh, gw = int(np.ceil(height / fine)) + 3, int(np.ceil(width / fine)) + 3
    acc = np.zeros((gh, gw), np.float32)
    for octave in range(octaves):
        cell = fine * 2 ** (octaves - 1 - octave)
        grid = rng.standard_normal((int(np.ceil(height / cell)) + 3, int(np.ceil(width / cell)) + 3))
        acc += cv2.resize(grid.astype(np.float32), (gw, gh), interpolation=cv2.INTER_CUBIC) * 0.6**octave
    acc = (acc - acc.mean()) / max(float(acc.std()), 1e-6)
    return cv2.resize(acc, (width, height), interpolation=cv2.INTER_CUBIC if fine > 1 else cv2.INTER_LINEAR)


def multiply_grain(rng: np.random.Generator, img: np.ndarray, sigma_px: float, strength: float) -> None:
    """In place ``img *= 1 + strength * grain``: a fine random texture, tiled with period ``GRAIN``.

    Args:
        rng: random generator.
        img: map ``(height, width)``, float32.
        sigma_px: grain size (Gaussian sigma), pixels.
        strength: amplitude of the modulation.
    """
    block = cv2.GaussianBlur(rng.standard_normal(GRAIN).astype(np.float32), (0, 0), sigma_px)
    factor = 1.0 + strength / max(float(block.std()), 1e-6) * block
    for y in range(0, img.shape[0], GRAIN[0]):
        for x in range(0, img.shape[1], GRAIN[1]):
            view = img[y : y + GRAIN[0], x : x + GRAIN[1]]
            view *= factor[: view.shape[0], : view.shape[1]]


def lookup(grid: np.ndarray, scale: float, points: np.ndarray) -> np.ndarray:
    """Values ``(n,)`` of a coarse ``grid`` ``(gh, gw)`` (``scale`` px per cell) at ``points`` ``(n, 2)``."""
    ix = np.clip((points[:, 0] / scale).astype(int), 0, grid.shape[1] - 1)
    iy = np.clip((points[:, 1] / scale).astype(int), 0, grid.shape[0] - 1)
    return grid[iy, ix]


def fibres(rng: np.random.Generator, shape: tuple[int, int], mpp: float, angle: np.ndarray, scale: float) -> np.ndarray:
    """Wavy collagen fibres that loosely follow a smooth orientation field.

    Args:
        rng: random generator.
        shape: ``(height, width)``.
        mpp: µm per pixel.
        angle: fibre orientation (radians) on a coarse grid ``(gh, gw)``.
        scale: pixels per cell of ``angle``.

    Returns:
        Fibre density ``(height, width)``, float32, about [0, 1].
    """
    step, n_steps = 5.0 / mpp, 12
    n = int(shape[0] * shape[1] * mpp**2 / (5.0 * n_steps * 4.0))
    pts = rng.uniform((0, 0), (shape[1], shape[0]), (n, 2))
    wiggle, offset, phase = rng.uniform(0.1, 0.4, n), rng.normal(0, 0.3, n), rng.uniform(0, 2 * np.pi, n)
    path = [pts]
    for s in range(n_steps):
        theta = lookup(angle, scale, pts) + offset + wiggle * np.sin(phase + 1.1 * s)
        pts = pts + step * np.stack([np.cos(theta), np.sin(theta)], axis=1)
        path.append(pts)
    lines = np.round(np.stack(path, axis=1) * (1 << SHIFT)).astype(np.int32)
    canvas = np.zeros(shape, np.float32)
    group = rng.integers(0, 6, n)  # 3 widths x 2 intensities
    for g in range(6):
        width = int(max(round((1.2 + 0.8 * (g // 2)) / mpp), 1))
        value = 0.75 + 0.25 * (g % 2)
        cv2.polylines(canvas, list(lines[group == g]), False, value, width, cv2.LINE_8, SHIFT)
    return cv2.GaussianBlur(canvas, (0, 0), max(0.6 / mpp, 0.7), dst=canvas)


def jittered_grid(rng: np.random.Generator, box: Sequence[float], step: float, jitter: float) -> np.ndarray:
    """Points ``(n, 2)`` of a hexagonal grid (spacing ``step`` px) in ``box`` (x0, y0, x1, y1), jittered."""
    gx, gy = np.meshgrid(np.arange(box[0], box[2], step), np.arange(box[1], box[3], step * 0.866))
    gx = gx + (np.arange(gx.shape[0]) % 2)[:, None] * step / 2
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    return pts + rng.normal(0, jitter * step, pts.shape)


def keep_in(points: np.ndarray, region: np.ndarray, label: int) -> np.ndarray:
    """The points ``(n, 2)`` whose pixel in ``region`` ``(height, width)`` equals ``label``; ``(m, 2)``."""
    ix, iy = points[:, 0].astype(int), points[:, 1].astype(int)
    ok = (points[:, 0] >= 0) & (points[:, 1] >= 0) & (ix < region.shape[1]) & (iy < region.shape[0])
    points, ix, iy = points[ok], ix[ok], iy[ok]
    return points[region[iy, ix] == label]


def clip_box(points: np.ndarray, shape: tuple[int, int], pad: float = 0) -> Box:
    """The bounding box of ``points`` ``(k, 2)``, grown by ``pad``, clipped to ``shape`` (height, width)."""
    (x0, y0), (x1, y1) = points.min(axis=0) - pad, points.max(axis=0) + pad
    return int(max(x0, 0)), int(max(y0, 0)), int(min(np.ceil(x1), shape[1])), int(min(np.ceil(y1), shape[0]))


def fill_mask(outlines: Sequence[np.ndarray], box: Box, blur_px: float = 0.0) -> np.ndarray:
    """Filled outlines ``(k, 2)`` rasterised over ``box``, optionally blurred; ``(y1-y0, x1-x0)`` float32."""
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), np.float32)
    pts = [np.round((np.asarray(p) - box[:2]) * (1 << SHIFT)).astype(np.int32) for p in outlines]
    cv2.fillPoly(mask, pts, 1.0, cv2.LINE_8, SHIFT)
    return cv2.GaussianBlur(mask, (0, 0), blur_px) if blur_px > 0 else mask
