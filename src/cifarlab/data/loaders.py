"""The two data paths' batches, one contract: (images uint8 (B, 3, 32, 32), labels int64 (B,)).

- ``workers``: a torch ``DataLoader`` (:class:`PlannedDataLoader`) over :class:`ImageDataset` whose ``batch_sampler`` hands out
  :class:`~cifarlab.data.sampling.BatchPlan` (:class:`~cifarlab.data.sampling.BatchPlans`), the albumentations
  pipeline run per image in worker processes.
- ``device``: :class:`DeviceBatches`, the uint8 arrays held as tensors on the model's device, each batch's
  plan gathered by index and augmented there by batched ops (:class:`~cifarlab.data.augment.DeviceAugment`):
  no worker processes, no host-to-device copies (Page's cifar10-fast and airbench load this way).
"""
from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cifarlab.data.augment import BatchContext, DeviceAugment
from cifarlab.data.sampling import BatchPlan, EpochOrder, batches_done_this_epoch


class ImageDataset(Dataset):
    """In-memory images with an albumentations transform.

    ``dataset[i]`` -> (image (3, 32, 32) float32 tensor, label int). A DataLoader batch of a
    :class:`~cifarlab.data.sampling.BatchPlan` is made by :meth:`__getitems__`, which reseeds the transform
    with the plan's seed first, so a batch's draws do not depend on which worker process makes it.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(image=self.images[index])["image"], int(self.labels[index])

    def __getitems__(self, plan: BatchPlan) -> list[tuple[torch.Tensor, int]]:
        """The images and labels of ``plan``, in order, its seed set first (torch's DataLoader fetches a whole
        batch through this method when the dataset has it)."""
        self.transform.set_random_seed(plan.seed)
        return [self[i] for i in plan.indices.tolist()]


class PlannedDataLoader(DataLoader):
    """The workers path's ``DataLoader``, its ``batch_sampler`` a :class:`~cifarlab.data.sampling.BatchPlans`,
    whose iterator starts at the first batch: worker processes prefetch plans as soon as an iterator exists,
    and a lazy one lets Lightning set the epoch and restore a resumed epoch's progress first."""

    def __iter__(self) -> Iterator:
        yield from super().__iter__()


class DeviceBatches:
    """Batches of (images uint8 (B, 3, 32, 32), labels int64 (B,)) built on ``device`` from uint8
    arrays held there.

    Args:
        images: uint8 (N, 32, 32, 3); labels: int64 (N,).
        batch_size, drop_last: as for a DataLoader.
        order: the :class:`~cifarlab.data.sampling.EpochOrder` (shuffle, rank share) whose plans it makes.
        augment: the batched ops; ``train=False`` serves the images as they are.
        seed: the run's seed (:class:`~cifarlab.data.augment.BatchContext`); each batch's random draws come from a
            generator seeded with its plan's seed.
        device: where the arrays live and the batches are made.
        trainer: a training epoch that it resumed mid-way skips the plans done
            (:func:`~cifarlab.data.sampling.batches_done_this_epoch`); None: none skipped.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, drop_last: bool, order: EpochOrder,
                 augment: DeviceAugment, train: bool, seed: int, device: torch.device, trainer: L.Trainer | None = None) -> None:
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.from_numpy(labels).to(device)
        self.batch_size, self.drop_last, self.sampler = batch_size, drop_last, order
        self.batch_sampler = None  # it batches itself (Lightning inspects DataLoader-like attributes)
        self.augment, self.train, self.seed, self.device, self.trainer = augment, train, seed, device, trainer

    def __len__(self) -> int:
        return self.sampler.batches(self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator(device=self.device)
        skip = batches_done_this_epoch(self.trainer) if self.train else 0
        for plan in self.sampler.plans(self.batch_size, self.drop_last, self.device, skip):
            images = self.images[plan.indices]
            if self.train:
                yield self.augment.augment(images, self.context(plan, generator)), self.labels[plan.indices]
            else:
                yield images, self.labels[plan.indices]

    def context(self, plan: BatchPlan, generator: torch.Generator) -> BatchContext:
        """What the batched ops of ``plan`` draw on: ``generator`` seeded with the plan's seed (host-side: no
        device sync)."""
        generator.manual_seed(plan.seed)
        return BatchContext(plan.indices, len(self.images), plan.epoch, self.seed, generator)
