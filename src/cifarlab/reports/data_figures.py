"""The data figures (``data_figures.py``): training images as stored, and after the training augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cifarlab.data import CIFAR10DataModule
from cifarlab.reports.figures import save_grid, upscale


def write_data_figures(datamodule: CIFAR10DataModule, out: Path, count: int = 20, size: int = 128) -> None:
    """``samples.png``: the first ``count`` training images with their classes; ``augmentations.png``:
    the same images after the training augmentation (``data.seed`` fixes which), both upscaled to
    ``size`` pixels in grids of 5 columns.

    Raises:
        CifarlabError: see :class:`CIFAR10DataModule` (missing or malformed data).
    """
    datamodule.setup("fit")
    dataset, names = datamodule.train_set, datamodule.class_names
    count = min(count, len(dataset))
    titles = [names[int(y)] for y in dataset.labels[:count]]
    out.mkdir(parents=True, exist_ok=True)
    save_grid(upscale(dataset.images[:count], size), titles, out / "samples.png", title="Training images")
    rgb = torch.stack([dataset[i][0] for i in range(count)]).permute(0, 2, 3, 1).numpy()  # uint8 (N, H, W, 3)
    save_grid(upscale(np.ascontiguousarray(rgb), size), titles, out / "augmentations.png",
              title="The same images after the training augmentation")
