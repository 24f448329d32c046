"""Which images a training batch holds, and with which random draws: the epoch's order and each rank's
share of it (:class:`EpochOrder`), the seed of each batch's augmentation (:func:`batch_seed`) and where a
resumed epoch continues (:func:`batches_done_this_epoch`). Both data paths use them, so a run killed
mid-epoch and resumed sees the images, order and augmentations of an unbroken run."""
from __future__ import annotations

from collections.abc import Iterator

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


class EpochOrder(torch.utils.data.Sampler[int]):
    """The order of a split's images in one epoch, and this rank's share of it: the sampler of both
    data paths (a DataLoader's ``sampler``, or :class:`DeviceBatches`'). Lightning calls
    ``set_epoch`` at each epoch start, as for ``DistributedSampler``, which it does not add
    (``trainer.use_distributed_sampler=false``): this class shards without padding.

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
                 equal_shares: bool = False, reseed_every: int | None = None) -> None:
        self.size, self.shuffle, self.seed, self.rank, self.world_size = size, shuffle, seed, rank, world_size
        self.equal_shares, self.reseed_every = equal_shares, reseed_every
        self.epoch = 0
        self.start = 0  # positions the next iteration skips (a resumed epoch), then 0 again

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

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        """This rank's indices from position ``start`` on. With ``reseed_every=B`` (a training
        DataLoader of batch size B) the first index of each batch comes as ``(index, seed)``, the
        seed :func:`batch_seed` of that batch, for :class:`~cifarlab.data.loaders.ImageDataset` to reseed its transform."""
        start, self.start = self.start, 0
        indices = self.indices(torch.device("cpu")).tolist()
        for position in range(start, len(indices)):
            if self.reseed_every and position % self.reseed_every == 0:
                yield indices[position], batch_seed(self.seed, self.rank, self.epoch, position // self.reseed_every)
            else:
                yield indices[position]
