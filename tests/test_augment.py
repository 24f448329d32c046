"""The device augmentation path on CPU tensors: distributions of its random parameters, cutout
geometry, equality with the albumentations pipeline, and the config errors."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cifarlab.data import CIFAR10DataModule
from cifarlab.data import augment as aug
from cifarlab.data.augment import BatchContext, DeviceAugment, horizontal_flip, mean_pixel, random_crop
from cifarlab.errors import ConfigError
from conftest import CONF

PAGE = OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/page.yaml").train_transforms)
MEAN = [0.4913, 0.4821, 0.4465]


def ctx(n: int, seed: int = 0, epoch: int = 0) -> BatchContext:
    return BatchContext(torch.arange(n), n, epoch, seed, torch.Generator().manual_seed(seed))


def test_crop_offsets_are_uniform_over_0_to_8() -> None:
    n = 9 * 2000
    rows = torch.arange(40).view(1, 1, 40, 1).expand(n, 1, 40, 40)
    cols = torch.arange(40).view(1, 1, 1, 40).expand(n, 1, 40, 40)
    op = random_crop(32, 32)
    dy = op(rows.contiguous(), ctx(n, seed=1))[:, 0, 0, 0]
    dx = op(cols.contiguous(), ctx(n, seed=2))[:, 0, 0, 0]
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=9)
        assert len(counts) == 9, counts  # nothing outside 0..8
        assert (counts - 2000).abs().max() < 200, counts  # ~4.5 sigma of a binomial(18000, 1/9)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_flip_rate_is_p(p: float) -> None:
    n = 20000
    images = torch.arange(32).view(1, 1, 1, 32).expand(n, 1, 1, 32).contiguous()
    flipped = horizontal_flip(p)(images, ctx(n))[:, 0, 0, 0] == 31
    assert abs(flipped.float().mean().item() - p) < 0.015


def test_cutout_holes_are_8x8_inside_the_image_and_filled_with_the_mean_pixel() -> None:
    spec = [PAGE[-1]]  # CoarseDropout, 8x8, p=1, fill dataset_mean
    n = 500
    images = torch.full((n, 3, 32, 32), 255, dtype=torch.uint8)
    out = DeviceAugment(spec, MEAN).augment(images, ctx(n))
    assert out.shape == (n, 3, 32, 32) and out.dtype == torch.uint8  # the model normalises
    holes = out[:, 0] < 255
    assert (holes.sum(dim=(1, 2)) == 64).all()
    for mask in holes[:50]:
        ys, xs = mask.nonzero(as_tuple=True)
        assert ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7  # one 8x8 rectangle, wholly inside
    filled = out.permute(0, 2, 3, 1)[holes]  # (holes, 3): every hole pixel is the mean pixel
    assert (filled == torch.tensor(mean_pixel(MEAN), dtype=torch.uint8)).all()


def test_forced_parameters_give_the_albumentations_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Page's list (reflect-pad, crop, flip, cutout) with every random draw forced: the batched ops
    and the per-image albumentations transforms give the same uint8 pixels."""
    rng = np.random.default_rng(0)
    n = 16
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    flip = rng.random(n) < 0.5
    y0, x0 = rng.integers(0, 25, n), rng.integers(0, 25, n)
    # the device ops draw, in order: crop dy, crop dx, flip coin, cutout coin, hole count, height, width, y0, x0
    draws = deque([dy, dx, np.where(flip, 0.0, 1.0), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n), y0, x0])
    monkeypatch.setattr(aug, "_randint", lambda high, n_, c, d: torch.as_tensor(draws.popleft(), dtype=torch.long))
    monkeypatch.setattr(aug, "_rand", lambda n_, c, d: torch.as_tensor(draws.popleft(), dtype=torch.float32))
    batched = DeviceAugment(PAGE, MEAN).augment(torch.from_numpy(images).permute(0, 3, 1, 2), ctx(n))
    assert not draws

    specs = [aug._resolve_mean(s, mean_pixel(MEAN)) for s in PAGE]
    pad, cutout = instantiate(specs[0]), instantiate(specs[3])
    for i in range(n):
        image = pad(image=images[i])["image"][dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        image = A.HorizontalFlip(p=1.0)(image=image)["image"] if flip[i] else image
        image = cutout.apply(image, holes=np.array([[x0[i], y0[i], x0[i] + 8, y0[i] + 8]]), seed=0)
        torch.testing.assert_close(batched[i], torch.from_numpy(image).permute(2, 0, 1), atol=0, rtol=0)


def test_alternating_flip_flips_each_image_every_other_epoch() -> None:
    op = aug.alternating_flip()
    n = 1000
    images = torch.arange(32).view(1, 1, 1, 32).expand(n, 1, 1, 32).contiguous()
    per_epoch = [op(images, ctx(n, seed=3, epoch=e))[:, 0, 0, 0] == 31 for e in range(3)]
    assert 0.45 < per_epoch[0].float().mean() < 0.55
    assert (per_epoch[1] == ~per_epoch[0]).all() and (per_epoch[2] == per_epoch[0]).all()


def test_a_transform_without_batched_op_names_itself_and_the_fix() -> None:
    color = OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/color.yaml").train_transforms)
    with pytest.raises(ConfigError, match=r"train_transforms\[3\] \(albumentations.ColorJitter\).*data.augment_on=workers"):
        DeviceAugment(color, MEAN)


def test_device_only_transform_on_workers_is_refused(cifar_root: Path) -> None:
    airbench = OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/airbench.yaml").train_transforms)
    dm = CIFAR10DataModule(root=str(cifar_root), batch_size=20, num_workers=0, download=False,
                           train_transforms=airbench, augment_on="workers")
    with pytest.raises(ConfigError, match="AlternatingFlip.*data.augment_on=device"):
        dm.setup("fit")


@pytest.mark.slow  # over 2 s on 2 cores: two epochs of device augmentation
def test_device_batches_cover_each_image_once_and_are_seeded(cifar_root: Path) -> None:
    def batches(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        dm = CIFAR10DataModule(root=str(cifar_root), batch_size=32, download=False, train_transforms=PAGE,
                               augment_on="device", seed=seed)
        dm.setup("fit")
        return list(dm.train_dataloader()), list(dm.test_dataloader())

    (train, test), (train_again, _), (train_other, _) = batches(0), batches(0), batches(1)
    assert len(train) == 500 // 32 and all(x.shape == (32, 3, 32, 32) for x, _ in train)  # last partial batch dropped
    assert all(torch.equal(a[0], b[0]) for a, b in zip(train, train_again))
    assert not torch.equal(train[0][0], train_other[0][0])
    assert sum(len(y) for _, y in test) == 100  # the test set once, last batch included
    assert train[0][0].dtype == torch.uint8 and test[0][0].dtype == torch.uint8  # the model normalises
