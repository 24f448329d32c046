"""The data module on a generated CIFAR-format fixture, and its failure paths."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from cifarlab.data import CIFAR10DataModule, channel_stats, load_cifar10
from cifarlab.data.sampling import BatchPlans, EpochOrder, batch_seed
from cifarlab.errors import ConfigError, DataError
from cifarlab.module import ImageClassifier
from conftest import CONF, write_cifar

COLOR = OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/color.yaml").train_transforms)


def make_dm(root: Path, **kwargs) -> CIFAR10DataModule:
    args = dict(root=str(root), batch_size=32, num_workers=0, download=False, train_transforms=COLOR) | kwargs
    dm = CIFAR10DataModule(**args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_arrays_shapes_dtypes_and_classes(cifar_root: Path) -> None:
    arrays = load_cifar10(cifar_root)
    assert arrays.train_images.shape == (500, 32, 32, 3) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (100, 32, 32, 3)
    assert arrays.train_labels.dtype == np.int64 and np.bincount(arrays.train_labels).tolist() == [50] * 10
    assert arrays.class_names[0] == "airplane" and len(arrays.class_names) == 10


def test_checksum_mismatch_is_a_recorded_warning(cifar_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    arrays = load_cifar10(cifar_root)
    assert arrays.checksum.status == "mismatch"
    assert "data_batch_1" in arrays.checksum.mismatched and len(arrays.checksum.fingerprint) == 16
    assert "differs from the official CIFAR-10 release" in caplog.text


def test_strict_checksum_is_an_error(cifar_root: Path) -> None:
    with pytest.raises(DataError, match="strict_checksum=true"):
        load_cifar10(cifar_root, strict_checksum=True)


def test_batches_are_uint8_and_the_model_normalises_them_to_zero_mean_and_unit_std(cifar_root: Path) -> None:
    dm = make_dm(cifar_root, train_transforms=[])
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (32, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.shape == (32,) and labels.dtype == torch.int64
    model = ImageClassifier(net={"_target_": "torch.nn.Flatten"}, optimizer={}, loss={"_target_": "torch.nn.CrossEntropyLoss"},
                            mean=dm.mean, std=dm.std, class_names=dm.class_names)
    everything = model.normalise(torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))]))
    assert everything.dtype == torch.float32
    assert everything.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (everything.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3


def test_statistics_are_computed_from_the_training_images(cifar_root: Path) -> None:
    dm = make_dm(cifar_root)
    pixels = dm.arrays.train_images.reshape(-1, 3).astype(np.float64) / 255
    np.testing.assert_allclose(dm.mean, pixels.mean(0), atol=1e-9)
    np.testing.assert_allclose(dm.std, pixels.std(0), atol=1e-9)
    assert channel_stats(np.full((2, 4, 4, 3), 51, np.uint8)) == ([0.2] * 3, [0.0] * 3)


def test_augmentation_keeps_shape_and_changes_pixels(cifar_root: Path) -> None:
    dm = make_dm(cifar_root)
    torch.manual_seed(0)
    views = torch.stack([dm.train_set[0][0] for _ in range(8)])
    assert views.shape == (8, 3, 32, 32) and views.dtype == torch.uint8
    assert (views != views[0]).any(), "8 random augmentations of one image were identical"
    plain = dm.val_set[0][0]
    assert plain.shape == (3, 32, 32)


def test_augmentation_is_reproducible_with_a_seed(cifar_root: Path) -> None:
    def first_views(seed: int, num_workers: int = 0) -> torch.Tensor:
        dm = make_dm(cifar_root, seed=seed, num_workers=num_workers, persistent_workers=False, batch_size=50)
        torch.manual_seed(0)  # the same shuffling order
        return next(iter(dm.train_dataloader()))[0]

    assert torch.equal(first_views(1), first_views(1))
    assert not torch.equal(first_views(1), first_views(2))
    assert torch.equal(first_views(1, num_workers=2), first_views(1, num_workers=2))


class Resumed:
    """What the loaders read of a trainer that resumed after ``done`` batches of its epoch."""

    training = True
    global_rank, world_size, num_training_batches = 0, 1, 15

    def __init__(self, done: int) -> None:
        progress = type("Progress", (), {"current": type("Current", (), {"completed": done})()})()
        self.fit_loop = type("FitLoop", (), {"epoch_loop": type("EpochLoop", (), {"batch_progress": progress})()})()
        self.strategy = type("Strategy", (), {"root_device": torch.device("cpu")})()


@pytest.mark.parametrize("augment_on,num_workers", [("workers", 0), ("workers", 2), ("device", 0)])
def test_a_resumed_epoch_serves_the_unbroken_epochs_remaining_batches(cifar_root: Path, augment_on: str,
                                                                      num_workers: int) -> None:
    """Batch b of an epoch is the same images with the same augmentation whether the epoch is read whole
    or resumed after 3 batches, and whatever the number of worker processes."""
    def epoch(done: int, workers: int) -> list[torch.Tensor]:
        dm = make_dm(cifar_root, seed=3, augment_on=augment_on, num_workers=workers,
                     train_transforms=OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/page.yaml").train_transforms))
        dm.trainer = Resumed(done)
        loader = dm.train_dataloader()
        (loader.batch_sampler or loader.sampler).set_epoch(1)  # as Lightning does at an epoch start
        return [images for images, _ in loader]

    whole = epoch(0, 0)
    resumed = epoch(3, num_workers)
    assert len(whole) == 15 and len(resumed) == 12
    assert all(torch.equal(a, b) for a, b in zip(whole[3:], resumed))
    assert not torch.equal(whole[3], whole[4])


def test_cutout_hole_is_filled_with_the_mean(cifar_root: Path) -> None:
    spec = [{"_target_": "albumentations.CoarseDropout", "num_holes_range": [1, 1], "hole_height_range": [8, 8],
             "hole_width_range": [8, 8], "fill": "dataset_mean", "p": 1.0}]
    dm = make_dm(cifar_root, train_transforms=spec)
    image = dm.train_set[0][0]  # uint8 (3, 32, 32)
    fill = torch.tensor([round(m * 255) for m in dm.mean], dtype=torch.uint8).view(3, 1, 1)
    assert (image == fill).all(dim=0).sum() >= 64  # the 8 x 8 hole holds the mean pixel (which normalises to ~0)


def test_val_size_holds_out_training_images_and_subset_trims(cifar_root: Path) -> None:
    dm = make_dm(cifar_root, val_size=100, subset=50)
    assert len(dm.train_set) == 50 and len(dm.val_set) == 100 and len(dm.test_set) == 100
    np.testing.assert_array_equal(dm.val_set.images, dm.arrays.train_images[400:])
    assert len(make_dm(cifar_root).val_set) == 100  # val_size=0: validate on the test images


@pytest.mark.parametrize("kwargs,message", [
    ({"batch_size": 0}, "data.batch_size must be a positive integer, got 0"),
    ({"num_workers": -1}, "data.num_workers must be a non-negative integer"),
    ({"subset": 0}, "data.subset must be a positive integer"),
])
def test_bad_arguments_are_rejected_where_they_enter(cifar_root: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CIFAR10DataModule(root=str(cifar_root), **kwargs)


def test_split_larger_than_the_data_is_rejected(cifar_root: Path) -> None:
    with pytest.raises(ConfigError, match="data.subset=1000 exceeds the 500 training images"):
        make_dm(cifar_root, subset=1000)
    with pytest.raises(ConfigError, match="leaves no training images"):
        make_dm(cifar_root, val_size=500)


def test_missing_data_names_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere.*cifar-10-batches-py lacks data_batch_1.*Put cifar-10-batches-py/ "
                                        r"under data/ in the checkout, or set CIFARLAB_DATA"):
        load_cifar10(tmp_path / "nowhere")


def test_missing_data_without_a_network_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cifarlab.data.arrays._network_reachable", lambda timeout_s=3.0: False)
    with pytest.raises(DataError, match="no network is reachable"):
        load_cifar10(tmp_path / "nowhere", download=True)


def test_truncated_batch_is_an_error(cifar_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(cifar_root, root)
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(DataError, match="data_batch_3 is truncated"):
        load_cifar10(root)


def test_malformed_batch_is_an_error(tmp_path: Path) -> None:
    root = write_cifar(tmp_path)
    batch = root / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(batch.read_bytes())
    entry["data"] = entry["data"][:, :1000]
    batch.write_bytes(pickle.dumps(entry))
    with pytest.raises(DataError, match="test_batch is malformed"):
        load_cifar10(root)


class _Payload:
    """Unpickling this would call os.system: a code-running payload."""

    def __reduce__(self):
        import os
        return (os.system, ("touch PWNED",))


def test_a_code_running_pickle_is_refused_without_running(cifar_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    shutil.copytree(cifar_root, root)
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(_Payload()))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"data_batch_3 is truncated or not a CIFAR-10 pickle .*refused global posix.system"):
        load_cifar10(root)
    assert not (tmp_path / "PWNED").exists()


def test_an_epoch_is_cut_into_batch_plans_and_a_resume_skips_whole_plans() -> None:
    order = EpochOrder(10, shuffle=True, seed=5, rank=1, world_size=2, equal_shares=True)
    order.set_epoch(2)
    plans = list(order.plans(2, drop_last=True))
    assert [p.number for p in plans] == [0, 1] and all(p.epoch == 2 for p in plans)  # 5 images: 2 full batches
    assert torch.equal(torch.cat([p.indices for p in plans]), order.indices(torch.device("cpu"))[:4])
    assert plans[0].seed == batch_seed(5, 1, 2, 0) != plans[1].seed
    assert [p.number for p in order.plans(2, drop_last=False, skip=1)] == [1, 2]
    trainer = Resumed(1)
    trainer.num_training_batches = 2
    sampler = BatchPlans(order, 2, drop_last=True, trainer=trainer)
    assert len(sampler) == 2 and [p.number for p in sampler] == [1]
