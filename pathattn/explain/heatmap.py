"""Attention heatmaps: a model's attention over the slide thumbnail (PNG) and over the patches (QuPath GeoJSON).

Input: the attention file ``pathattn predict`` writes per slide, ``PRED/attention/{slide_id}.h5``::

    attention  (N, K) float32  raw (pre-softmax) attention of K heads; -inf at instances the model masked
    coords     (N, 2) int64    level-0 top-left x, y, with the tiling attributes (docs/formats.md)
    file attributes: model, slide_id

Outputs per slide, under ``OUT``::

    {slide_id}_heatmap.png       thumbnail with the normalised attention blended in (tissue only), a caption
                                 banner and a colour bar
    {slide_id}_heatmap.geojson   one QuPath detection per patch, class "Attention", measurements
                                 ``attention`` (raw) and ``attention_percentile`` (Measure > Show
                                 measurement maps colours them)
    {slide_id}_top{k}.geojson    the k patches of highest attention as annotations, class "Top attention"

Overlapping patches are averaged per thumbnail pixel; instances with non-finite attention (masked) are
neither drawn nor exported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import h5py
import matplotlib
import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.io.coords import plain_attr
from pathattn.io.geojson import Annotation, as_polygons, read_annotations, write_annotations
from pathattn.io.slide import Slide
from pathattn.tile.qc import qc_mpp, write_png

Method = Literal["percentile", "minmax", "softmax", "raw"]
METHODS: tuple[Method, ...] = ("percentile", "minmax", "softmax", "raw")
DETECTION_CLASS = "Attention"
TOP_CLASS = "Top attention"
_BANNER = 56
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class AttentionMap:
    """The contents of an attention file.

    Args:
        slide_id: the slide's id.
        coords: (N, 2) int64 level-0 top-left x, y of the patches.
        attention: (N, K) float32 raw attention of K heads (non-finite: masked instance).
        attrs: the tiling attributes of ``coords`` (``patch_size_level0``, ``slide_path``, ``mpp_level0``, ...).
        model: the model that produced the attention (file attribute ``model``; empty when absent).
    """

    slide_id: str
    coords: np.ndarray
    attention: np.ndarray
    attrs: dict[str, Any]
    model: str = ""

    def __len__(self) -> int:
        return len(self.coords)


def read_attention(path: str | os.PathLike[str]) -> AttentionMap:
    """Read an attention file written by ``pathattn predict``.

    The slide id is the file attribute ``slide_id``, else the ``name`` attribute of ``coords``, else the
    file name. A 1-D ``attention`` is read as one head.

    Raises:
        PathattnError: the file is missing or unreadable, lacks a dataset, or its arrays disagree in length.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            for name in ("attention", "coords"):
                if name not in f:
                    raise PathattnError(
                        f"{path} has no '{name}' dataset; pass an attention file written by 'pathattn predict'"
                    )
            coords = np.asarray(f["coords"][:], np.int64).reshape(-1, 2)
            attention = np.asarray(f["attention"][:], np.float32)
            attrs = {k: plain_attr(v) for k, v in f["coords"].attrs.items()}
            file_attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
    except FileNotFoundError:
        raise PathattnError(f"attention file not found: {path}; run 'pathattn predict' first") from None
    except OSError as err:
        raise PathattnError(f"{path} is not a readable HDF5 file ({err}); run 'pathattn predict' again") from None
    attention = attention.reshape(len(attention), -1) if attention.ndim != 1 else attention[:, None]
    if len(attention) != len(coords):
        raise PathattnError(
            f"{path}: 'attention' has {len(attention)} rows but 'coords' has {len(coords)}; "
            "the file is inconsistent, run 'pathattn predict' again"
        )
    slide_id = str(file_attrs.get("slide_id") or attrs.get("name") or path.stem)
    return AttentionMap(slide_id, coords, attention, attrs, str(file_attrs.get("model", "")))


def _rank_percentile(x: np.ndarray) -> np.ndarray:
    """Average rank (ties averaged, 1-based) divided by the count: (n,) in (0, 1]."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2
    return average_rank[inverse.reshape(-1)] / len(x)


def _normalise_head(scores: np.ndarray, method: Method) -> np.ndarray:
    out = np.full(scores.shape, np.nan)
    finite = np.isfinite(scores)
    x = scores[finite].astype(np.float64)
    if len(x) == 0:
        return out
    if method == "percentile":
        out[finite] = _rank_percentile(x)
    elif method == "minmax":
        span = x.max() - x.min()
        out[finite] = (x - x.min()) / span if span > 0 else 0.5
    elif method == "softmax":
        out[finite] = np.exp(x - x.max())  # softmax weights divided by the largest weight
    else:
        out[finite] = np.clip(x, 0.0, 1.0)
    return out


def normalise(scores: np.ndarray, method: Method = "percentile") -> np.ndarray:
    """Attention scores mapped to [0, 1], per head, among one slide's patches.

    Methods:
        ``percentile``: the rank-based percentile of each patch (average rank of ties divided by the number of
        patches, so the top patch is 1), as CLAM and TRIDENT draw heatmaps; ``minmax``: linear from the
        lowest (0) to the highest (1) score (0.5 when all are equal); ``softmax``: the pooling weights
        divided by the largest weight (the top patch is 1); ``raw``: the scores clipped to [0, 1] (for scores
        already in that range).

    Args:
        scores: (N,) or (N, K) raw attention; non-finite values are masked instances.
        method: how to normalise.

    Returns:
        values: float64 of the shape of ``scores``, in [0, 1]; NaN where the score is not finite.
    """
    if method not in METHODS:
        raise ValueError(f"unknown normalisation {method!r}; use one of {', '.join(METHODS)}")
    scores = np.asarray(scores)
    if scores.ndim == 1:
        return _normalise_head(scores, method)
    return np.stack([_normalise_head(scores[:, k], method) for k in range(scores.shape[1])], axis=1)


def _patch_boxes(coords: np.ndarray, patch_size_level0: int, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Thumbnail pixel spans of the patches: (N, 4) int64 x0, y0, x1, y1 (end exclusive, clipped, >= 1 px)."""
    height, width = shape
    start = np.round(np.asarray(coords, np.float64) * scale).astype(np.int64)
    end = np.round((np.asarray(coords, np.float64) + patch_size_level0) * scale).astype(np.int64)
    end = np.maximum(end, start + 1)
    limit = np.array([width, height])
    return np.concatenate([np.clip(start, 0, limit), np.clip(end, 0, limit)], axis=1)


def _box_sum(boxes: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel sum of ``weights`` over the boxes (a summed-area table of corner increments): (H, W)."""
    height, width = shape
    table = np.zeros((height + 1, width + 1))
    x0, y0, x1, y1 = boxes.T
    for ys, xs, sign in ((y0, x0, 1), (y0, x1, -1), (y1, x0, -1), (y1, x1, 1)):
        np.add.at(table, (ys, xs), sign * weights)
    return table.cumsum(axis=0).cumsum(axis=1)[:height, :width]


def patch_mean(
    coords: np.ndarray, patch_size_level0: int, values: np.ndarray, shape: tuple[int, int], scale: float
) -> np.ndarray:
    """The mean value of the patches covering each pixel of an image of the slide.

    Args:
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        values: (N,) one value per patch; non-finite values are left out.
        shape: (H, W) of the image.
        scale: image pixels per level-0 pixel.

    Returns:
        (H, W) float64; NaN where no patch with a finite value covers the pixel.
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    boxes = _patch_boxes(np.asarray(coords)[finite], patch_size_level0, shape, scale)
    total = _box_sum(boxes, values[finite], shape)
    count = np.rint(_box_sum(boxes, np.ones(len(boxes)), shape))
    return np.divide(total, count, out=np.full(shape, np.nan), where=count > 0)


def tissue_mask(tissue: BaseGeometry, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Tissue polygons (level-0 pixels) rasterised at thumbnail scale: (H, W) bool.

    Every ring goes to one ``cv2.fillPoly`` call, whose even-odd filling leaves the holes out.
    """
    mask = np.zeros(shape, np.uint8)
    rings = [r for p in as_polygons(tissue) for r in (p.exterior, *p.interiors)]
    # a pixel's centre is at index + 0.5 in level-0 * scale units
    points = [np.round(np.asarray(r.coords) * scale - 0.5).astype(np.int32) for r in rings]
    if points:
        cv2.fillPoly(mask, points, 1)
    return mask.astype(bool)


def render_heatmap(
    thumbnail: np.ndarray,
    level0_per_px: float,
    coords: np.ndarray,
    patch_size_level0: int,
    values: np.ndarray,
    tissue: BaseGeometry | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
) -> np.ndarray:
    """Blend patch values, coloured by a colormap, over the thumbnail.

    Each thumbnail pixel gets the mean value of the patches covering it; it is coloured only where some
    patch with a finite value covers it and, with ``tissue``, inside the tissue.

    Args:
        thumbnail: (H, W, 3) uint8 RGB image of the whole slide.
        level0_per_px: level-0 pixels per thumbnail pixel.
        coords: (N, 2) level-0 top-left x, y of the patches.
        patch_size_level0: patch side in level-0 pixels.
        values: (N,) in [0, 1]; NaN is not drawn.
        tissue: tissue (Multi)Polygon in level-0 pixels, or None to colour wherever patches are.
        cmap: a matplotlib colormap name.
        alpha: opacity of the colours, in [0, 1].

    Returns:
        image: (H, W, 3) uint8 RGB.
    """
    shape = thumbnail.shape[:2]
    mean = patch_mean(coords, patch_size_level0, values, shape, 1.0 / level0_per_px)
    drawn = np.isfinite(mean)
    if tissue is not None:
        drawn &= tissue_mask(tissue, shape, 1.0 / level0_per_px)
    mean = np.clip(mean[drawn], 0.0, 1.0)
    colors = matplotlib.colormaps[cmap](mean)[:, :3] * 255.0
    image = thumbnail.copy()
    image[drawn] = np.round((1.0 - alpha) * thumbnail[drawn] + alpha * colors).astype(np.uint8)
    return image


def add_legend(image: np.ndarray, caption: str, label: str, cmap: str = "jet") -> np.ndarray:
    """Put a white banner above the image: the caption, then a colour bar from 0 to 1 and its label.

    Args:
        image: (H, W, 3) uint8 RGB.
        caption: first line (slide, model, prediction).
        label: what the colours mean, written after the colour bar.
        cmap: the colormap of the image.

    Returns:
        image: (H + 56, W, 3) uint8 RGB.
    """
    width = image.shape[1]
    banner = np.full((_BANNER, width, 3), 255, np.uint8)
    cv2.putText(banner, caption, (8, 20), _FONT, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    bar_width = int(np.clip(width - 260, 32, 256))
    ramp = matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, bar_width))[:, :3] * 255.0
    banner[32:48, 30 : 30 + bar_width] = np.round(ramp).astype(np.uint8)[None, : max(0, width - 30)]
    cv2.putText(banner, "0", (14, 46), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(banner, f"1  {label}", (36 + bar_width, 46), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([banner, image], axis=0)


def heatmap_geojson(
    coords: np.ndarray, patch_size_level0: int, scores: np.ndarray, top_k: int = 20
) -> tuple[list[Annotation], list[Annotation]]:
    """The patches as QuPath objects carrying their attention.

    Args:
        coords: (N, 2) level-0 top-left x, y.
        patch_size_level0: patch side in level-0 pixels.
        scores: (N,) raw attention of one head; non-finite (masked) patches are left out.
        top_k: how many of the highest-attention patches to return as the second list.

    Returns:
        detections: one square per patch with a finite score, class ``Attention``, with
            ``properties.measurements = {"attention": raw, "attention_percentile": p}`` (write them with
            ``object_type="detection"``); and top: the ``top_k`` highest, highest first, class
            ``Top attention``, named ``Top 1``, ``Top 2``, ... with the same measurements plus ``rank``.
    """
    scores = np.asarray(scores, np.float64)
    keep = np.flatnonzero(np.isfinite(scores))
    percentile = normalise(scores, "percentile")
    x, y = (np.asarray(coords, np.float64)[keep, i] for i in (0, 1))
    boxes = shapely.box(x, y, x + patch_size_level0, y + patch_size_level0)
    measured = [{"attention": float(scores[i]), "attention_percentile": float(percentile[i])} for i in keep]
    detections = [Annotation(b, DETECTION_CLASS, {"measurements": m}) for b, m in zip(boxes, measured, strict=True)]
    order = np.argsort(-scores[keep], kind="stable")[: max(0, top_k)]
    top = [
        Annotation(boxes[j], TOP_CLASS, {"name": f"Top {rank}", "measurements": {**measured[j], "rank": rank}})
        for rank, j in enumerate(order.tolist(), start=1)
    ]
    return detections, top


def output_paths(out_dir: str | os.PathLike[str], slide_id: str, top_k: int) -> dict[str, Path]:
    """Where :func:`heatmap_slide` writes: keys ``png``, ``geojson`` and ``top``."""
    out = Path(out_dir)
    return {
        "png": out / f"{slide_id}_heatmap.png",
        "geojson": out / f"{slide_id}_heatmap.geojson",
        "top": out / f"{slide_id}_top{top_k}.geojson",
    }


def _read_tissue(path: str | os.PathLike[str]) -> BaseGeometry:
    return shapely.union_all([a.geometry for a in read_annotations(path)])


def _open_slide(attention: AttentionMap, slide_path: str | os.PathLike[str] | None, source: Path) -> Slide:
    """The slide the attention was computed on, checked against the tiling's level-0 size."""
    path = slide_path or attention.attrs.get("slide_path")
    if not path:
        raise PathattnError(f"{source} does not name its slide; pass a sample sheet with a slide_path column")
    mpp0 = attention.attrs.get("mpp_level0")
    slide = Slide(path, float(mpp0) if mpp0 else None)
    width, height = slide.dimensions
    expected = (attention.attrs.get("level0_width"), attention.attrs.get("level0_height"))
    if None not in expected and (width, height) != tuple(int(v) for v in expected):
        slide.close()
        raise PathattnError(
            f"{path} is {width}x{height} px but {source} was computed on a "
            f"{expected[0]}x{expected[1]} px slide; pass the right slide in the sample sheet's slide_path column"
        )
    return slide


def heatmap_slide(
    attention_file: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    slide_path: str | os.PathLike[str] | None = None,
    tissue_geojson: str | os.PathLike[str] | None = None,
    thumbnail_mpp: float | None = None,
    method: Method = "percentile",
    top_k: int = 20,
    head: int = 0,
    cmap: str = "jet",
    alpha: float = 0.5,
    prediction: str = "",
) -> dict[str, Any]:
    """Write the heatmap PNG and the two GeoJSON files of one slide (each atomically; the PNG last).

    Args:
        attention_file: ``PRED/attention/{slide_id}.h5``.
        out_dir: the output folder.
        slide_path: the slide file, when it moved since tiling (default: the ``slide_path`` attribute).
        tissue_geojson: tissue polygons to mask the heatmap with (e.g. the tile run's
            ``tissue/{slide_id}.geojson``); without it, colours cover the patches.
        thumbnail_mpp: µm/px of the thumbnail (default: about 1024 pixels on the slide's long side).
        method: normalisation of the attention for the colours (see :func:`normalise`).
        top_k: patches in the top-attention file.
        head: the attention head drawn (0 to K-1).
        cmap: a matplotlib colormap name.
        alpha: opacity of the colours, in [0, 1].
        prediction: text about the slide's prediction for the caption (e.g. ``prediction 1 (p=0.93)``).

    Returns:
        ``slide_id``, ``n_patches``, ``model``, ``slide_path`` and the ``png``, ``geojson``, ``top`` paths.

    Raises:
        PathattnError: a file is missing or unreadable, ``head`` does not exist, or the slide does not match.
    """
    source = Path(attention_file)
    attention = read_attention(source)
    n_heads = attention.attention.shape[1]
    if not 0 <= head < n_heads:
        raise PathattnError(
            f"--head {head} does not exist: {source} has {n_heads} attention head(s), 0 to {n_heads - 1}"
        )
    patch_size_level0 = attention.attrs.get("patch_size_level0")
    if not patch_size_level0:
        raise PathattnError(f"{source}: 'coords' lacks the patch_size_level0 attribute; run 'pathattn predict' again")
    scores = attention.attention[:, head]
    paths = output_paths(out_dir, attention.slide_id, top_k)
    with _open_slide(attention, slide_path, source) as slide:
        mpp = thumbnail_mpp or qc_mpp(max(slide.dimensions) * slide.mpp.mean, slide.mpp.mean)
        thumbnail, level0_per_px = slide.read_at_mpp(mpp)
        used_path = str(slide.path)
    tissue = _read_tissue(tissue_geojson) if tissue_geojson else None
    detections, top = heatmap_geojson(attention.coords, int(patch_size_level0), scores, top_k)
    write_annotations(paths["geojson"], detections, object_type="detection")
    write_annotations(paths["top"], top)
    values = normalise(scores, method)
    image = render_heatmap(
        thumbnail, sum(level0_per_px) / 2, attention.coords, int(patch_size_level0), values, tissue, cmap, alpha
    )
    caption = "  |  ".join(
        s for s in (attention.slide_id, attention.model and f"model {attention.model}", prediction) if s
    )
    label = f"attention {method}" + (f", head {head}" if n_heads > 1 else "")
    write_png(paths["png"], add_legend(image, caption, label, cmap))
    return {
        "slide_id": attention.slide_id,
        "n_patches": int(np.isfinite(scores).sum()),
        "model": attention.model,
        "slide_path": used_path,
        **paths,
    }
