"""The report's pictures of one volume: attention along the slice axis above the lesion, top-attention slices.

* **Strip**: for every slice ``k`` along the slice axis (``axis_index`` of the tiling), the attention weight of
  the rows crossing it (a slice row crosses one slice; a 3-D patch crosses ``patch_size_vox`` of them; the
  largest weight where several do), drawn as bars, above the lesion fraction of the same rows (a slice: the
  share of its plane in a label class; patches: the largest patch fraction). Attention weights are the
  softmax of the raw attention relative to the largest weight (1: the row the model weighs most), the
  weights the model pools with. Slices without a row (dropped by the tiling) are gaps.
* **Planes**: the slices of highest attention in the strip, drawn by :func:`pathattn.volumes.display.render_plane`
  on the volume prepared again from the image files recorded in the tiling (``volume_paths``, ``label_path``,
  ``prepare``), with the lesion outlined in red and, for patches, the patch of highest attention on that
  slice in yellow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from pathattn.errors import PathattnError
from pathattn.io.coords import PatchCoords
from pathattn.io.scores import PatchScores
from pathattn.report.figures import figure_uri, image_uri
from pathattn.scoremaps.normalise import normalise
from pathattn.volumes.display import LESION_COLOR, render_plane

if TYPE_CHECKING:  # preparing a volume imports MONAI and torch: only when a volume is drawn
    from pathattn.volumes.prepare import PreparedVolume

TOP_PLANES = 4
PLANE_HEIGHT = 220
PATCH_COLOR = (255, 200, 0)
AXIS_NAMES = ("sagittal", "coronal", "axial")


@dataclass
class Strip:
    """Attention and lesion along the slice axis of one volume.

    Args:
        attention: (K,) the largest attention weight of the rows crossing each slice; NaN where none does.
        lesion: (K,) the largest lesion fraction of those rows; None without a label volume.
        axis: the slice axis (0 sagittal, 1 coronal, 2 axial).
        coords: (N, 3) voxel corners of the rows.
        weights: (N,) attention weight of each row (NaN: masked).
        row_lesion: (N,) lesion fraction of each row; None without a label volume.
        size: (3,) voxels of a row along i, j, k (``patch_size_vox``; a slice: its plane and 1 along the axis).
    """

    attention: np.ndarray
    lesion: np.ndarray | None
    axis: int
    coords: np.ndarray
    weights: np.ndarray
    row_lesion: np.ndarray | None
    size: np.ndarray

    @property
    def extent(self) -> int:
        """Slices a row spans along the axis (1 for slices)."""
        return int(self.size[self.axis])

    def top(self, count: int = TOP_PLANES) -> list[tuple[int, int]]:
        """The slices to draw as (slice, row), highest weight first: the middle slice of each of the rows of
        highest weight, each slice once (ties: the lower row)."""
        finite = np.flatnonzero(np.isfinite(self.weights))
        chosen: dict[int, int] = {}
        for row in finite[np.lexsort((finite, -self.weights[finite]))]:
            chosen.setdefault(int(self.coords[row, self.axis]) + self.extent // 2, int(row))
            if len(chosen) == count:
                break
        return list(chosen.items())


@dataclass
class VolumePictures:
    """The pictures of one volume, as data URIs.

    Args:
        strip: the attention strip figure.
        planes: the top-attention slices: ``uri`` and ``caption``.
        note: why something is missing (empty when nothing is).
    """

    strip: str
    planes: list[dict[str, str]] = field(default_factory=list)
    note: str = ""


def profile(coords: np.ndarray, extent: int, values: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The largest value of the rows crossing each slice.

    Args:
        coords: (N, 3) voxel corners of the rows.
        extent: slices a row spans along ``axis`` (1 for slices).
        values: (N,) one value per row; non-finite rows are left out.
        length: K, the number of slices along ``axis``.
        axis: the slice axis.

    Returns:
        (K,) float64; NaN where no row crosses the slice.
    """
    best = np.full(length, -np.inf)
    for row in np.flatnonzero(np.isfinite(values)):
        start = int(coords[row, axis])
        window = slice(max(start, 0), min(start + extent, length))
        best[window] = np.maximum(best[window], values[row])
    return np.where(np.isfinite(best), best, np.nan)


def volume_strip(scores: PatchScores, tiling: PatchCoords | None) -> Strip:
    """The strip of a volume from its attention (one head, :attr:`PatchScores.values` (N,)) and its tiling.

    Raises:
        PathattnError: the scores lack the tiling attribute ``axis_index``.
    """
    axis = int(scores.attr("axis_index"))
    length = int(np.asarray(scores.attrs.get("shape", [0, 0, 0]))[axis]) or int(scores.coords[:, axis].max() + 1)
    size = np.asarray(scores.attrs.get("patch_size_vox", [1, 1, 1]), np.int64).reshape(3)
    extent = int(size[axis])
    weights = normalise(np.asarray(scores.values, np.float64), "softmax")
    row_lesion = lesion = None
    if tiling is not None and tiling.is_annotated and np.array_equal(tiling.coords, scores.coords):
        row_lesion = tiling.lesion_fraction()
        lesion = profile(scores.coords, extent, row_lesion, length, axis)
    attention = profile(scores.coords, extent, weights, length, axis)
    return Strip(attention, lesion, axis, scores.coords, weights, row_lesion, size)


def strip_figure(strip: Strip, top: list[int]) -> str:
    """Attention bars above the lesion fraction, slice by slice, the top slices marked: a PNG data URI."""
    fig = Figure(figsize=(7.5, 2.6))
    attention_ax, lesion_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 2)})
    index = np.arange(len(strip.attention))
    attention_ax.bar(index, np.nan_to_num(strip.attention), width=1.0, color="tab:blue")
    attention_ax.plot(top, strip.attention[top], "v", color="black", ms=5, label="slices shown")
    attention_ax.set(ylabel="attention", ylim=(0, 1.08))
    attention_ax.legend(loc="upper right", fontsize=7, frameon=False)
    if strip.lesion is not None:
        lesion_ax.fill_between(index, np.nan_to_num(strip.lesion), step="mid", color="tab:red", alpha=0.8)
        lesion_ax.set(ylim=(0, max(0.05, float(np.nanmax(strip.lesion, initial=0.0)) * 1.1)))
    else:
        lesion_ax.text(0.5, 0.5, "no label volume", ha="center", va="center", transform=lesion_ax.transAxes)
    lesion_ax.set(ylabel="lesion", xlabel=f"{AXIS_NAMES[strip.axis]} slice", xlim=(-0.5, len(index) - 0.5))
    fig.tight_layout()
    return figure_uri(fig)


def prepared_volume(attrs: dict[str, Any]) -> PreparedVolume:
    """The volume on the tiling's grid, prepared again from the files recorded in the coordinates attributes.

    Raises:
        PathattnError: the attributes lack the image paths, a file cannot be read, or the grid differs.
    """
    from pathattn.volumes.prepare import PrepareParams, prepare_volume, recorded_series

    try:
        paths = {m: Path(p) for m, p in json.loads(attrs["volume_paths"]).items()}
        params = PrepareParams.from_attrs(attrs)
    except (KeyError, TypeError, ValueError):
        raise PathattnError(
            "the tiling records no image paths (volume_paths, prepare); re-run 'pathattn tile'"
        ) from None
    label = Path(attrs["label_path"]) if attrs.get("label_path") else None
    volume = prepare_volume(
        paths, params, label_path=label, series=recorded_series(attrs), axis=int(attrs["axis_index"])
    )
    expected = tuple(int(v) for v in np.asarray(attrs.get("shape", volume.shape)).reshape(-1))
    if volume.shape != expected:
        raise PathattnError(f"the image files give a {volume.shape} grid but the tiling a {expected} one; "
                            "they changed since tiling, re-run 'pathattn tile'")  # fmt: skip
    return volume


def plane_pictures(volume: PreparedVolume, strip: Strip, top: list[tuple[int, int]],
                   patches: bool) -> list[dict[str, str]]:  # fmt: skip
    """The top slices as images: the lesion outlined in red, in patch mode the slice's patch in yellow.

    Args:
        volume: the prepared volume (its first channel is drawn).
        strip: the volume's strip.
        top: (slice, row) pairs (:meth:`Strip.top`).
        patches: the rows are 3-D patches (their box is outlined).
    """
    pictures = []
    for k, row in top:
        masks = [(volume.label > 0, LESION_COLOR)] if volume.label is not None else []
        caption = f"slice {k}: attention {strip.weights[row]:.2f}"
        if patches:
            box = np.zeros(volume.shape, bool)
            corner = strip.coords[row]
            box[tuple(slice(int(c), int(c + s)) for c, s in zip(corner, strip.size, strict=True))] = True
            masks.append((box, PATCH_COLOR))
            caption += f" (patch at {tuple(int(c) for c in corner)})"
        if strip.row_lesion is not None:
            caption += f", lesion {strip.row_lesion[row]:.0%}"
        image = render_plane(volume.image[0], volume.spacing, strip.axis, k, PLANE_HEIGHT, masks)
        pictures.append({"uri": image_uri(image), "caption": caption})
    return pictures


def volume_pictures(scores: PatchScores, tiling: PatchCoords | None, planes: int = TOP_PLANES) -> VolumePictures:
    """The strip and the top-attention slices of one volume; slices that cannot be drawn leave a note.

    Args:
        scores: the volume's attention (one head) with its tiling attributes.
        tiling: its coordinates file (label fractions), or None when the tiling is not in the results.
        planes: how many slices to draw.

    Raises:
        PathattnError: the scores lack the tiling attributes.
    """
    strip = volume_strip(scores, tiling)
    top = strip.top(planes)
    pictures = VolumePictures(strip_figure(strip, [k for k, _ in top]))
    if tiling is None:
        pictures.note = "no tiling in the results: lesion fractions not shown"
    elif strip.lesion is None:
        pictures.note = "no label volume (or the tiling does not match the attention): lesion not shown"
    try:
        patches = scores.attrs.get("mode") == "patches"
        pictures.planes = plane_pictures(prepared_volume(scores.attrs), strip, top, patches)
    except PathattnError as err:
        pictures.note = "; ".join(filter(None, [pictures.note, f"slices not drawn: {err}"]))
    return pictures
