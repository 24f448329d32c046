"""Which images a batch holds, and with which random draws, planned once for both data paths: the epoch's order
and each rank's share of it (:class:`EpochOrder`), each batch's :class:`BatchPlan` (its images, epoch, number and
the seed of its augmentation, :func:`batch_seed`), and where a resumed epoch continues
(:func:`batches_done_this_epoch`: whole plans are skipped). The workers path consumes the plans through a
DataLoader's ``batch_sampler`` (:class:`BatchPlans`), the device path and the data figures directly, so a run
killed mid-epoch and resumed sees the images, order and augmentations of an unbroken run."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch


def derive_seed(*entropy: int) -> int:
    """A 63-bit seed from several integers (run seed, rank, epoch), via numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, np.uint64)[0] >> 1)


def batch_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    """The seed of one training batch's augmentation draws (both paths): a function of the run's
    ``seed``, the global ``rank`` (ranks augment differently), the ``epoch`` and the batch number
    within it, so a resumed epoch redraws exactly what the unbroken run drew, whichever worker
    process or device makes the batch. 32 bits (albumentations' ``set_random_seed`` takes no more)."""
    return derive_seed(seed, rank, epoch, batch) % 2**32


def batches_done_this_epoch(trainer: L.Trainer | None) -> int:
    """Training batches of the current epoch that ``trainer`` has completed, read when an epoch's
    iteration starts: 0 at a new epoch; k when ``trainer.fit`` resumed from a checkpoint written
    after k batches of the epoch (Lightning restores its progress counters before the first batch
    is fetched). 0 outside training and without a trainer.

    Lightning's own route (a loader with ``state_dict``/``load_state_dict``) loses the state when
    ``trainer.estimated_stepping_batches`` runs before the restore, as OneCycle's ``total_steps``
    needs it to (Lightning-AI/pytorch-lightning#20550), so the loaders ask the trainer instead.
    """
    if trainer is None or not trainer.training:
        return 0
    done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    return done if 0 < done < trainer.num_training_batches else 0


@dataclass(frozen=True)
class BatchPlan:
    """One batch, planned before it is made: the dataset ``indices`` (B,) int64, on the device that makes the batch;
    the ``epoch`` (0-based); its ``number`` in the epoch; the ``seed`` of its augmentation draws (:func:`batch_seed`
    of the order's seed, the rank, the epoch and the number). The same plan gives the same images and draws
    whichever path, worker process or device makes it."""

    indices: torch.Tensor
    epoch: int
    number: int
    seed: int


class EpochOrder(torch.utils.data.Sampler[int]):
    """The order of a split's images in one epoch, and this rank's share of it, cut into :class:`BatchPlan`
    (:meth:`plans`) for both data paths (through :class:`BatchPlans` or
    :class:`~cifarlab.data.loaders.DeviceBatches`). Lightning calls ``set_epoch`` at each epoch start, as for
    ``DistributedSampler``, which it does not add (``trainer.use_distributed_sampler=false``): this class shards
    without padding.

    Args:
        size: images in the split; shuffle: a new permutation each epoch (seeded from ``seed`` and
        the epoch, so every rank draws the same one); rank, world_size: this process's share, the
        positions ``rank, rank + world_size, ...`` of the epoch's order.
        equal_shares: every rank gets ``size // world_size`` images, the last ``size % world_size``
        positions of the epoch's order left out (training: equal step counts keep the ranks in
        lock-step; with ``shuffle`` a different few each epoch). Otherwise every image is on exactly
        one rank and shares differ by at most one image (evaluation: each image counted once).
    """

    def __init__(self, size: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1,
                 equal_shares: bool = False) -> None:
        self.size, self.shuffle, self.seed, self.rank, self.world_size = size, shuffle, seed, rank, world_size
        self.equal_shares = equal_shares
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.equal_shares:
            return self.size // self.world_size
        return len(range(self.rank, self.size, self.world_size))

    def indices(self, device: torch.device) -> torch.Tensor:
        """This rank's dataset indices for the current epoch, (len(self),) int64 on ``device``."""
        if self.shuffle:
            generator = torch.Generator(device=device).manual_seed(derive_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, device=device, generator=generator)
        else:
            order = torch.arange(self.size, device=device)
        if self.equal_shares:
            order = order[:len(self) * self.world_size]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        """This rank's indices for the current epoch, one by one (a DataLoader ``sampler``)."""
        yield from self.indices(torch.device("cpu")).tolist()

    def batches(self, batch_size: int, drop_last: bool) -> int:
        """How many batches of ``batch_size`` this rank's share makes (a last partial one dropped with ``drop_last``)."""
        return len(self) // batch_size if drop_last else math.ceil(len(self) / batch_size)

    def plans(self, batch_size: int, drop_last: bool, device: torch.device = torch.device("cpu"),
              skip: int = 0) -> Iterator[BatchPlan]:
        """This rank's batches of the current epoch as :class:`BatchPlan`, from batch ``skip`` on (a resumed epoch
        skips the batches done), their indices on ``device``."""
        indices = self.indices(device)
        for number in range(skip, self.batches(batch_size, drop_last)):
            yield BatchPlan(indices[number * batch_size:(number + 1) * batch_size], self.epoch, number,
                            batch_seed(self.seed, self.rank, self.epoch, number))


class BatchPlans(torch.utils.data.Sampler[BatchPlan]):
    """A DataLoader's ``batch_sampler`` of :class:`BatchPlan` (the workers path): ``set_epoch`` (which Lightning
    calls at each epoch start) passes to the :class:`EpochOrder`, and an epoch that ``trainer`` resumed mid-way
    skips the plans done (:func:`batches_done_this_epoch`). The dataset makes a batch from a whole plan
    (:meth:`cifarlab.data.loaders.ImageDataset.__getitems__`)."""

    def __init__(self, order: EpochOrder, batch_size: int, drop_last: bool, trainer: L.Trainer | None = None) -> None:
        self.order, self.batch_size, self.drop_last, self.trainer = order, batch_size, drop_last, trainer

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return self.order.batches(self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[BatchPlan]:
        yield from self.order.plans(self.batch_size, self.drop_last, skip=batches_done_this_epoch(self.trainer))
