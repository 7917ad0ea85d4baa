"""Batches of an image set for the image classifiers: augmentation, centre indices, class balance.

Images stay uint8 until the system normalises them on the device (:class:`~pathattn.train.image.system.
ImageSystem`), each with the statistics of its centre (``centres: aware``) or ImageNet's (``agnostic``).
The ``light`` augmentation is the MEDUSA authors' set, on the uint8 tensor with torchvision: a random
affine map (rotation within +-5 degrees, translation up to 5 % of each side, scale 0.9-1.1, shear within
+-5 degrees, bilinear, zero fill) and a horizontal flip with probability 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from pathattn.io.image_set import ImageSet
from pathattn.models.normalisation import IMAGENET_MEAN, IMAGENET_STD
from pathattn.train.image.config import Augment, Balance, CentreMode

POOLED = "*"  # the statistics row of a centre the training images did not have


def light_augmentation() -> torch.nn.Module:
    """The ``light`` augmentation (module docstring)."""
    from torchvision.transforms import InterpolationMode, v2

    return v2.Compose([
        v2.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.9, 1.1), shear=5,
                        interpolation=InterpolationMode.BILINEAR),
        v2.RandomHorizontalFlip(0.5),
    ])  # fmt: skip


class ImageDataset(Dataset):
    """Items ``{"image": (3, H, W) uint8, "label", "centre", "index"}`` of an image set.

    Args:
        images: the set.
        centre_index: centre name → row of the normalisation table.
        augment: ``light`` or ``none``.
    """

    def __init__(self, images: ImageSet, centre_index: Mapping[str, int], augment: Augment = "none") -> None:
        self.images = images
        self.centres = torch.tensor([centre_index.get(c, centre_index[POOLED]) for c in images.centres])
        self.transform = light_augmentation() if augment == "light" else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(self.images.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "label": torch.tensor(int(self.images.labels[index])),
                "centre": self.centres[index], "index": torch.tensor(index)}  # fmt: skip


def normalisation_table(train: ImageSet, mode: CentreMode) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The rows of per-centre channel statistics the system normalises with.

    Args:
        train: the training images.
        mode: ``agnostic`` (one row: ImageNet mean and std) or ``aware`` (one row per training centre: the mean
            and std of its images' channels in [0, 1], and a pooled row for centres never seen).

    Returns:
        Centre names (the last is :data:`POOLED`), means (K, 3) and stds (K, 3).
    """
    if mode == "agnostic":
        return [POOLED], np.asarray([IMAGENET_MEAN]), np.asarray([IMAGENET_STD])
    names = sorted(set(train.centres))
    groups = [np.flatnonzero(np.asarray(train.centres) == n) for n in names] + [np.arange(len(train))]
    means, stds = zip(*(_channel_stats(train.images[g]) for g in groups), strict=True)
    return [*names, POOLED], np.stack(means), np.stack(stds)


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each channel of (N, 3, H, W) uint8 images, in [0, 1] (std at least 1e-3)."""
    values = images.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64) / 255.0
    return values.mean(axis=1), np.maximum(values.std(axis=1), 1e-3)


def class_weights(labels: np.ndarray, n_classes: int) -> list[float]:
    """Inverse class frequencies, scaled so that they average 1 over the images."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (n_classes * np.maximum(counts, 1)), 0.0)
    return weights.tolist()


def loader(
    dataset: ImageDataset, batch_size: int, train: bool, seed: int, balance: Balance = "none", workers: int = 0
) -> DataLoader:
    """A DataLoader: shuffled (or class-balanced with ``sampler``) for training, in order otherwise."""
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if train and balance == "sampler":
        labels = dataset.images.labels
        per_class = np.asarray(class_weights(labels, int(labels.max()) + 1))
        sampler = WeightedRandomSampler(per_class[labels].tolist(), len(labels), generator=generator)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler, generator=generator,
        num_workers=workers, drop_last=train and len(dataset) > batch_size, persistent_workers=workers > 0,
    )  # fmt: skip


def centre_rows(names: Sequence[str]) -> dict[str, int]:
    """Centre name → row of the normalisation table."""
    return {name: i for i, name in enumerate(names)}
