"""The two data paths' batches, one contract: (images uint8 (B, 3, 32, 32), labels int64 (B,)).

- ``workers``: a torch ``DataLoader`` over :class:`ImageDataset`, the albumentations pipeline run per
  image in worker processes (:class:`ResumableDataLoader` for training, which continues a resumed epoch).
- ``device``: :class:`DeviceBatches`, the uint8 arrays held as tensors on the model's device, each batch
  gathered by index and augmented there by batched ops (:class:`~cifarlab.data.augment.DeviceAugment`):
  no worker processes, no host-to-device copies (Page's cifar10-fast and airbench load this way).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cifarlab.data.augment import BatchContext, DeviceAugment
from cifarlab.data.sampling import EpochOrder, batch_seed


class ImageDataset(Dataset):
    """In-memory images with an albumentations transform.

    ``dataset[i]`` -> (image (3, 32, 32) float32 tensor, label int). ``dataset[(i, seed)]`` first
    reseeds the transform with ``seed`` (:class:`EpochOrder` yields these keys at the first image of
    each training batch, so a batch's draws do not depend on which worker process makes it).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, tuple):
            key, seed = key
            self.transform.set_random_seed(seed)
        return self.transform(image=self.images[key])["image"], int(self.labels[key])


class ResumableDataLoader(DataLoader):
    """A training ``DataLoader`` whose epoch continues where a checkpoint left it.

    Its iterator starts lazily, at the first batch (after Lightning's ``set_epoch``), and then skips
    the batches :func:`batches_done_this_epoch` reports through ``batches_done`` (a callable, set
    by the DataModule) by starting its :class:`EpochOrder` that many batches in.
    """

    batches_done: Callable[[], int] | None = None

    def __iter__(self) -> Iterator:
        skip = self.batches_done() if self.batches_done is not None else 0
        if skip and isinstance(self.sampler, EpochOrder):
            self.sampler.start = skip * self.batch_size
        yield from super().__iter__()


class DeviceBatches:
    """Batches of (images uint8 (B, 3, 32, 32), labels int64 (B,)) built on ``device`` from uint8
    arrays held there.

    Args:
        images: uint8 (N, 32, 32, 3); labels: int64 (N,).
        batch_size, drop_last: as for a DataLoader.
        order: the :class:`EpochOrder` (shuffle, rank share).
        augment: the batched ops; ``train=False`` serves the images as they are.
        seed, rank: each batch's random draws come from a generator seeded with :func:`batch_seed`.
        device: where the arrays live and the batches are made.
        batches_done: a callable giving the batches of the epoch already done (a resumed epoch
            skips them, :func:`batches_done_this_epoch`); None: 0.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, drop_last: bool, order: EpochOrder,
                 augment: DeviceAugment, train: bool, seed: int, rank: int, device: torch.device,
                 batches_done: Callable[[], int] | None = None) -> None:
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.from_numpy(labels).to(device)
        self.batch_size, self.drop_last, self.sampler = batch_size, drop_last, order
        self.batch_sampler = None  # it batches itself (Lightning inspects DataLoader-like attributes)
        self.augment, self.train, self.seed, self.rank, self.device = augment, train, seed, rank, device
        self.batches_done = batches_done

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        indices = self.sampler.indices(self.device)
        epoch = self.sampler.epoch
        generator = torch.Generator(device=self.device)
        skip = self.batches_done() if self.batches_done is not None else 0
        for b in range(skip, len(self)):
            idx = indices[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.images[idx]
            if self.train:
                generator.manual_seed(batch_seed(self.seed, self.rank, epoch, b))  # host-side: no device sync
                ctx = BatchContext(idx, len(self.images), epoch, self.seed, generator)
                yield self.augment.augment(images, ctx), self.labels[idx]
            else:
                yield images, self.labels[idx]
