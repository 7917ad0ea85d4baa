"""Synthetic H&E-like whole-slide images and the embedded demo/test cohort (``pathattn synth wsi``).

A slide is first *planned* on a coarse 8 µm grid (tissue fragments, tumor polygons, glands, lymphoid
aggregates, distractors: cheap and deterministic), then *rendered* at full resolution in stain space
(:mod:`pathattn.synth.tissue`) and written as a tiled, JPEG-compressed pyramidal TIFF that OpenSlide reads.
Tumors are rendered from exactly the polygons written to the GeoJSON ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import shapely
import tifffile
from shapely.geometry import Polygon

from pathattn.io.atomic import atomic_path
from pathattn.io.geojson import Annotation, write_annotations
from pathattn.synth import tissue as T
from pathattn.synth.texture import jittered_grid, smooth_noise

Layout = Literal["pyramid", "single-level", "aperio"]
Distractor = Literal["pen", "fold", "debris"]
DEFAULT_SIZE = {"width": 6144, "height": 4608, "mpp": 0.5}
_PLAN_UM = 8.0  # µm per cell of the planning grid
_INKS = {"green": (0.45, 0.8, 0.55), "blue": (0.4, 0.5, 0.9), "black": (0.25, 0.25, 0.28)}
Taken = list[tuple[float, float, float]]  # circles (x, y, radius) already used, level-0 pixels
Outline = np.ndarray  # (k, 2) polygon vertices (x, y), level-0 pixels


@dataclass
class SlidePlan:
    """The random layout of one slide.

    Args:
        tissue: tissue fragments, tumors, glands, lymphoid aggregates and folds (level-0 pixels).
        label: 1 when the slide holds tumor.
        pens: marker strokes ``(centre line (k, 2), width px, ink transmission RGB, opacity)``.
        debris: dark speck outlines, each ``(k, 2)``.
        render_seed: seed of the rendering stream.
    """

    tissue: T.Tissue
    label: int
    pens: list[tuple[np.ndarray, float, tuple[float, float, float], float]] = field(default_factory=list)
    debris: list[np.ndarray] = field(default_factory=list)
    render_seed: int = 0

    @property
    def distractors(self) -> list[Distractor]:
        """The kinds of distractor present."""
        kinds: list[Distractor] = ["pen"] if self.pens else []
        return kinds + (["fold"] if self.tissue.folds else []) + (["debris"] if self.debris else [])

    @property
    def tumor_area_mm2(self) -> float:
        """Total tumor area, mm²."""
        polygons = [Polygon(t) for t in self.tissue.tumors]
        return float(shapely.union_all(polygons).area) * self.tissue.mpp**2 / 1e6 if polygons else 0.0


def blob(rng: np.random.Generator, radius: float, aspect: float, roughness: float, n_vertices: int = 48) -> np.ndarray:
    """A smooth irregular star-shaped outline around the origin; ``(n_vertices, 2)``, rounded to 0.01 px."""
    theta = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    r = np.ones(n_vertices)
    for k in range(2, 8):
        r += roughness * rng.normal(0, 1) / k**0.8 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r, angle = radius * np.clip(r, 0.45, 1.6), rng.uniform(0, np.pi)
    x, y = r * np.cos(theta), r * aspect * np.sin(theta)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.round(np.stack([x * ca - y * sa, x * sa + y * ca], axis=1), 2)


def tissue_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """1-3 irregular tissue fragments covering 32-55% of a planning grid ``(gh, gw)``; tissue where > 0."""
    gh, gw = shape
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    best = np.full(shape, -9.0, np.float32)
    for k in range(n):
        cx, cy = (k + 0.5 + rng.uniform(-0.15, 0.15)) * gw / n, gh * rng.uniform(0.4, 0.6)
        rx, ry = gw / n * rng.uniform(0.35, 0.5), gh * rng.uniform(0.3, 0.42)
        angle = rng.uniform(-0.5, 0.5) if n > 1 else rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / rx
        v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / ry
        theta, edge = np.arctan2(v, u), np.ones(shape, np.float32)
        for j in range(2, 7):
            edge += 0.35 * rng.normal(0, 1) / j * np.cos(j * theta + rng.uniform(0, 2 * np.pi))
        best = np.maximum(best, 1 - np.hypot(u, v) / np.clip(edge, 0.5, None))
    best += 0.12 * smooth_noise(rng, shape, max(gw, gh) / 6, 3)
    margin = np.minimum.reduce([xx, yy, gw - 1 - xx, gh - 1 - yy]) / (0.04 * max(gw, gh))
    best -= np.clip(1 - margin, 0, 1) * 2
    return (best - np.quantile(best, 1 - rng.uniform(0.32, 0.55))).astype(np.float32)


def _place(
    rng: np.random.Generator, tissue: T.Tissue, dist_um: np.ndarray, reach_px: float, margin_um: float, taken: Taken
) -> tuple[float, float] | None:
    """A random centre with ``reach_px`` + ``margin_um`` of tissue around it, clear of ``taken``; or None."""
    mpp, scale = tissue.mpp, tissue.scale
    iy, ix = np.nonzero(dist_um >= reach_px * mpp + margin_um)
    centers = np.stack([(ix + 0.5) * scale, (iy + 0.5) * scale], axis=1)
    ok = np.ones(len(ix), bool)
    for x, y, r in taken:
        ok &= np.hypot(centers[:, 0] - x, centers[:, 1] - y) > r + reach_px + margin_um / mpp
    if not ok.any():
        return None
    x, y = centers[rng.choice(np.nonzero(ok)[0])]
    taken.append((float(x), float(y), reach_px))
    return float(x), float(y)


def _place_blobs(
    rng: np.random.Generator,
    tissue: T.Tissue,
    dist_um: np.ndarray,
    radii_um: list[float],
    taken: Taken,
    roughness: float,
    min_um: float = 60,
    margin_um: float = 30,
) -> list[Outline]:
    """Irregular blobs of the given radii inside tissue, clear of each other; shrunk when they do not fit."""
    out = []
    for radius_um in radii_um:
        while radius_um >= min_um:
            outline = blob(rng, radius_um / tissue.mpp, rng.uniform(0.55, 1.0), roughness)
            center = _place(rng, tissue, dist_um, float(np.hypot(*outline.T).max()), margin_um, taken)
            if center is not None:
                out.append(outline + np.round(center, 2))
                break
            radius_um *= 0.8
    return out


def _plan_glands(rng: np.random.Generator, tissue: T.Tissue, dist_um: np.ndarray, taken: Taken) -> None:
    """Normal glands: 0-3 lobules of small packed acini, and isolated glands (about 4 per mm²)."""
    mpp = tissue.mpp
    for _ in range(int(rng.choice([0, 1, 2, 3], p=[0.25, 0.35, 0.25, 0.15]))):
        radius = rng.uniform(100, 260) / mpp
        center = _place(rng, tissue, dist_um, radius, 20.0, taken)
        if center is None:
            continue
        lumen, thickness = rng.uniform(3, 8) / mpp, rng.uniform(10, 13) / mpp
        reach = radius - lumen - thickness
        box = (center[0] - reach, center[1] - reach, center[0] + reach, center[1] + reach)
        acini = jittered_grid(rng, box, 2 * (lumen + thickness) + rng.uniform(6, 14) / mpp, 0.12)
        dx, dy = acini[:, 0] - center[0], acini[:, 1] - center[1]
        phi, wobble = np.arctan2(dy, dx), rng.uniform(0, 2 * np.pi, 2)
        limit = reach * (1 + 0.2 * np.cos(2 * phi + wobble[0]) + 0.12 * np.cos(3 * phi + wobble[1])) / 1.32
        for x, y in acini[np.hypot(dx, dy) < limit]:
            axes = (lumen * rng.uniform(0.8, 1.2), lumen * rng.uniform(0.5, 1.0))
            tissue.glands.append(T.Gland((float(x), float(y)), axes, float(rng.uniform(0, 180)), thickness))
    area_mm2 = float((tissue.field > 0).sum()) * (tissue.scale * mpp) ** 2 / 1e6
    for _ in range(rng.poisson(4.0 * area_mm2)):
        a, thickness = rng.uniform(18, 55) / mpp, rng.uniform(12, 18) / mpp
        center = _place(rng, tissue, dist_um, a + thickness, 25.0, taken)
        if center is not None:
            axes = (a, a * rng.uniform(0.45, 1.0))
            tissue.glands.append(T.Gland(center, axes, float(rng.uniform(0, 180)), thickness))


def _curve(p0: np.ndarray, p1: np.ndarray, bend: float, n: int = 24) -> np.ndarray:
    """A quadratic Bézier from ``p0`` to ``p1`` bent sideways by ``bend`` of its length; ``(n, 2)``."""
    ctrl = (p0 + p1) / 2 + bend * np.array([p0[1] - p1[1], p1[0] - p0[0]])
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * t * (1 - t) * ctrl + t**2 * p1


def _plan_distractors(rng: np.random.Generator, plan: SlidePlan, inner: np.ndarray) -> None:
    """Pen marks, folds and debris on about 35% of slides, independently of the label.

    ``inner`` ``(n, 2)`` are points well inside tissue, where folds lie and pen strokes end.
    """
    if rng.random() >= 0.35:
        return
    kinds = [k for k in ("pen", "fold", "debris") if rng.random() < 0.45]
    kinds = kinds or [str(rng.choice(["pen", "fold"]))]
    mpp = plan.tissue.mpp
    size = np.array(plan.tissue.shape[::-1], float)
    for _ in range(rng.integers(1, 3) if "pen" in kinds else 0):  # from the glass edge onto the tissue
        side, outside = rng.integers(4), rng.uniform(0.05, 0.95, 2) * size
        outside[side % 2] = (0.02 if side < 2 else 0.98) * size[side % 2]
        end = inner[rng.integers(len(inner))] + rng.normal(0, 0.1, 2) * size
        ink = _INKS[str(rng.choice(list(_INKS)))]
        plan.pens.append(
            (
                _curve(outside, end, rng.uniform(-0.2, 0.2)),
                rng.uniform(60, 200) / mpp,
                ink,
                float(rng.uniform(0.5, 0.85)),
            )
        )
    for _ in range(rng.integers(1, 3) if "fold" in kinds else 0):  # a thin lens-shaped band
        c, theta = inner[rng.integers(len(inner))], rng.uniform(0, np.pi)
        half = rng.uniform(120, 400) / mpp * np.array([np.cos(theta), np.sin(theta)])
        line = _curve(c - half, c + half, rng.uniform(-0.15, 0.15))
        width = rng.uniform(25, 90) / mpp * np.sin(np.linspace(0.15, np.pi - 0.15, len(line)))[:, None]
        normal = np.array([-np.sin(theta), np.cos(theta)])
        plan.tissue.folds.append(np.concatenate([line + width * normal, (line - width * normal)[::-1]]))
    for _ in range(rng.integers(5, 30) if "debris" in kinds else 0):
        c = inner[rng.integers(len(inner))] if rng.random() < 0.6 else rng.uniform(0, 1, 2) * size
        plan.debris.append(c + blob(rng, rng.uniform(4, 30) / mpp, rng.uniform(0.3, 1), 0.5, 16))


def plan_slide(
    seed: np.random.SeedSequence | int,
    *,
    label: int,
    width: int = 6144,
    height: int = 4608,
    mpp: float = 0.5,
    burden: float = 1.0,
) -> SlidePlan:
    """Decide the random layout of a slide (cheap: works on a grid of 8 µm cells, smaller for tiny slides).

    Args:
        seed: the slide's seed; the same seed and options give the same slide.
        label: 1 for a slide with 1-3 tumor regions (150-1100 µm across), 0 for a tumor-free slide.
        width: level-0 width, pixels.
        height: level-0 height, pixels.
        mpp: level-0 resolution, µm per pixel.
        burden: multiplier of the tumor sizes (a patient-level aggressiveness).

    Returns:
        The plan, rendered by :func:`render_slide`.
    """
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    plan_seq, render_seq = seq.spawn(2)
    rng, scale = np.random.default_rng(plan_seq), min(_PLAN_UM / mpp, min(width, height) / 8)
    field_ = tissue_field(rng, (int(np.ceil(height / scale)), int(np.ceil(width / scale))))
    tissue = T.Tissue((height, width), mpp, field_, scale)
    plan = SlidePlan(tissue, int(label), render_seed=int(render_seq.generate_state(1)[0]))
    dist_um = cv2.distanceTransform((field_ > 0).astype(np.uint8), cv2.DIST_L2, 5) * scale * mpp
    taken: Taken = []
    if label:
        n = int(rng.choice([1, 2, 3], p=[0.35, 0.35, 0.3]))
        sizes = np.maximum(np.exp(rng.uniform(np.log(150), np.log(1100), n)) * burden / 2, 75)  # radii, µm
        tissue.tumors = _place_blobs(rng, tissue, dist_um, sorted(sizes.tolist())[::-1], taken, 0.3)
        if not tissue.tumors:  # a tiny slide: the largest tumor that fits
            radius = float(dist_um.max()) / 1.7
            tissue.tumors = _place_blobs(rng, tissue, dist_um, [radius], taken, 0.3, min(radius, 1.0), 0.0)
    radii = rng.uniform(60, 220, int(rng.choice([0, 1, 2, 3, 4], p=[0.15, 0.3, 0.3, 0.15, 0.1])))
    tissue.lymphoid = _place_blobs(rng, tissue, dist_um, radii.tolist(), taken, 0.15)
    _plan_glands(rng, tissue, dist_um, taken)
    iy, ix = np.nonzero(dist_um >= min(150.0, float(dist_um.max()) / 2))
    _plan_distractors(rng, plan, np.stack([(ix + 0.5) * scale, (iy + 0.5) * scale], axis=1))
    return plan


def render_slide(plan: SlidePlan) -> np.ndarray:
    """Render a planned slide at full resolution.

    Args:
        plan: the layout from :func:`plan_slide`.

    Returns:
        The level-0 image ``(height, width, 3)``, uint8 RGB.
    """
    rng = np.random.default_rng(plan.render_seed)
    stain = T.random_stain(rng)
    h, e = T.render_stains(plan.tissue, rng)
    rgb = T.compose_rgb(h, e, stain, rng)
    del h, e
    for stroke, width_px, ink, opacity in plan.pens:
        T.apply_pen(rgb, stroke, width_px, ink, opacity, rng)
    T.draw_debris(rgb, plan.debris, rng)
    return rgb


def _levels(rgb: np.ndarray, factor: int) -> Iterator[np.ndarray]:
    """Level 0, then ``factor``-times smaller levels until one is at most 512 px on its long side."""
    level = rgb
    yield level
    while max(level.shape[:2]) > 512:
        size = (max(level.shape[1] // factor, 1), max(level.shape[0] // factor, 1))
        level = cv2.resize(level, size, interpolation=cv2.INTER_AREA)
        yield level


def write_slide(
    path: str | Path,
    rgb: np.ndarray,
    mpp: float,
    *,
    layout: Layout = "pyramid",
    mpp_metadata: bool = True,
    quality: int = 90,
    level_factor: int = 4,
) -> Path:
    """Write an image as a tiled (256 px), JPEG-compressed TIFF that OpenSlide opens (atomically).

    Args:
        path: the output file; for ``layout="aperio"`` its suffix becomes ``.svs``.
        rgb: the level-0 image ``(height, width, 3)``, uint8.
        mpp: level-0 resolution, µm per pixel.
        layout: ``"pyramid"`` (generic TIFF: levels downsampled 1, 4, 16... as reduced-resolution pages),
            ``"single-level"`` (level 0 only) or ``"aperio"`` (an Aperio-SVS-like pyramid whose
            ImageDescription carries AppMag and MPP, without resolution tags).
        mpp_metadata: write the resolution (TIFF resolution tags in cm, or ``MPP`` for aperio); when False
            OpenSlide reports no mpp (aperio still reports the objective power).
        quality: JPEG quality.
        level_factor: downsample between consecutive pyramid levels (at least 2).

    Returns:
        The path written.
    """
    path = Path(path).with_suffix(".svs") if layout == "aperio" else Path(path)
    height, width = rgb.shape[:2]
    levels = [rgb] if layout == "single-level" else list(_levels(rgb, max(2, level_factor)))
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=rgb.nbytes > 2**31) as tw:
        for i, level in enumerate(levels):
            kwargs: dict[str, Any] = {"subfiletype": 1} if i else {}
            if layout == "aperio":
                kwargs["description"] = (
                    f"Aperio Image Library v12.0.15\n{width}x{height} [0,0 {width}x{height}] (256x256) "
                    f"JPEG/RGB Q={quality}|AppMag = {40 if mpp <= 0.3 else 20}"
                    + (f"|MPP = {mpp:.4f}" if mpp_metadata else "")
                )
            elif mpp_metadata:
                res = 1e4 / (mpp * width / level.shape[1])
                kwargs.update(resolution=(res, res), resolutionunit="CENTIMETER")
            tw.write(
                level,
                tile=(256, 256),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": quality},
                metadata=None,
                **kwargs,
            )
    return path


def write_truth(path: str | Path, plan: SlidePlan) -> None:
    """Write the tumor polygons of a plan as QuPath GeoJSON (class ``Tumor``; no features for negatives)."""
    write_annotations(path, [Annotation(Polygon(t), "Tumor") for t in plan.tissue.tumors])


def synth_slide(
    path: str | Path,
    *,
    seed: int | np.random.SeedSequence = 0,
    label: int = 1,
    width: int = 6144,
    height: int = 4608,
    mpp: float = 0.5,
    burden: float = 1.0,
    layout: Layout = "pyramid",
    mpp_metadata: bool = True,
    annotations: str | Path | None = None,
) -> tuple[Path, SlidePlan]:
    """Plan, render and write one slide, and optionally its tumor GeoJSON.

    Args:
        path: the slide file (its suffix becomes ``.svs`` for aperio).
        seed: the slide's seed.
        label: 1 with tumor, 0 without.
        width: level-0 width, pixels.
        height: level-0 height, pixels.
        mpp: level-0 resolution, µm per pixel.
        burden: multiplier of the tumor sizes.
        layout: file layout, see :func:`write_slide`.
        mpp_metadata: whether the file records its resolution.
        annotations: where to write the GeoJSON ground truth (not written when None).

    Returns:
        ``(path written, plan)``.
    """
    plan = plan_slide(seed, label=label, width=width, height=height, mpp=mpp, burden=burden)
    written = write_slide(path, render_slide(plan), mpp, layout=layout, mpp_metadata=mpp_metadata)
    if annotations is not None:
        write_truth(annotations, plan)
    return written, plan
