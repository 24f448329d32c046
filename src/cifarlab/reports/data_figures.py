"""The data figures (``data_figures.py``): training images as stored, and after the training augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifarlab.data import ImageDataModule
from cifarlab.data.augment import BatchContext
from cifarlab.data.sampling import EpochOrder
from cifarlab.reports.figures import save_grid, upscale


def write_data_figures(datamodule: ImageDataModule, out: Path, count: int = 20, size: int = 128) -> None:
    """``samples.png``: the first ``count`` training images with their classes; ``augmentations.png``:
    the same images after the training augmentation (``data.seed`` fixes which), both upscaled to
    ``size`` pixels in grids of 5 columns.

    Raises:
        CifarlabError: see :class:`ImageDataModule` (missing or malformed data).
    """
    datamodule.setup("fit")
    dataset, names = datamodule.train_set, datamodule.class_names
    count = min(count, len(dataset))
    titles = [names[int(y)] for y in dataset.labels[:count]]
    out.mkdir(parents=True, exist_ok=True)
    save_grid(upscale(dataset.images[:count], size), titles, out / "samples.png", title="Training images")
    rgb = augmented(datamodule, count)
    save_grid(upscale(np.ascontiguousarray(rgb), size), titles, out / "augmentations.png",
              title="The same images after the training augmentation")


def augmented(datamodule: ImageDataModule, count: int) -> np.ndarray:
    """The first ``count`` training images after the training augmentation of the data module's path
    (``workers``: albumentations per image; ``device``: the batched ops of its first batch), as
    (count, H, W, 3) uint8."""
    dataset, seed = datamodule.train_set, datamodule.hparams.seed or 0
    plan = next(EpochOrder(count, shuffle=False, seed=seed).plans(count, drop_last=False))  # the first batch's plan
    if datamodule.hparams.augment_on == "device":
        images = torch.from_numpy(dataset.images[:count]).permute(0, 3, 1, 2)
        context = BatchContext(plan.indices, len(dataset), plan.epoch, seed, torch.Generator().manual_seed(plan.seed))
        return datamodule.device_augment.augment(images, context).permute(0, 2, 3, 1).numpy()
    return torch.stack([image for image, _ in dataset.__getitems__(plan)]).permute(0, 2, 3, 1).numpy()
