"""Per-slide images of the report: the attention heatmap beside the ground truth, or the tiling QC image.

The ground truth is drawn afresh: the tumor polygons of ``{annotations}/{slide_id}.geojson`` filled and
outlined in their class colour over the slide thumbnail (the thumbnail ``pathattn heatmap`` draws on, about
1024 px on the long side). A slide without an annotation file shows its tiling QC image instead; an
annotation file without regions is a slide known to hold no tumor.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.geojson import Annotation, class_color, read_annotations, union_by_class
from pathattn.io.samples import SlideEntry
from pathattn.io.slide import Slide
from pathattn.report.figures import image_uri
from pathattn.scoremaps.images import read_rgb, slide_thumbnail
from pathattn.scoremaps.render import draw_polygons, fill_polygons

HEATMAP_SUFFIX = "_heatmap.png"
_FILL = 0.35  # opacity of the ground-truth fill


@dataclass(frozen=True)
class SlideImages:
    """The images of one slide, as data URIs.

    Args:
        slide_id: the slide.
        heatmap: the ``pathattn heatmap`` PNG.
        reference: the ground truth over the thumbnail, or the tiling QC image (None: neither available).
        reference_kind: ``ground truth``, ``tiling QC`` or empty.
        note: what the reference shows or why it is missing (e.g. ``2 Tumor regions``, ``no annotation``).
    """

    slide_id: str
    heatmap: str
    reference: str | None
    reference_kind: str
    note: str


def heatmap_ids(folder: Path | None) -> list[str]:
    """Slide ids of the heatmap PNGs in a ``pathattn heatmap`` folder, sorted (empty without the folder)."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(p.name[: -len(HEATMAP_SUFFIX)] for p in folder.glob(f"*{HEATMAP_SUFFIX}") if p.name[0] != ".")


def ground_truth_image(thumbnail: np.ndarray, level0_per_px: float, annotations: list[Annotation]) -> np.ndarray:
    """The annotated regions filled (translucent) and outlined in their class colour over the thumbnail.

    Args:
        thumbnail: (H, W, 3) uint8 RGB image of the whole slide.
        level0_per_px: level-0 pixels per thumbnail pixel.
        annotations: regions in level-0 pixels.

    Returns:
        image: (H, W, 3) uint8 RGB.
    """
    image, scale = np.ascontiguousarray(thumbnail), 1.0 / level0_per_px
    for name, geometry in union_by_class(annotations).items():
        image = fill_polygons(image, geometry, scale, class_color(name), _FILL)
        draw_polygons(image, geometry, scale, class_color(name))
    return image


def _describe(annotations: list[Annotation]) -> str:
    if not annotations:
        return "no tumor annotated"
    counts = Counter(annotation.name for annotation in annotations)
    return ", ".join(f"{n} {name} region{'s' * (n > 1)}" for name, n in counts.items())


def _ground_truth(annotation: Path, entry: SlideEntry | None) -> tuple[str, str]:
    """The ground-truth image (data URI) and its note.

    Raises:
        PathattnError: the annotation file or the slide cannot be read, or the slide is not known.
    """
    if entry is None:
        raise PathattnError("slide file unknown: pass --samples with a slide_path column")
    annotations = read_annotations(annotation)
    with Slide(entry.path, entry.mpp) as slide:
        thumbnail, level0_per_px = slide_thumbnail(slide)
    return image_uri(ground_truth_image(thumbnail, level0_per_px, annotations)), _describe(annotations)


def slide_images(
    slide_id: str, heatmaps: Path, annotations: Path | None, tiles: Path | None, entry: SlideEntry | None
) -> SlideImages:
    """The heatmap of a slide and, beside it, its ground truth (else its QC image).

    A ground truth that cannot be drawn (unknown or unreadable slide, bad GeoJSON) falls back to the QC
    image, with the reason in the note.

    Args:
        slide_id: the slide.
        heatmaps: the ``pathattn heatmap`` folder.
        annotations: folder of ``{slide_id}.geojson`` ground truth (None: not given).
        tiles: the ``pathattn tile`` folder (None: not there).
        entry: the slide file and its mpp (None: not known).

    Raises:
        PathattnError: the heatmap PNG is not a readable image.
    """
    heatmap = image_uri(read_rgb(heatmaps / f"{slide_id}{HEATMAP_SUFFIX}", "re-run 'pathattn heatmap --overwrite'"))
    annotation = annotations / f"{slide_id}.geojson" if annotations is not None else None
    note = "no annotation"
    if annotation is not None and annotation.is_file():
        try:
            reference, note = _ground_truth(annotation, entry)
            return SlideImages(slide_id, heatmap, reference, "ground truth", note)
        except PathattnError as err:
            note = f"ground truth not drawn: {err}"
    qc = tiles / "qc" / f"{slide_id}.png" if tiles is not None else None
    if qc is not None and qc.is_file():
        reference = image_uri(read_rgb(qc, "re-run 'pathattn tile --overwrite'"))
        return SlideImages(slide_id, heatmap, reference, "tiling QC", note)
    return SlideImages(slide_id, heatmap, None, "", note)
