"""Patches read straight from the slides and volumes in DataLoader workers (no patch images on disk).

One dataset spans every row of every slide or volume of a run, so one DataLoader (and its workers) serves
the whole batch and reading overlaps the model across item boundaries. Each item has a *read plan*, chosen
by its coordinates file's ``coord_space``: :class:`SlidePatches` (level-0 pixels of a slide) or
:class:`~pathattn.extract.volume_data.VolumePatches` (voxels of a volume). A plan opens its handle (an
OpenSlide handle; a prepared volume), which each worker caches (never shared across processes: up to 4
slides, 1 volume), and reads row r from it. Images leave the workers as uint8 (normalised on the device, so
workers only read, decode and resize, and 4x fewer bytes cross to the device); 3-D patches as float32.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from pathattn.batch import one_line
from pathattn.errors import PathattnError
from pathattn.extract.resume import read_plan
from pathattn.extract.volume_data import VolumePatches, check_encoder, plan_volume, volume_provenance
from pathattn.io.coords import PatchCoords, is_volume_attrs
from pathattn.io.samples import slide_paths
from pathattn.io.slide import Slide

if TYPE_CHECKING:
    from pathattn.extract.encoders import Encoder

Source = Path | Mapping[str, Path]
"""Where an item's pixels are: a slide file, or modality → image file of a volume."""


class ReadPlan(Protocol):
    """What a dataset needs of an item's plan (:class:`SlidePatches`, :class:`VolumePatches`)."""

    max_open: ClassVar[int]  # handles of this kind a worker keeps open
    pinned: ClassVar[bool]  # costly to open: every row read by one worker (:func:`batch_order`)

    def __len__(self) -> int: ...
    def item_shape(self, input_size: Sequence[int]) -> tuple[int, ...]: ...
    def blank(self, input_size: Sequence[int]) -> torch.Tensor: ...
    def open(self) -> Any: ...
    def read(self, handle: Any, row: int, input_size: Sequence[int]) -> torch.Tensor: ...


@dataclass(frozen=True)
class SlidePatches:
    """The patches of one slide to read.

    Args:
        slide_path: the slide file.
        coords: (N, 2) int64 level-0 top-left x, y.
        level: pyramid level to read from.
        read_size: patch side in pixels at ``level``.
        mpp0: level-0 µm/px recorded at tiling (used if the slide's metadata has none).
    """

    slide_path: Path
    coords: np.ndarray
    level: int
    read_size: int
    mpp0: float | None = None

    max_open: ClassVar[int] = 4
    pinned: ClassVar[bool] = False

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def source(self) -> str:
        """The slide file, for the manifest."""
        return str(self.slide_path)

    def item_shape(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """(3, H, W)."""
        return (3, *input_size)

    def blank(self, input_size: Sequence[int]) -> torch.Tensor:
        """Zeros in place of a patch that cannot be read."""
        return torch.zeros(self.item_shape(input_size), dtype=torch.uint8)

    def open(self) -> Slide:
        """The slide, opened."""
        return Slide(self.slide_path, self.mpp0)

    def read(self, slide: Slide, row: int, input_size: Sequence[int]) -> torch.Tensor:
        """Patch ``row``: (3, H, W) uint8 RGB resized to ``input_size``."""
        x, y = (int(v) for v in self.coords[row])
        patch = slide.read_patch((x, y), self.level, self.read_size, tuple(input_size))
        return torch.from_numpy(patch).permute(2, 0, 1)


class PatchDataset(Dataset):
    """Every row of several slides or volumes, as ``(item_index, row, image, error)``.

    Args:
        plans: what to read from each slide or volume.
        input_size: (height, width) images are resized to (the encoder's input size; 3-D patches are not).

    Items:
        item_index: int, position of the plan in ``plans``.
        row: int, row of the patch in that item's coordinates.
        image: (3, H, W) uint8 RGB, or (C, Pi, Pj, Pk) float32 for a 3-D patch.
        error: "" or the one-line reason the row could not be read (the image is then zeros, and the item
            fails).
    """

    def __init__(self, plans: Sequence[ReadPlan], input_size: Sequence[int]) -> None:
        self.plans = list(plans)
        self.input_size = tuple(input_size)
        counts = [len(p) for p in self.plans]
        self._plan_of = np.repeat(np.arange(len(counts)), counts)
        self._row_of = np.concatenate([np.arange(n) for n in counts]) if counts else np.zeros(0, np.int64)
        self._handles: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plan_of)

    def _handle(self, index: int) -> Any:
        """The open handle of plan ``index`` (or the exception opening it raised), from this process's cache."""
        if index in self._handles:
            self._handles.move_to_end(index)
            return self._handles[index]
        plan = self.plans[index]
        same_kind = [k for k in self._handles if type(self.plans[k]) is type(plan)]
        for key in same_kind[: max(0, len(same_kind) - plan.max_open + 1)]:  # oldest first, before opening
            handle = self._handles.pop(key)
            if hasattr(handle, "close"):
                handle.close()
        try:
            handle = plan.open()
        except Exception as err:  # noqa: BLE001 - kept: every row of this item fails with it, without retrying
            handle = err
        self._handles[index] = handle
        return handle

    def __getitem__(self, item: int) -> tuple[int, int, torch.Tensor, str]:
        index, row = int(self._plan_of[item]), int(self._row_of[item])
        plan = self.plans[index]
        handle = self._handle(index)
        if isinstance(handle, Exception):  # the item could not be opened: every row fails with that reason
            return index, row, plan.blank(self.input_size), one_line(handle)
        try:
            image, error = plan.read(handle, row, self.input_size), ""
        except Exception as err:  # noqa: BLE001 - a row that cannot be read fails its item, not the batch
            image, error = plan.blank(self.input_size), one_line(err)
        return index, row, image, error

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()  # handles never cross process boundaries
        return state


def batch_order(plans: Sequence[ReadPlan], input_size: Sequence[int], batch_size: int, workers: int) -> list[list[int]]:
    """The dataset indices of each batch.

    Slides only: consecutive rows, batches crossing slide boundaries. With volumes (costly to prepare, one
    kept per worker), every item goes to one reading process (the largest first, to the least loaded one), each
    process's rows are cut into batches that never mix item shapes, and the processes' batches are interleaved:
    the DataLoader hands batch b to worker b mod W, so each volume is prepared by one worker only (a few may be
    prepared twice at the very end, when the processes' shares differ).
    """
    counts = [len(p) for p in plans]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    if not any(p.pinned for p in plans):
        return [list(range(s, min(s + batch_size, starts[-1]))) for s in range(0, int(starts[-1]), batch_size)]
    queues: list[list[int]] = [[] for _ in range(max(1, workers))]
    load = [0] * len(queues)
    for index in sorted(range(len(plans)), key=lambda i: -counts[i]):
        target = int(np.argmin(load))
        queues[target].append(index)
        load[target] += counts[index]
    per_worker = []
    for queue in queues:
        batches: list[list[int]] = []
        shape: tuple[int, ...] | None = None
        for index in sorted(queue):
            item_shape = plans[index].item_shape(input_size)
            for item in range(starts[index], starts[index + 1]):
                if not batches or len(batches[-1]) == batch_size or item_shape != shape:
                    batches.append([])
                    shape = item_shape
                batches[-1].append(item)
        per_worker.append(batches)
    longest = max(len(b) for b in per_worker)
    return [b[n] for n in range(longest) for b in per_worker if n < len(b)]


def sample_sources(samples: str | os.PathLike[str] | None) -> dict[str, Source]:
    """Item id → its images from a sample sheet (empty without one): for slides or volumes that moved since
    tiling. A volume sheet (``<modality>_path`` columns) gives modality → image per volume."""
    from pathattn.io.volume_samples import is_volume_sheet, read_volume_sheet

    if samples and is_volume_sheet(samples):
        return {entry.volume_id: dict(entry.paths) for entry in read_volume_sheet(samples)}
    return dict(slide_paths(samples))


def recorded_source(coords: PatchCoords) -> str:
    """The slide or images a coordinates file was tiled from, as recorded (for the manifest)."""
    if not is_volume_attrs(coords.attrs):
        return str(coords.attrs.get("slide_path", ""))
    try:
        return ";".join(str(p) for p in json.loads(str(coords.attrs.get("volume_paths"))).values())
    except (ValueError, AttributeError):
        return ""


def _check_bounds(coords: PatchCoords, slide: Slide, level: int, read_size: int, coords_file: Path) -> None:
    """Refuse coordinates whose patches leave the slide (they would be embedded as blank reads).

    Raises:
        PathattnError: a patch is not inside the slide's level-0 bounds.
    """
    side = read_size * slide.level_downsamples[level]
    width, height = slide.dimensions
    xy = coords.coords
    outside = np.flatnonzero((xy < 0).any(axis=1) | (xy[:, 0] + side > width + 1) | (xy[:, 1] + side > height + 1))
    if len(outside):
        x, y = (int(v) for v in xy[outside[0]])
        raise PathattnError(
            f"{coords_file}: {len(outside)} of {len(xy)} patches lie outside the {width}x{height} px slide "
            f"{slide.path} (the first at level-0 x={x}, y={y}); the coordinates were not made for this slide: "
            "tile it again"
        )


def plan_slide(coords: PatchCoords, slide_path: Path, coords_file: Path) -> SlidePatches:
    """The read plan of a slide, after checking that it is the slide the coordinates were made for."""
    attrs = coords.attrs
    mpp0 = attrs.get("mpp_level0")
    level, read_size = read_plan(coords)
    with Slide(slide_path, float(mpp0) if mpp0 else None) as slide:
        expected = (attrs.get("level0_width"), attrs.get("level0_height"))
        if None not in expected and tuple(int(v) for v in expected) != slide.dimensions:
            raise PathattnError(
                f"{slide_path} is {slide.dimensions[0]}x{slide.dimensions[1]} px but {coords_file} was tiled from a "
                f"{expected[0]}x{expected[1]} px slide; point to the right slide (--samples) or tile again"
            )
        if not 0 <= level < slide.level_count:
            raise PathattnError(f"{coords_file} reads level {level} but {slide_path} has {slide.level_count} levels")
        if read_size < 1:
            raise PathattnError(f"{coords_file} records no patch size (read_size or patch_size); tile it again")
        _check_bounds(coords, slide, level, read_size, coords_file)
    return SlidePatches(slide_path, coords.coords, level, read_size, float(mpp0) if mpp0 else None)


def make_plan(
    coords: PatchCoords, coords_file: Path, encoder: Encoder, source: Source | None = None
) -> SlidePatches | VolumePatches:
    """The read plan of an item, by its coordinates' ``coord_space`` (slide pixels or volume voxels).

    Args:
        coords: the item's coordinates file, read.
        coords_file: its path (for messages).
        encoder: the encoder the rows are for.
        source: the item's slide file or volume images from ``--samples``, overriding those recorded at tiling.

    Raises:
        PathattnError: the encoder does not fit the rows, or the slide or images cannot be read as tiled.
    """
    item_id = coords_file.stem
    if is_volume_attrs(coords.attrs):
        if source is not None and not isinstance(source, Mapping):
            raise PathattnError(f"--samples gives a slide_path for volume {item_id}; pass a volume sheet with "
                                "<modality>_path columns (ct_path, pet_path)")  # fmt: skip
        return plan_volume(coords, coords_file, encoder, source)
    check_encoder(encoder, coords.attrs, coords_file)
    if isinstance(source, Mapping):
        raise PathattnError(f"--samples gives volume images for slide {item_id}; pass a sheet with a slide_path column")
    recorded = str(coords.attrs.get("slide_path", ""))
    if source is None and not recorded:
        raise PathattnError(f"{coords_file} does not name its slide; pass --samples with a slide_path column")
    return plan_slide(coords, source or Path(recorded), coords_file)


def provenance_extras(coords: PatchCoords) -> dict[str, object]:
    """The feature file's attributes that describe the slide's resolution or the volume's grid."""
    attrs = coords.attrs
    if is_volume_attrs(coords.attrs):
        return volume_provenance(attrs)
    return {
        "target_mpp": attrs.get("target_mpp", float("nan")),
        "mpp_level0": attrs.get("mpp_level0", float("nan")),
        "patch_size": attrs.get("target_patch_size", attrs.get("patch_size", -1)),
        "patch_size_level0": attrs.get("patch_size_level0", -1),
    }
