"""Patches read straight from the slides in DataLoader workers (no patch images on disk).

One dataset spans every patch of every slide of a run, so one DataLoader (and its workers) serves the
whole batch of slides and reading overlaps the model across slide boundaries. Each worker opens its own
OpenSlide handles (never shared across processes) and returns uint8 patches: normalisation happens on
the device, so workers only read, decode and resize, and 4x fewer bytes cross to the device.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from pathattn.errors import PathattnError
from pathattn.io.slide import Slide

_OPEN_SLIDES = 4  # handles kept open per worker


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


class PatchDataset(Dataset):
    """Every patch of several slides, as ``(slide_index, patch_index, image, error)``.

    Args:
        slides: what to read from each slide.
        input_size: (height, width) the patches are resized to (the encoder's input size).

    Items:
        slide_index: int, position of the slide in ``slides``.
        patch_index: int, row of the patch in that slide's coordinates.
        image: (3, H, W) uint8 RGB.
        error: "" or the one-line reason the patch could not be read (the image is then zeros).
    """

    def __init__(self, slides: Sequence[SlidePatches], input_size: tuple[int, int]) -> None:
        self.slides = list(slides)
        self.input_size = input_size
        counts = [len(s.coords) for s in self.slides]
        self._slide_of = np.repeat(np.arange(len(counts)), counts)
        self._patch_of = np.concatenate([np.arange(n) for n in counts]) if counts else np.zeros(0, np.int64)
        self._handles: OrderedDict[int, Slide] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slide_of)

    def _slide(self, index: int) -> Slide:
        """The open slide, from this process's small cache of handles."""
        if index in self._handles:
            self._handles.move_to_end(index)
            return self._handles[index]
        source = self.slides[index]
        handle = Slide(source.slide_path, source.mpp0)
        self._handles[index] = handle
        if len(self._handles) > _OPEN_SLIDES:
            self._handles.popitem(last=False)[1].close()
        return handle

    def __getitem__(self, item: int) -> tuple[int, int, torch.Tensor, str]:
        slide_index, patch_index = int(self._slide_of[item]), int(self._patch_of[item])
        source = self.slides[slide_index]
        x, y = (int(v) for v in source.coords[patch_index])
        try:
            patch = self._slide(slide_index).read_patch((x, y), source.level, source.read_size, self.input_size)
            error = ""
        except PathattnError as err:
            patch, error = np.zeros((*self.input_size, 3), np.uint8), str(err)
        return slide_index, patch_index, torch.from_numpy(patch).permute(2, 0, 1), error

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = OrderedDict()  # handles never cross process boundaries
        return state


def worker_init(_: int) -> None:
    """Keep each DataLoader worker on one thread: the processes are the parallelism."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
