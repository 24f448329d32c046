"""The Lightning DataModule: CIFAR-10, CIFAR-100 or an image folder as in-memory uint8 arrays (:mod:`.sources`), split, and served on
one of two paths (:mod:`.loaders`: ``workers`` or ``device``), in the order and with the per-batch
seeds of :mod:`.sampling`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from cifarlab.config.ranges import Range, check_arguments
from cifarlab.data.arrays import ChecksumReport, ImageArrays, channel_stats
from cifarlab.data.augment import DeviceAugment, build_eval_transform, build_train_transform
from cifarlab.data.loaders import DeviceBatches, ImageDataset, PlannedDataLoader
from cifarlab.data.sampling import BatchPlans, EpochOrder
from cifarlab.data.sources import check_source, load_arrays, prepare
from cifarlab.errors import ConfigError

AUGMENT_ON = ("workers", "device")
NET_IMAGE_SIZE = 32  # the side the networks of conf/model take


POSITIVE_COUNT = Range(1, integer=True, message="{key} must be a positive integer, got {value!r}")
OPTIONAL_COUNT = Range(1, integer=True, nullable=True, message="{key} must be a positive integer, got {value!r}")
NON_NEGATIVE_COUNT = Range(0, integer=True, message="{key} must be a non-negative integer, got {value!r}")
DATA_SEED = Range(0, 2**32 - 1, integer=True, nullable=True, meaning="the data order's seed (null: the global seed)")


class ImageDataModule(L.LightningDataModule):
    """Labelled images for Lightning, from the in-memory arrays of :func:`~cifarlab.data.sources.load_arrays`.

    Args:
        root: folder that holds (or will hold) ``cifar-10-batches-py/`` or ``cifar-100-python/``; with
            ``source=imagefolder`` the tree ``train/<class>/*``, ``test/<class>/*`` (optional ``val/<class>/*``).
        batch_size: images per training batch (per device under DDP).
        eval_batch_size: images per validation and test batch; ``None``: ``batch_size``. One that
            divides the split (2,000 for the 10,000 test images, as airbench) gives a compiled
            network one batch shape, so the test does not recompile for a last smaller batch.
        num_workers, pin_memory, persistent_workers: passed to every DataLoader.
        val_size: 0 validates on the test images (as Page and the seed notebooks do);
            N > 0 holds the last N training images out for validation, so that sweeps never
            select on the test set. An image folder with ``val/`` validates on it, and needs 0.
        subset: train on the first N (remaining) training images; ``None`` uses all.
        strict_checksum: an md5 mismatch with the official files is an error, not a warning.
        download: fetch the data through torchvision when it is missing (needs a network).
        seed: seed of the augmentation's random state and of the training order (``conf/train.yaml``'s
            ``seed``): with the same seed a run sees the same augmented images, with any
            ``num_workers`` and after a resume; ``None`` is not reproducible. Each training batch
            is seeded from (seed, rank, epoch, batch) (:func:`~cifarlab.data.sampling.batch_seed`), so under DDP each rank
            augments differently; all ranks share one order.
        train_transforms: Hydra specs of the albumentations augmentation (see
            :mod:`cifarlab.data.augment`).
        augment_on: ``workers`` (albumentations per image in DataLoader workers) or ``device``
            (:class:`DeviceBatches` on the model's device; ``num_workers`` etc. are then unused).
        source: ``cifar10`` | ``cifar100`` | ``imagefolder`` (:mod:`cifarlab.data.sources`).
        image_size: side S in pixels of the square an image folder's images are resized to; 32, the side
            the networks of conf/model take, is the only one accepted (the loaders take any).
        on_bad_image: ``error`` (an unreadable image file in an image folder is an error) or ``skip``
            (it is left out, logged and listed in ``checksum.skipped``).

    The training batches drop the last partial batch (as Page's and airbench's loaders do), so
    every step sees ``batch_size`` images. Under DDP every split is sharded by :class:`EpochOrder`:
    training in equal shares, validation and test with each image on exactly one rank (the
    torchmetrics objects of :class:`~cifarlab.module.ImageClassifier` sum their counts over ranks).

    Every batch holds uint8 images (N, 3, S, S) and int64 labels: the model normalises. After
    ``setup()``: ``mean``/``std`` (per-channel statistics of the training images used, pixel/255,
    for the model's normalisation), ``class_names``, ``checksum`` (a :class:`ChecksumReport`).

    Raises:
        ConfigError: a non-positive batch_size or subset, negative num_workers or val_size,
            val_size or subset larger than the training set, fewer training images than one batch,
            an unknown augment_on, a transform with no batched equivalent under ``device``; an unknown
            source or on_bad_image; an image_size other than 32; an image folder with ``val/`` and ``val_size`` > 0.
        DataError: see :func:`~cifarlab.data.sources.load_arrays`.
    """

    def __init__(
        self,
        root: str = "data",
        batch_size: Annotated[int, POSITIVE_COUNT] = 512,
        num_workers: Annotated[int, NON_NEGATIVE_COUNT] = 4,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_size: Annotated[int, NON_NEGATIVE_COUNT] = 0,
        subset: Annotated[int | None, OPTIONAL_COUNT] = None,
        strict_checksum: bool = False,
        download: bool = True,
        seed: Annotated[int | None, DATA_SEED] = None,
        train_transforms: list[dict] | None = None,
        augment_on: str = "workers",
        eval_batch_size: Annotated[int | None, OPTIONAL_COUNT] = None,
        source: str = "cifar10",
        image_size: int = 32,
        on_bad_image: str = "error",
    ) -> None:
        super().__init__()
        if augment_on not in AUGMENT_ON:
            raise ConfigError(f"data.augment_on={augment_on!r} is not one of {', '.join(AUGMENT_ON)}")
        check_arguments(ImageDataModule, locals(), "data")
        check_source(source, image_size, on_bad_image)
        if image_size != NET_IMAGE_SIZE:  # the heads of conf/model's networks pool a fixed 4 x 4 map
            raise ConfigError(f"data.image_size={image_size}: the networks of conf/model take {NET_IMAGE_SIZE} x "
                              f"{NET_IMAGE_SIZE} images; use data.image_size={NET_IMAGE_SIZE}")
        self.save_hyperparameters(logger=False)  # cifarlab.training.tracking decides what loggers record
        self.arrays: ImageArrays | None = None
        self.mean: list[float] = []
        self.std: list[float] = []

    @property
    def class_names(self) -> list[str]:
        return self.arrays.class_names

    @property
    def checksum(self) -> ChecksumReport:
        return self.arrays.checksum

    @property
    def dataset_name(self) -> str:
        """How ``metrics.json`` and train's summary name the data: ``CIFAR-10`` or ``CIFAR-100`` (each with its
        md5 status), or ``image folder <name of root>``."""
        hp = self.hparams
        if hp.source == "imagefolder":
            return f"image folder {Path(hp.root).expanduser().resolve().name}"
        name = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[hp.source]
        return name if self.checksum.status == "official" else f"{name} (md5 differs from the official release)"

    def prepare_data(self) -> None:
        prepare(self.hparams.root, self.hparams.source, self.hparams.download)

    def _split(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        a, hp = self.arrays, self.hparams
        if a.val_images is not None:
            if hp.val_size:
                raise ConfigError(f"data.val_size={hp.val_size}, but {hp.root} has a val/ folder, which is the "
                                  "validation split: set data.val_size=0, or remove val/ to hold out training images")
            if hp.subset is not None and hp.subset > len(a.train_images):
                raise ConfigError(f"data.subset={hp.subset} exceeds the {len(a.train_images)} training images available")
            return (a.train_images[:hp.subset], a.train_labels[:hp.subset]), (a.val_images, a.val_labels)
        n_train = len(a.train_images) - hp.val_size
        if n_train < 1:
            raise ConfigError(f"data.val_size={hp.val_size} leaves no training images (there are {len(a.train_images)})")
        if hp.subset is not None and hp.subset > n_train:
            raise ConfigError(f"data.subset={hp.subset} exceeds the {n_train} training images available")
        end = n_train if hp.subset is None else hp.subset
        train = (a.train_images[:end], a.train_labels[:end])
        val = (a.train_images[n_train:], a.train_labels[n_train:]) if hp.val_size else (a.test_images, a.test_labels)
        return train, val

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays (once), compute the training statistics and build the datasets."""
        if self.arrays is not None:
            return
        hp = self.hparams
        self.arrays = load_arrays(hp.root, hp.source, hp.image_size, hp.on_bad_image, hp.strict_checksum, hp.download)
        (train_x, train_y), (val_x, val_y) = self._split()
        self.mean, self.std = channel_stats(train_x)
        specs = self.hparams.train_transforms or []
        if self.hparams.augment_on == "device":
            self.device_augment = DeviceAugment(specs, self.mean)
            train_tf = eval_tf = None
        else:
            train_tf = build_train_transform(specs, self.mean, self.hparams.seed)  # reseeded per batch
            eval_tf = build_eval_transform()
        self.train_set = ImageDataset(train_x, train_y, train_tf)
        self.val_set = ImageDataset(val_x, val_y, eval_tf)
        self.test_set = ImageDataset(self.arrays.test_images, self.arrays.test_labels, eval_tf)

    def train_images(self, n: int) -> torch.Tensor:
        """The first ``n`` training images, uint8 (n, 3, S, S) on the CPU, unaugmented (airbench's
        whitening layer is set from their patches)."""
        return torch.from_numpy(self.train_set.images[:n]).permute(0, 3, 1, 2)

    @property
    def rank(self) -> int:
        """Global rank of this process: the trainer's, once one is attached (a data module set up by
        hand, as the tests and the reports do, has none), else 0."""
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _order_seed(self) -> int:
        """Seed of the training order: ``seed``, or with ``seed=None`` a random one drawn once, by
        rank 0 under DDP (every rank must shuffle alike for the shares to partition the epoch)."""
        if self.hparams.seed is not None:
            return self.hparams.seed
        if getattr(self, "_random_order_seed", None) is None:
            seed = int(np.random.SeedSequence().entropy % 2**62)
            self._random_order_seed = self.trainer.strategy.broadcast(seed) if self.world_size > 1 else seed
        return self._random_order_seed

    def _order(self, dataset: ImageDataset, train: bool) -> EpochOrder:
        return EpochOrder(len(dataset), shuffle=train, seed=self._order_seed() if train else 0, rank=self.rank,
                          world_size=self.world_size, equal_shares=train)

    def _batch_size(self, train: bool) -> int:
        return self.hparams.batch_size if train else self.hparams.eval_batch_size or self.hparams.batch_size

    def _loader(self, dataset: ImageDataset, train: bool) -> DataLoader | DeviceBatches:
        """Both paths cut the epoch's :class:`EpochOrder` into batch plans; a training epoch resumed by the
        trainer skips the plans done."""
        hp, order, trainer = self.hparams, self._order(dataset, train), self.trainer if train else None
        if hp.augment_on == "device":
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return DeviceBatches(dataset.images, dataset.labels, self._batch_size(train), drop_last=train, order=order,
                                 augment=self.device_augment, train=train, seed=self._order_seed(), device=device,
                                 trainer=trainer)
        return PlannedDataLoader(
            dataset,
            batch_sampler=BatchPlans(order, self._batch_size(train), drop_last=train, trainer=trainer),
            num_workers=hp.num_workers,
            pin_memory=hp.pin_memory and torch.cuda.is_available(),
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader | DeviceBatches:
        """Shuffled training batches of exactly ``batch_size`` images (the last partial batch is dropped).

        Raises:
            ConfigError: fewer training images per rank than one batch.
        """
        per_rank = len(self.train_set) // self.world_size
        if per_rank < self.hparams.batch_size:
            raise ConfigError(
                f"{per_rank} training images per device make no full batch of data.batch_size={self.hparams.batch_size} "
                "(the last partial batch is dropped): lower data.batch_size or raise data.subset"
            )
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader | DeviceBatches:
        return self._loader(self.test_set, train=False)


CIFAR10DataModule = ImageDataModule  # the name older run dirs' config.yaml give as data._target_
