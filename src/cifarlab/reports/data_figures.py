"""The data figures (``data_figures.py``): training images as stored, and after the training augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifarlab.data import ImageDataModule
from cifarlab.data.augment import BatchContext
from cifarlab.data.sampling import batch_seed
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
    dataset = datamodule.train_set
    if datamodule.hparams.augment_on == "device":
        seed = datamodule.hparams.seed or 0
        images = torch.from_numpy(dataset.images[:count]).permute(0, 3, 1, 2)
        generator = torch.Generator().manual_seed(batch_seed(seed, 0, 0, 0))
        context = BatchContext(torch.arange(count), len(dataset), 0, seed, generator)
        return datamodule.device_augment.augment(images, context).permute(0, 2, 3, 1).numpy()
    return torch.stack([dataset[i][0] for i in range(count)]).permute(0, 2, 3, 1).numpy()
