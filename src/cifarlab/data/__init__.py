"""Labelled images: CIFAR-10 on disk (:mod:`.arrays`), CIFAR-100 and image folders (:mod:`.sources`),
the augmentation on both paths (:mod:`.augment`), the order, shares and seeds of each epoch (:mod:`.sampling`),
the batches of each path (:mod:`.loaders`) and the Lightning DataModule (:mod:`.datamodule`)."""
from cifarlab.data.arrays import (
    BASE_FOLDER, META_FILE, TEST_FILES, TRAIN_FILES, CIFAR10Arrays, ChecksumReport, ImageArrays, channel_stats,
    ensure_cifar10, fingerprint, load_cifar10,
)
from cifarlab.data.datamodule import CIFAR10DataModule, ImageDataModule
from cifarlab.data.loaders import DeviceBatches, ImageDataset
from cifarlab.data.sources import load_arrays

__all__ = [
    "BASE_FOLDER", "META_FILE", "TEST_FILES", "TRAIN_FILES", "CIFAR10Arrays", "CIFAR10DataModule", "ChecksumReport",
    "DeviceBatches", "ImageArrays", "ImageDataModule", "ImageDataset", "channel_stats", "ensure_cifar10", "fingerprint",
    "load_arrays", "load_cifar10",
]
