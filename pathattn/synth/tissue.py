"""H&E-like tissue rendering in stain space, with numpy and OpenCV.

Tissue is rendered as two float32 concentration maps of shape ``(height, width)``: hematoxylin ``h`` and
eosin ``e`` (optical density per unit stain vector). Stroma fibres, nuclei, glands, lymphoid aggregates,
tumor nests and folds are drawn into them with OpenCV primitives, :func:`compose_rgb` converts them to RGB
with the Beer-Lambert law ``rgb = glass * 10 ** -(h * H + e * E)``, and pen marks and debris are drawn on
the RGB image. Sizes are given in micrometres and converted with the slide's mpp (µm per pixel); points
are ``(x, y)`` in level-0 pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from pathattn.synth.texture import (
    GRAIN,
    SHIFT,
    Box,
    clip_box,
    fibres,
    fill_mask,
    jittered_grid,
    keep_in,
    lookup,
    multiply_grain,
    smooth_noise,
)

NucleusKind = Literal["stroma", "epithelium", "lymphocyte", "tumor"]
GLASS, STROMA, NEST, EPITHELIUM, LYMPHOID, LUMEN = range(6)  # compartment labels


@dataclass(frozen=True)
class NucleusStyle:
    """How one kind of nucleus looks: ranges of long diameter (µm), short/long axis ratio and hematoxylin
    density, the amplitude of the outline noise, and the fraction drawn vesicular (pale, with a nucleolus)."""

    diameter_um: tuple[float, float]
    aspect: tuple[float, float]
    h_od: tuple[float, float]
    irregularity: float
    vesicular: float


STYLES: dict[NucleusKind, NucleusStyle] = {
    "stroma": NucleusStyle((6.0, 8.5), (0.35, 0.75), (0.6, 0.85), 0.05, 0.0),
    "epithelium": NucleusStyle((6.0, 8.0), (0.65, 0.9), (0.55, 0.75), 0.04, 0.15),
    "lymphocyte": NucleusStyle((5.0, 6.5), (0.85, 1.0), (0.85, 1.1), 0.04, 0.0),
    "tumor": NucleusStyle((10.0, 16.0), (0.5, 0.95), (0.75, 1.1), 0.2, 0.6),
}


@dataclass(frozen=True)
class Stain:
    """The stain of one slide: optical density of unit hematoxylin and eosin per RGB channel, glass RGB."""

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    glass: tuple[float, float, float]


def random_stain(rng: np.random.Generator) -> Stain:
    """A stain with per-slide variation of hue and strength (staining and scanner variability)."""
    h = np.array([0.62, 0.72, 0.30]) * rng.uniform(0.8, 1.25) + rng.normal(0.0, 0.025, 3)
    e = np.array([0.12, 0.74, 0.38]) * rng.uniform(0.8, 1.2) + rng.normal(0.0, 0.025, 3)
    glass = np.clip(np.array([241.0, 240.0, 238.0]) + rng.normal(0.0, 1.5, 3), 225, 250)
    return Stain(*(tuple(float(x) for x in np.clip(v, 0.01, None)) for v in (h, e, glass)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Gland:
    """A normal gland: an elliptical lumen (axes, pixels; angle, degrees) lined by epithelium."""

    center: tuple[float, float]
    axes: tuple[float, float]
    angle: float
    thickness: float


@dataclass
class Tissue:
    """The tissue of one slide, rendered by :func:`render_stains`.

    Args:
        shape: ``(height, width)`` of level 0.
        mpp: µm per pixel.
        field: tissue field on a coarse grid ``(gh, gw)``, float32; tissue where > 0.
        scale: level-0 pixels per grid cell.
        tumors: tumor outlines, each ``(k, 2)``.
        lymphoid: lymphoid aggregate outlines, each ``(k, 2)``.
        glands: normal glands and acini.
        folds: fold outlines, each ``(k, 2)``.
    """

    shape: tuple[int, int]
    mpp: float
    field: np.ndarray
    scale: float
    tumors: list[np.ndarray] = dataclasses.field(default_factory=list)
    lymphoid: list[np.ndarray] = dataclasses.field(default_factory=list)
    glands: list[Gland] = dataclasses.field(default_factory=list)
    folds: list[np.ndarray] = dataclasses.field(default_factory=list)


def draw_nuclei(
    h: np.ndarray,
    e: np.ndarray,
    rng: np.random.Generator,
    centers: np.ndarray,
    kind: NucleusKind,
    mpp: float,
    angles: np.ndarray | None = None,
    vertices: int = 12,
) -> None:
    """Draw nuclei with noisy elliptical outlines into the stain maps (in place).

    Args:
        h: hematoxylin map ``(height, width)``, float32.
        e: eosin map ``(height, width)``, float32.
        rng: random generator.
        centers: centres ``(n, 2)``.
        kind: the nucleus style (see :data:`STYLES`).
        mpp: µm per pixel.
        angles: long-axis orientations ``(n,)``, radians (random when None).
        vertices: vertices per outline.
    """
    style, n = STYLES[kind], len(centers)
    if n == 0:
        return
    radius = rng.uniform(*style.diameter_um, n) / (2 * mpp)
    aspect, h_od = rng.uniform(*style.aspect, n), rng.uniform(*style.h_od, n)
    angles = rng.uniform(0, np.pi, n) if angles is None else angles + rng.normal(0, 0.2, n)
    theta = np.linspace(0, 2 * np.pi, vertices, endpoint=False)[None, :]
    noise = 0.5 * rng.normal(0, 1, (n, vertices))
    for k in (2, 3, 5):
        noise += rng.normal(0, 1, (n, 1)) / k * np.cos(k * theta + rng.uniform(0, 7, (n, 1)))
    r = radius[:, None] * np.clip(1 + style.irregularity * noise, 0.4, 1.8)
    x, y = r * np.cos(theta), r * aspect[:, None] * np.sin(theta)
    ca, sa = np.cos(angles)[:, None], np.sin(angles)[:, None]
    outline = np.stack([x * ca - y * sa, x * sa + y * ca], axis=2)  # (n, vertices, 2), relative
    one = float(1 << SHIFT)
    pts = np.round((centers[:, None, :] + outline) * one).astype(np.int32)
    inner = np.round((centers[:, None, :] + 0.62 * outline) * one).astype(np.int32)
    nucleolus = np.round((centers + rng.normal(0, 0.15, (n, 2)) * radius[:, None]) * one).astype(np.int32)
    vesicular, e_in = rng.random(n) < style.vesicular, rng.uniform(0.28, 0.42, n)
    for i in range(n):
        cv2.fillPoly(h, [pts[i]], float(h_od[i]), cv2.LINE_8, SHIFT)
        cv2.fillPoly(e, [pts[i]], float(e_in[i]), cv2.LINE_8, SHIFT)
        if vesicular[i]:
            cv2.fillPoly(h, [inner[i]], float(h_od[i] * 0.55), cv2.LINE_8, SHIFT)
            cv2.circle(
                h,
                (int(nucleolus[i, 0]), int(nucleolus[i, 1])),
                int(max(radius[i] * 0.16, 1) * one),
                float(h_od[i] * 1.35),
                -1,
                cv2.LINE_8,
                SHIFT,
            )


def compartments(tissue: Tissue, rng: np.random.Generator) -> np.ndarray:
    """The compartment map ``(height, width)`` uint8 (``GLASS``, ``STROMA``, ``NEST``... labels).

    Tumor polygons are split into nests of tumor cells (about 80%) and the stroma between them.
    """
    height, width = tissue.shape
    region = (cv2.resize(tissue.field, (width, height), interpolation=cv2.INTER_LINEAR) > 0).view(np.uint8)
    for outline in tissue.lymphoid:
        pts = np.round(outline * (1 << SHIFT)).astype(np.int32)
        cv2.fillPoly(region, [pts], LYMPHOID, cv2.LINE_8, SHIFT)
    for g in tissue.glands:
        outer = (g.axes[0] + g.thickness, g.axes[1] + g.thickness)
        for axes, value in ((outer, EPITHELIUM), (g.axes, LUMEN)):
            cv2.ellipse(
                region,
                (round(g.center[0]), round(g.center[1])),
                (round(axes[0]), round(axes[1])),
                g.angle,
                0,
                360,
                value,
                -1,
            )
    for outline in tissue.tumors:
        x0, y0, x1, y1 = box = clip_box(outline, tissue.shape, pad=2)
        inside = fill_mask([outline], box) > 0.5
        nests = smooth_noise(rng, inside.shape, 90 / tissue.mpp, 2) > -0.7
        view = region[y0:y1, x0:x1]
        view[inside & (view > 0)] = STROMA
        view[inside & nests & (view > 0)] = NEST
    return region


def _tint(h: np.ndarray, e: np.ndarray, region: np.ndarray, label: int, box: Box, dh: float, ef: float) -> None:
    """Inside ``box`` where ``region == label``: add ``dh`` hematoxylin, scale eosin by ``ef`` (in place)."""
    x0, y0, x1, y1 = box
    m = region[y0:y1, x0:x1] == label
    h[y0:y1, x0:x1][m] += dh
    e[y0:y1, x0:x1][m] *= ef


def _gland_nuclei(g: Gland, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(n, 2)`` and radial orientations ``(n,)`` of the nuclei lining a gland, 7.5 µm apart."""
    a, b = g.axes[0] + 0.55 * g.thickness, g.axes[1] + 0.55 * g.thickness
    phi = np.linspace(0, 2 * np.pi, max(int(np.pi * (a + b) * mpp / 7.5), 6), endpoint=False)
    cr, sr = np.cos(np.deg2rad(g.angle)), np.sin(np.deg2rad(g.angle))
    x, y = a * np.cos(phi), b * np.sin(phi)
    pts = np.stack([g.center[0] + x * cr - y * sr, g.center[1] + x * sr + y * cr], axis=1)
    return pts, np.arctan2(pts[:, 1] - g.center[1], pts[:, 0] - g.center[0])


def render_stains(tissue: Tissue, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render tissue into hematoxylin and eosin maps.

    Args:
        tissue: what to render.
        rng: random generator.

    Returns:
        ``(h, e)``, each ``(height, width)`` float32, blurred like a microscope and with fine grain.
    """
    shape, mpp = tissue.shape, tissue.mpp
    region = compartments(tissue, rng)
    solid = ((region > GLASS) & (region != LUMEN)).view(np.uint8)
    angle = smooth_noise(rng, tissue.field.shape, 40, 2) * 1.2
    e = fibres(rng, shape, mpp, angle, tissue.scale)
    e *= 0.18
    e += 0.17
    low = smooth_noise(rng, shape, 150 / mpp, 2)
    low *= 0.22
    low += 1.0
    e *= low
    del low
    e *= solid
    h = solid.astype(np.float32)
    h *= 0.03
    for outlines, label, dh, ef in (
        (tissue.tumors, NEST, 0.07, 0.75),
        (tissue.lymphoid, LYMPHOID, 0.08, 0.5),
    ):
        for outline in outlines:
            _tint(h, e, region, label, clip_box(outline, shape, 2), dh, ef)
    for g in tissue.glands:
        r = g.axes[0] + g.thickness + 2
        box = clip_box(np.array([g.center]) + [[-r, -r], [r, r]], shape)
        _tint(h, e, region, EPITHELIUM, box, 0.08, 0.6)
    n = rng.poisson(shape[0] * shape[1] * 1500e-6 * mpp**2)
    stroma = keep_in(rng.uniform((0, 0), (shape[1], shape[0]), (n, 2)), region, STROMA)
    draw_nuclei(h, e, rng, stroma, "stroma", mpp, lookup(angle, tissue.scale, stroma))
    for g in tissue.glands:
        centers, radial = _gland_nuclei(g, mpp)
        draw_nuclei(h, e, rng, centers, "epithelium", mpp, radial)
    for outlines, kind, label, spacing in (
        (tissue.lymphoid, "lymphocyte", LYMPHOID, (6.5, 11.0)),
        (tissue.tumors, "tumor", NEST, (13.0, 19.0)),
    ):
        for outline in outlines:
            grid = jittered_grid(rng, clip_box(outline, shape, 2), rng.uniform(*spacing) / mpp, 0.3)
            draw_nuclei(h, e, rng, keep_in(grid, region, label), kind, mpp)  # type: ignore[arg-type]
    for band in tissue.folds:  # tissue folded onto itself: about twice as dense
        x0, y0, x1, y1 = box = clip_box(band, shape, pad=10 / mpp)
        mask = fill_mask([band], box, 4 / mpp) * solid[y0:y1, x0:x1]
        factor = 1.0 + (rng.uniform(1.7, 2.2) - 1.0) * mask
        h[y0:y1, x0:x1] *= factor
        h[y0:y1, x0:x1] += 0.08 * mask
        e[y0:y1, x0:x1] *= factor
    del region, solid
    for img, grain_um, strength in ((h, 0.4, 0.2), (e, 0.6, 0.12)):
        cv2.GaussianBlur(img, (0, 0), max(0.35 / mpp, 0.5), dst=img)
        multiply_grain(rng, img, max(grain_um / mpp, 0.6), strength)
    return h, e


def compose_rgb(h: np.ndarray, e: np.ndarray, stain: Stain, rng: np.random.Generator, noise: float = 1.2) -> np.ndarray:
    """Convert stain maps to RGB with the Beer-Lambert law, plus sensor noise.

    Args:
        h: hematoxylin ``(height, width)``, float32.
        e: eosin ``(height, width)``, float32.
        stain: the slide's stain vectors and glass colour.
        rng: random generator.
        noise: standard deviation of the additive noise, grey levels.

    Returns:
        The image ``(height, width, 3)``, uint8.
    """
    height, width = h.shape
    out = np.empty((height, width, 3), np.uint8)
    blocks = [rng.standard_normal(GRAIN).astype(np.float32) * noise for _ in range(3)]
    ln10, bh, bw = float(np.log(10.0)), GRAIN[0], GRAIN[1]
    for y in range(0, height, bh):
        hs, es = h[y : y + bh], e[y : y + bh]
        for c in range(3):
            od = cv2.addWeighted(hs, -ln10 * stain.hematoxylin[c], es, -ln10 * stain.eosin[c], 0.0)
            val: np.ndarray = cv2.exp(od)
            val *= stain.glass[c]
            for x in range(0, width, bw):
                view = val[:, x : x + bw]
                view += blocks[c][: view.shape[0], : view.shape[1]]
            out[y : y + bh, :, c] = np.clip(val, 0, 255).astype(np.uint8)
    return out


def apply_pen(
    rgb: np.ndarray,
    stroke: np.ndarray,
    width_px: float,
    ink: tuple[float, float, float],
    opacity: float,
    rng: np.random.Generator,
) -> None:
    """Multiply a semi-transparent, streaky marker stroke onto an image (in place).

    Args:
        rgb: image ``(height, width, 3)``, uint8.
        stroke: centre line ``(k, 2)``.
        width_px: stroke width, pixels.
        ink: transmission of the ink per channel, 0-1.
        opacity: ink density, 0-1.
        rng: random generator (streaks in the ink).
    """
    x0, y0, x1, y1 = clip_box(stroke, rgb.shape[:2], pad=width_px)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.polylines(
        mask,
        [np.round((stroke - (x0, y0)) * (1 << SHIFT)).astype(np.int32)],
        False,
        255,
        int(width_px),
        cv2.LINE_AA,
        SHIFT,
    )
    alpha = cv2.GaussianBlur(mask, (0, 0), width_px / 12).astype(np.float32)
    del mask
    streaks = smooth_noise(rng, alpha.shape, width_px / 2, 2)
    streaks *= 0.15
    streaks += 1.0
    alpha *= streaks
    alpha *= opacity / 255.0
    del streaks
    absorb = 1.0 - np.asarray(ink, np.float32)
    for y in range(0, y1 - y0, 256):  # in strips: the stroke's box can span the whole slide
        view = rgb[y0 + y : min(y0 + y + 256, y1), x0:x1]
        view[:] = np.clip(view * (1.0 - alpha[y : y + 256, :, None] * absorb), 0, 255)


def draw_debris(rgb: np.ndarray, outlines: Sequence[np.ndarray], rng: np.random.Generator) -> None:
    """Draw opaque dark specks of dust or debris (outlines ``(k, 2)``), black to dark brown (in place)."""
    for outline in outlines:
        base = rng.uniform(15, 60)
        color = (base * rng.uniform(1.0, 1.5), base * rng.uniform(0.8, 1.1), base * rng.uniform(0.6, 1.0))
        cv2.fillPoly(rgb, [np.round(outline * (1 << SHIFT)).astype(np.int32)], color, cv2.LINE_AA, SHIFT)
