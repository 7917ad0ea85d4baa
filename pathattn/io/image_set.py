"""Labelled image sets for image classifiers: the images in memory, with patient, centre and (optional) masks.

Two sources give an :class:`ImageSet` (stage-neutral: ``pathattn classify`` trains on it, ``pathattn cams``
explains it):

* the 2-D slices of a volume tiling (:func:`pathattn.volumes.slice_set.read_slice_set`), labelled by whether the
  slice crosses a lesion of the label volume, with the lesion mask of each slice;
* an image sheet (:func:`read_image_sheet`): a CSV/TSV with ``path`` (or ``image_path``) and ``label``, and
  optionally ``image_id`` (default: the file name without suffix), ``patient_id`` (default: the image id)
  and ``centre`` (default: one centre for all). Relative paths are relative to the sheet's folder.

**Sizes and channels** (sheet images): every image is resized to the set's size (area when shrinking on both
sides, else bilinear; the aspect is not kept, as for volume slices); a grey image is repeated to three
channels; RGB is kept; 16-bit images are scaled to 8 bits (/ 257). Images with an alpha channel or other
channel counts are refused, naming the file. Images are held as uint8 (N, 3, H, W): N x 3 x H x W bytes of
memory (50,000 slices at 224 x 224: 7.5 GB).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from pathattn.errors import PathattnError
from pathattn.io.ids import check_id
from pathattn.io.samples import read_table

PATH_COLUMNS = ("path", "image_path")
_SHOW = 5  # files named in an error before "..."


@dataclass(frozen=True)
class ImageSet:
    """Images with one class each, and where they come from.

    Args:
        ids: (N,) unique image ids (a slice: ``{volume_id}_k{index:04d}``, with its axis letter).
        images: (N, 3, H, W) uint8.
        labels: (N,) int64 class index into ``classes``.
        classes: class names in index order.
        patients: (N,) patient id of each image.
        centres: (N,) centre of each image (``""``: none given).
        sources: (N,) the volume id or file each image comes from.
        masks: (N, H, W) bool lesion masks on the image pixels, or None.
        fractions: (N,) lesion fraction of each slice (volumes), or None.
    """

    ids: tuple[str, ...]
    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    patients: tuple[str, ...]
    centres: tuple[str, ...]
    sources: tuple[str, ...]
    masks: np.ndarray | None = None
    fractions: np.ndarray | None = None
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageSet:
        """The images at ``index``, in that order."""
        index = np.asarray(index, np.int64)
        pick = lambda values: tuple(values[i] for i in index)  # noqa: E731 - one line, used five times
        return replace(
            self, ids=pick(self.ids), images=self.images[index], labels=self.labels[index],
            patients=pick(self.patients), centres=pick(self.centres), sources=pick(self.sources),
            masks=None if self.masks is None else self.masks[index],
            fractions=None if self.fractions is None else self.fractions[index],
        )  # fmt: skip

    def select(self, ids: Sequence[str]) -> ImageSet:
        """The images named by ``ids``, in that order.

        Raises:
            PathattnError: an id that is not in the set.
        """
        where = {image_id: i for i, image_id in enumerate(self.ids)}
        missing = [i for i in ids if i not in where]
        if missing:
            shown = ", ".join(missing[:_SHOW])
            raise PathattnError(f"{len(missing)} image ids are not in the image set (e.g. {shown}); use the same "
                                "--tiles or --images as the run")  # fmt: skip
        return self.subset([where[i] for i in ids])


def check_classes(labels: np.ndarray, classes: Sequence[str], where: str) -> None:
    """Refuse an image set with fewer than two classes present.

    Raises:
        PathattnError: naming ``where`` and the class present.
    """
    present = sorted({classes[int(v)] for v in np.unique(labels)})
    if len(present) < 2:
        raise PathattnError(f"{where}: every image is of class {', '.join(present) or 'none'}; a classifier needs "
                            "images of at least two classes")  # fmt: skip


def to_rgb_uint8(image: np.ndarray, size: Sequence[int], path: Path) -> np.ndarray:
    """An image read by OpenCV (H, W) or (H, W, C) as (3, height, width) uint8 RGB (module docstring).

    Raises:
        PathattnError: an alpha channel, another channel count, or a dtype other than 8 or 16 bits.
    """
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    if image.dtype != np.uint8:
        raise PathattnError(f"{path} holds {image.dtype} pixels; save it as an 8- or 16-bit PNG, JPEG or TIFF")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels not in (1, 3):
        raise PathattnError(f"{path} has {channels} channels; give grey or RGB images (save it without alpha)")
    rgb = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2) if channels == 1 else image[..., ::-1]
    height, width = (int(v) for v in size)
    if rgb.shape[:2] != (height, width):
        shrink = rgb.shape[0] >= height and rgb.shape[1] >= width
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def _path_column(columns: Sequence[str], sheet: Path) -> str:
    for name in PATH_COLUMNS:
        if name in columns:
            return name
    raise PathattnError(f"--images {sheet} has no 'path' column (or 'image_path'); add one with the image files")


def read_image_sheet(sheet: str | os.PathLike[str], size: Sequence[int]) -> ImageSet:
    """The images of an image sheet (module docstring), resized to ``size``.

    Args:
        sheet: CSV/TSV with ``path`` and ``label`` (and optionally ``image_id``, ``patient_id``, ``centre``).
        size: (height, width) of the set.

    Raises:
        PathattnError: a missing column or label, duplicate ids, files that do not exist (all listed) or cannot
            be read, an image of an unusable kind.
    """
    sheet = Path(sheet)
    if not sheet.is_file():
        raise PathattnError(f"--images file not found: {sheet}; pass a CSV with path and label columns")
    rows = read_table(sheet)
    column = _path_column(list(rows[0]), sheet)
    if "label" not in rows[0]:
        raise PathattnError(f"--images {sheet} has no 'label' column; add the class of every image")
    paths = [(sheet.parent / r[column]).resolve() if r.get(column) else None for r in rows]
    missing = [f"line {i + 2}: {p or '(blank)'}" for i, p in enumerate(paths) if p is None or not p.is_file()]
    if missing:
        shown = "; ".join(missing[:_SHOW]) + ("; ..." if len(missing) > _SHOW else "")
        raise PathattnError(f"--images {sheet}: {len(missing)} labelled images do not exist ({shown}); fix the paths "
                            "or remove the rows")  # fmt: skip
    ids = [r.get("image_id") or p.name.split(".")[0] for r, p in zip(rows, paths, strict=True)]
    for image_id in ids:
        check_id(image_id, "image", f"--images {sheet}")
    if len(set(ids)) < len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        shown = ", ".join(twice[:_SHOW])
        raise PathattnError(f"--images {sheet}: image ids {shown} appear twice; give each image its own image_id")
    blank = [ids[i] for i, r in enumerate(rows) if not r["label"]]
    if blank:
        raise PathattnError(f"--images {sheet}: images {', '.join(blank[:_SHOW])} have no label; label every image")
    classes = tuple(sorted({r["label"] for r in rows}))
    labels = np.array([classes.index(r["label"]) for r in rows], np.int64)
    check_classes(labels, classes, f"--images {sheet}")
    images = np.stack([_read_image(p, size) for p in paths])
    return ImageSet(
        tuple(ids), images, labels, classes, tuple(r.get("patient_id") or i for r, i in zip(rows, ids, strict=True)),
        tuple(r.get("centre", "") for r in rows), tuple(str(p) for p in paths),
    )  # fmt: skip


def _read_image(path: Path, size: Sequence[int]) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise PathattnError(f"{path} cannot be read as an image (truncated, or not PNG/JPEG/TIFF); replace it")
    return to_rgb_uint8(image, size, path)
