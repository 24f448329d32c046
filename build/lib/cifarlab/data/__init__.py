"""CIFAR-10: the arrays on disk (:mod:`.arrays`), the augmentation on both paths (:mod:`.augment`), the
order, shares and seeds of each epoch (:mod:`.sampling`), the batches of each path (:mod:`.loaders`) and
the Lightning DataModule (:mod:`.datamodule`)."""
from cifarlab.data.arrays import (
    BASE_FOLDER, META_FILE, TEST_FILES, TRAIN_FILES, CIFAR10Arrays, ChecksumReport, channel_stats, ensure_cifar10,
    fingerprint, load_cifar10,
)
from cifarlab.data.datamodule import CIFAR10DataModule
from cifarlab.data.loaders import DeviceBatches, ImageDataset

__all__ = [
    "BASE_FOLDER", "META_FILE", "TEST_FILES", "TRAIN_FILES", "CIFAR10Arrays", "CIFAR10DataModule", "ChecksumReport",
    "DeviceBatches", "ImageDataset", "channel_stats", "ensure_cifar10", "fingerprint", "load_cifar10",
]
