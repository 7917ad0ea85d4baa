"""Image WSOL inputs of ``pathattn evaluate wsol --maps``: score maps of image classifiers (e.g. CAMs) and their truth.

Files (the layout of the published evaluation code, as CSV with a header)::

    MAPS/{image_id}.npy        (H, W) score map of the image's true class (any range; min-max normalised here)
    boxes.csv                  image_id, x0, y0, x1, y1: inclusive boxes in image pixels, one row per box
    image_sizes.csv            image_id, width, height: to scale the boxes to the map (reference mode: to 224)
    MASKS/{image_id}.png       foreground (non-zero) mask; MASKS/{image_id}_ignore.png: pixels to ignore
    split.csv                  image_id, split (calibration or test)
    classification.csv         image_id, correct (1 or 0): the top-1 prediction, for Top-1 Loc

Sizes: a mask must have the map's size (default mode), unless ``resize_maps`` resizes each map to its mask
(bilinear, before normalisation). Reference mode resizes masks to 224 x 224 (nearest neighbour) and needs
224 x 224 maps, as the published code does.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pathattn.errors import PathattnError
from pathattn.evaluate import protocol
from pathattn.evaluate.outputs import MethodResult, method_rows, methods_block, result_panels, write_outputs
from pathattn.evaluate.protocol import Sample
from pathattn.scoremaps import wsol

SPLITS = ("calibration", "test")


def read_csv(path: Path, option: str, required: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file with a header.

    Raises:
        PathattnError: the file is missing, unreadable or lacks a required column.
    """
    if not path.is_file():
        raise PathattnError(f"{option} file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        reason = "permission denied" if isinstance(err, PermissionError) else f"{type(err).__name__}: {err}"
        raise PathattnError(f"{option} {path} cannot be read ({reason}); pass a readable UTF-8 CSV file") from None
    missing = [c for c in required if rows and c not in rows[0]]
    if not rows or missing:
        raise PathattnError(f"{option} {path} needs a header with the columns {', '.join(required)} and rows")
    return rows


def read_boxes(path: Path) -> dict[str, np.ndarray]:
    """Boxes by image id: (K, 4) float64 ``x0, y0, x1, y1`` (inclusive).

    Raises:
        PathattnError: a value is not a number, or a box has x1 < x0 or y1 < y0.
    """
    boxes: dict[str, list[list[float]]] = {}
    for row in read_csv(path, "--boxes", ("image_id", "x0", "y0", "x1", "y1")):
        try:
            box = [float(row[k]) for k in ("x0", "y0", "x1", "y1")]
        except ValueError:
            raise PathattnError(f"--boxes {path}: image {row['image_id']} has a box that is not numbers") from None
        if box[2] < box[0] or box[3] < box[1]:
            raise PathattnError(f"--boxes {path}: image {row['image_id']} has a box with x1 < x0 or y1 < y0")
        boxes.setdefault(row["image_id"], []).append(box)
    return {k: np.asarray(v, np.float64) for k, v in boxes.items()}


def read_column(path: Path, option: str, column: str) -> dict[str, str]:
    """One column of a CSV file by image id."""
    return {row["image_id"]: row[column] for row in read_csv(path, option, ("image_id", column))}


def load_map(path: Path, mask_shape: tuple[int, int] | None, resize: bool, mode: wsol.Mode) -> np.ndarray:
    """A score map, resized to ``mask_shape`` when asked, normalised.

    Raises:
        PathattnError: unreadable, not 2-D, NaN (default mode), or another size than its mask.
    """
    try:
        score = np.asarray(np.load(path), np.float64)
    except (OSError, ValueError) as err:
        raise PathattnError(f"{path} is not a readable .npy score map ({err})") from None
    if score.ndim != 2:
        raise PathattnError(f"{path}: a score map must be 2-D (H, W); got shape {score.shape}")
    if resize and mask_shape is not None and score.shape != mask_shape:
        score = cv2.resize(score, mask_shape[::-1], interpolation=cv2.INTER_LINEAR)
    if mask_shape is not None and score.shape != mask_shape:
        raise PathattnError(
            f"{path}: map {score.shape[1]}x{score.shape[0]} but mask {mask_shape[1]}x{mask_shape[0]} px; "
            "save maps at the mask size or pass --resize-maps"
        )
    try:
        return wsol.normalize_map(score, mode=mode)
    except ValueError as err:
        raise PathattnError(f"{path}: {err}") from None


def read_mask(path: Path, mode: wsol.Mode) -> np.ndarray:
    """A PNG mask as bool (H, W); reference mode resizes it to 224 x 224 (nearest neighbour)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise PathattnError(f"{path} is not a readable image mask")
    if mode == "reference":
        mask = cv2.resize(mask, (wsol.REFERENCE_SIZE, wsol.REFERENCE_SIZE), interpolation=cv2.INTER_NEAREST)
    return mask > 0


@dataclass(frozen=True)
class ImageTruth:
    """Ground truth files of an image evaluation (module docstring)."""

    boxes: Mapping[str, np.ndarray] | None = None
    sizes: Mapping[str, tuple[int, int]] | None = None
    masks: Path | None = None
    correct: Mapping[str, bool] | None = None


def map_shape(path: Path) -> tuple[int, int]:
    """The (H, W) of a ``.npy`` map, read from its header only."""
    try:
        return tuple(np.load(path, mmap_mode="r").shape)  # type: ignore[return-value]
    except (OSError, ValueError) as err:
        raise PathattnError(f"score map missing or unreadable: {path} ({err})") from None


def image_sample(image_id: str, maps: Path, truth: ImageTruth, resize: bool, mode: wsol.Mode) -> Sample:
    """One image's :class:`~pathattn.evaluate.protocol.Sample`, boxes scaled to its map.

    Raises:
        PathattnError: a mask is unreadable, or the image lacks a box or a size.
    """
    mask = ignore = None
    if truth.masks is not None:
        mask = read_mask(truth.masks / f"{image_id}.png", mode)
        ignore_file = truth.masks / f"{image_id}_ignore.png"
        ignore = read_mask(ignore_file, mode) if ignore_file.is_file() else None
    boxes = None
    if truth.boxes is not None:
        boxes = truth.boxes.get(image_id, np.zeros((0, 4)))
        if not len(boxes):
            raise PathattnError(f"--boxes has no box for image {image_id}; every image needs at least one")
        shape = mask.shape if mask is not None and resize else map_shape(maps / f"{image_id}.npy")
        if truth.sizes is not None:
            if image_id not in truth.sizes:
                raise PathattnError(f"--image-sizes has no size for image {image_id}")
            boxes = wsol.scale_boxes(boxes, truth.sizes[image_id], shape[::-1], mode)
        elif mode == "reference":
            raise PathattnError("reference mode scales boxes to 224 x 224 from the image sizes: pass --image-sizes")
    correct = None if truth.correct is None else truth.correct.get(image_id)
    return Sample(image_id, truth=mask, ignore=ignore, boxes=boxes, correct=correct)


class ScoreMaps(Mapping[str, np.ndarray]):
    """Normalised maps ``MAPS/{image_id}.npy``, each loaded when asked for (never all in memory).

    Args:
        folder: the maps folder.
        samples: the images' samples (a map is checked against, or resized to, its mask).
        resize: resize maps to their masks.
        mode: the metric conventions.
    """

    def __init__(self, folder: Path, samples: Mapping[str, Sample], resize: bool, mode: wsol.Mode) -> None:
        self.folder, self.samples, self.resize, self.mode = folder, samples, resize, mode

    def __getitem__(self, image_id: str) -> np.ndarray:
        truth = self.samples[image_id].truth
        return load_map(self.folder / f"{image_id}.npy", None if truth is None else truth.shape, self.resize, self.mode)

    def __iter__(self) -> Iterator[str]:
        return iter(self.samples)

    def __len__(self) -> int:
        return len(self.samples)


def read_truth(boxes: Path | None, sizes: Path | None, masks: Path | None, classification: Path | None) -> ImageTruth:
    """The ground truth files named on the command line.

    Raises:
        PathattnError: neither boxes nor masks, or a file is malformed.
    """
    if boxes is None and masks is None:
        raise PathattnError("image evaluation needs --boxes or --masks (or both)")
    if masks is not None and not masks.is_dir():
        raise PathattnError(f"--masks folder not found: {masks}")
    size_map = None
    if sizes is not None:
        rows = read_csv(sizes, "--image-sizes", ("image_id", "width", "height"))
        try:
            size_map = {r["image_id"]: (int(float(r["width"])), int(float(r["height"]))) for r in rows}
        except ValueError:
            raise PathattnError(f"--image-sizes {sizes}: a width or height is not a number") from None
    correct = None
    if classification is not None:
        flags = read_column(classification, "--classification", "correct")
        correct = {image_id: flag.lower() in ("1", "true") for image_id, flag in flags.items()}
    return ImageTruth(read_boxes(boxes) if boxes else None, size_map, masks, correct)


@dataclass(frozen=True)
class ImageWsolJob:
    """One image evaluation (the options of ``pathattn evaluate wsol --maps``; docs/evaluate.md).

    Args:
        maps: folder of ``{image_id}.npy`` score maps.
        out: output folder.
        boxes, image_sizes, masks, classification: the ground truth files (module docstring).
        split: ``image_id, split`` file; else ``calibration_ids`` calibrate; else ``n_calibration`` drawn (seeded).
        calibration_ids: the held-out, fully annotated images.
        n_calibration: how many calibration images to draw.
        seed: the draw's seed.
        resize_maps: resize maps to their masks instead of refusing other sizes.
        mode: metric conventions.
        step: threshold step.
        baselines: baselines scored beside the maps at their sizes (``uniform``: a constant map).
    """

    maps: Path
    out: Path
    boxes: Path | None = None
    image_sizes: Path | None = None
    masks: Path | None = None
    classification: Path | None = None
    split: Path | None = None
    calibration_ids: tuple[str, ...] | None = None
    n_calibration: int = 6
    seed: int = 0
    resize_maps: bool = False
    mode: wsol.Mode = "default"
    step: float = 0.001
    baselines: tuple[str, ...] = ("uniform",)

    def __post_init__(self) -> None:
        unknown = [b for b in self.baselines if b != "uniform"]
        if unknown:
            raise PathattnError(f"--baselines {unknown[0]}: images have the uniform baseline only (few_shot needs "
                                "patch features of slides or volumes)")  # fmt: skip


def map_folders(maps: Path) -> dict[str, Path]:
    """Method name to its folder of ``{image_id}.npy`` maps: ``maps`` itself (the method ``maps``), or each of its
    subfolders that holds maps (``pathattn cams``' ``maps/``: one folder per method).

    Raises:
        PathattnError: the folder is missing or holds no maps.
    """
    if not maps.is_dir():
        raise PathattnError(f"--maps folder not found: {maps}; pass a folder of {{image_id}}.npy score maps")
    if any(maps.glob("*.npy")):
        return {"maps": maps}
    folders = {p.name: p for p in sorted(maps.iterdir()) if p.is_dir() and any(p.glob("*.npy"))}
    if not folders:
        raise PathattnError(f"--maps {maps} holds no {{image_id}}.npy score maps, nor folders of them (one per "
                            "method, as 'pathattn cams' writes)")  # fmt: skip
    return folders


def image_splits(ids: list[str], job: ImageWsolJob, folder: Path) -> dict[str, list[str]]:
    """The calibration and test images (by the split file, the named images, or a seeded draw) of ``folder``.

    Raises:
        PathattnError: an unknown split name or image, or an empty split.
    """
    if job.split is not None:
        assigned = read_column(job.split, "--split", "split")
        bad = sorted(set(assigned.values()) - set(SPLITS))
        if bad:
            raise PathattnError(f"--split {job.split}: unknown split(s) {bad}; use calibration or test")
        splits = {name: sorted(i for i, v in assigned.items() if v == name) for name in SPLITS}
    else:
        chosen = job.calibration_ids
        if chosen is None:
            chosen = tuple(np.random.default_rng(job.seed).permutation(ids)[: job.n_calibration].tolist())
        splits = {"calibration": sorted(set(chosen)), "test": sorted(set(ids) - set(chosen))}
    missing = sorted(set(splits["calibration"] + splits["test"]) - set(ids))
    if missing:
        raise PathattnError(f"no score map in {folder} for image(s) {missing[:5]}")
    if not (splits["calibration"] and splits["test"]):
        raise PathattnError("both the calibration and the test split need images")
    return splits


class UniformMaps(ScoreMaps):
    """The uniform baseline: the same score everywhere (normalised: zeros), at each image's mask or map size."""

    def __getitem__(self, image_id: str) -> np.ndarray:
        truth = self.samples[image_id].truth
        return np.zeros(truth.shape if truth is not None else map_shape(self.folder / f"{image_id}.npy"))


def score_method(
    folder: Path, job: ImageWsolJob, truth: ImageTruth, uniform: bool = False
) -> tuple[MethodResult, dict]:
    """One method's maps (or, ``uniform``, the baseline at their sizes) scored on both splits; and the splits.

    Raises:
        PathattnError: bad inputs (module docstring).
    """
    splits = image_splits(sorted(p.stem for p in folder.glob("*.npy")), job, folder)
    thresholds = wsol.threshold_grid(job.step)
    scores = {}
    for name, members in splits.items():
        samples = {i: image_sample(i, folder, truth, job.resize_maps, job.mode) for i in members}
        maps = (UniformMaps if uniform else ScoreMaps)(folder, samples, job.resize_maps, job.mode)
        try:
            scores[name] = protocol.score_split(maps, samples, thresholds, job.mode)
        except ValueError as err:
            raise PathattnError(str(err)) from None
    operating = protocol.operating_point(scores["calibration"])
    return MethodResult(scores["calibration"], scores["test"], operating), splits


def run_image_wsol(job: ImageWsolJob) -> dict[str, Any]:
    """Calibrate each method's thresholds on the calibration images, score the test images, write the outputs.

    Raises:
        PathattnError: bad inputs (module docstring).
    """
    folders = map_folders(job.maps)
    clash = sorted(set(folders) & set(job.baselines))
    if clash:
        raise PathattnError(f"--maps {job.maps} has a folder named {clash[0]}, a baseline's name; rename the folder "
                            "or leave the baseline out with --baselines")  # fmt: skip
    truth = read_truth(job.boxes, job.image_sizes, job.masks, job.classification)
    results, summary, per_image, splits = {}, [], [], {}
    jobs = [(name, folder, False) for name, folder in folders.items()]
    jobs += [(name, next(iter(folders.values())), True) for name in job.baselines]
    for name, folder, uniform in jobs:
        results[name], splits = score_method(folder, job, truth, uniform)
        rows, images = method_rows(name, results[name], splits, id_column="image_id")
        summary += rows
        per_image += images
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()}
    metrics = {"settings": settings, "splits": splits, "methods": methods_block(summary)}
    write_outputs(job.out, metrics, summary, ("per_image.csv", per_image), result_panels(results))
    return metrics
