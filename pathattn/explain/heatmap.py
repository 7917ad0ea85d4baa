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
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from pathattn.errors import PathattnError
from pathattn.io.geojson import Annotation, read_annotations, write_annotations
from pathattn.io.ids import check_id, output_path
from pathattn.io.scores import PatchScores, read_patch_scores
from pathattn.io.slide import Slide
from pathattn.scoremaps.images import slide_thumbnail, write_png
from pathattn.scoremaps.normalise import Normalisation, normalise
from pathattn.scoremaps.render import add_legend, blend_scores

DETECTION_CLASS = "Attention"
TOP_CLASS = "Top attention"


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
        "png": output_path(out, f"{check_id(slide_id)}_heatmap.png"),
        "geojson": output_path(out, f"{slide_id}_heatmap.geojson"),
        "top": output_path(out, f"{slide_id}_top{top_k}.geojson"),
    }


def _read_tissue(path: str | os.PathLike[str]) -> BaseGeometry:
    return shapely.union_all([a.geometry for a in read_annotations(path)])


def _open_slide(scores: PatchScores, slide_path: str | os.PathLike[str] | None, source: str) -> Slide:
    """The slide the scores were computed on, checked against the tiling's level-0 size."""
    path = slide_path or scores.attrs.get("slide_path")
    if not path:
        raise PathattnError(f"{source} does not name its slide; pass a sample sheet with a slide_path column")
    mpp0 = scores.attrs.get("mpp_level0")
    slide = Slide(path, float(mpp0) if mpp0 else None)
    width, height = slide.dimensions
    expected = (scores.attrs.get("level0_width"), scores.attrs.get("level0_height"))
    if None not in expected and (width, height) != tuple(int(v) for v in expected):
        slide.close()
        raise PathattnError(
            f"{path} is {width}x{height} px but {source} was computed on a "
            f"{expected[0]}x{expected[1]} px slide; pass the right slide in the sample sheet's slide_path column"
        )
    return slide


@dataclass(frozen=True)
class HeatmapStyle:
    """How a heatmap is drawn.

    Args:
        thumbnail_mpp: µm/px of the thumbnail (None: about 1024 pixels on the slide's long side).
        normalise: normalisation of the scores for the colours (:func:`~pathattn.scoremaps.normalise.normalise`).
        top_k: patches in the top-attention file.
        head: the attention head drawn (0 to K-1).
        cmap: a matplotlib colour map name.
        alpha: opacity of the colours, in [0, 1].
    """

    thumbnail_mpp: float | None = None
    normalise: Normalisation = "percentile"
    top_k: int = 20
    head: int = 0
    cmap: str = "jet"
    alpha: float = 0.5

    def check(self) -> None:
        """Raise a one-line :class:`PathattnError` for an option out of range."""
        import matplotlib

        if self.cmap not in matplotlib.colormaps:
            raise PathattnError(f"--cmap {self.cmap} is not a matplotlib colormap; use e.g. jet, viridis, coolwarm")
        if not 0.0 <= self.alpha <= 1.0:
            raise PathattnError(f"--alpha must be in [0, 1] (opacity of the colours), got {self.alpha}")
        if self.top_k < 0 or self.head < 0:
            raise PathattnError("--top-k and --head must be 0 or more")
        if self.thumbnail_mpp is not None and not self.thumbnail_mpp > 0:
            raise PathattnError("--thumbnail-mpp must be a positive resolution in µm/px (e.g. 8)")


def heatmap_slide(
    scores: str | os.PathLike[str] | PatchScores,
    out_dir: str | os.PathLike[str],
    style: HeatmapStyle = HeatmapStyle(),
    *,
    slide_path: str | os.PathLike[str] | None = None,
    tissue_geojson: str | os.PathLike[str] | None = None,
    prediction: str = "",
) -> dict[str, Any]:
    """Write the heatmap PNG and the two GeoJSON files of one slide (each atomically; the PNG last).

    Args:
        scores: the slide's per-patch scores, or their file ``PRED/attention/{slide_id}.h5``
            (:mod:`pathattn.io.scores`).
        out_dir: the output folder.
        style: how to draw.
        slide_path: the slide file, when it moved since tiling (default: the ``slide_path`` attribute).
        tissue_geojson: tissue polygons to mask the heatmap with (e.g. the tile run's
            ``tissue/{slide_id}.geojson``); without it, colours cover the patches.
        prediction: text about the slide's prediction for the caption (e.g. ``prediction 1 (p=0.93)``).

    Returns:
        ``slide_id``, ``n_patches``, ``model``, ``slide_path`` and the ``png``, ``geojson``, ``top`` paths.

    Raises:
        PathattnError: a file is missing or unreadable, the head does not exist, no score is finite (nothing to
            draw), or the slide does not match.
    """
    data = scores if isinstance(scores, PatchScores) else read_patch_scores(scores)
    source = data.source or f"the scores of slide {data.slide_id}"
    values = data.head(style.head)
    if not np.isfinite(values).any():
        raise PathattnError(f"no finite attention in {source}; re-run 'pathattn predict'")
    patch_size_level0 = data.attrs.get("patch_size_level0")
    if not patch_size_level0:
        raise PathattnError(f"{source}: 'coords' lacks the patch_size_level0 attribute; run 'pathattn predict' again")
    paths = output_paths(out_dir, data.slide_id, style.top_k)
    with _open_slide(data, slide_path, source) as slide:
        thumbnail, level0_per_px = slide_thumbnail(slide, style.thumbnail_mpp)
        used_path = str(slide.path)
    tissue = _read_tissue(tissue_geojson) if tissue_geojson else None
    detections, top = heatmap_geojson(data.coords, int(patch_size_level0), values, style.top_k)
    write_annotations(paths["geojson"], detections, object_type="detection")
    write_annotations(paths["top"], top)
    colours = normalise(values, style.normalise)
    image = blend_scores(
        thumbnail, level0_per_px, data.coords, int(patch_size_level0), colours, tissue, style.cmap, style.alpha
    )
    caption = "  |  ".join(s for s in (data.slide_id, data.model and f"model {data.model}", prediction) if s)
    label = f"attention {style.normalise}" + (f", head {style.head}" if data.n_heads > 1 else "")
    write_png(paths["png"], add_legend(image, caption, label, style.cmap))
    return {
        "slide_id": data.slide_id,
        "n_patches": int(np.isfinite(values).sum()),
        "model": data.model,
        "slide_path": used_path,
        **paths,
    }
