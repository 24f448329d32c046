"""Training augmentation built from the YAML lists in ``conf/data/augmentation/``, on two paths.

Each list entry is a Hydra spec (``_target_`` + arguments) of an albumentations transform applied
to the uint8 (32, 32, 3) image. Both paths give uint8 images: the model normalises them
(:meth:`cifarlab.module.ImageClassifier.normalise`). An argument whose value is the string
``dataset_mean`` is replaced by the training set's per-channel mean pixel (0-255), so cutout holes
are filled with the mean, which normalises to (within rounding) 0 (DeVries & Taylor 2017; Page
fills with 0 after normalising).

- ``data.augment_on=workers``: :func:`build_train_transform`, an albumentations pipeline run per
  image in DataLoader workers (any albumentations transform).
- ``data.augment_on=device``: :class:`DeviceAugment`, the same list translated into batched tensor
  ops on uint8 (N, 3, H, W) batches on the model's device (:data:`BATCHED_OPS`). A transform with no
  batched equivalent is a :class:`~cifarlab.errors.ConfigError`.

With the random parameters forced, both paths give the same pixels (``tests/test_augment.py``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import albumentations as A
import torch
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate

from cifarlab.errors import ConfigError

DATASET_MEAN = "dataset_mean"


def _resolve_mean(spec: Mapping, mean_pixel: tuple[int, int, int]) -> dict:
    return {k: (mean_pixel if v == DATASET_MEAN else v) for k, v in spec.items()}


def mean_pixel(mean: Sequence[float]) -> tuple[int, int, int]:
    """The per-channel mean (pixel/255 units) as the uint8 fill value albumentations uses."""
    return tuple(int(round(m * 255)) for m in mean)


def build_train_transform(specs: Sequence[Mapping], mean: Sequence[float], seed: int | None = None) -> A.Compose:
    """Compose the augmentation specs, then HWC -> CHW (workers path).

    Args:
        specs: Hydra specs of albumentations transforms, in order.
        mean: per-channel training mean in [0, 1] units (pixel / 255), the ``dataset_mean`` fill.
        seed: seed of the pipeline's own random state (albumentations ignores the global seeds);
            ``None`` draws one from the OS, so runs are not reproducible.

    Returns:
        A Compose mapping ``image=`` (32, 32, 3) uint8 to ``{"image": (3, 32, 32) uint8 tensor}``.

    Raises:
        ConfigError: a spec that albumentations cannot instantiate (bad name or argument), or a
            device-only transform (:class:`AlternatingFlip`).
    """
    fill = mean_pixel(mean)
    transforms = []
    for i, spec in enumerate(specs):
        if spec.get("_target_") in DEVICE_ONLY:
            raise ConfigError(
                f"data.train_transforms[{i}] ({spec['_target_']}) exists only on the device path: "
                "set data.augment_on=device, or use a per-image transform such as albumentations.HorizontalFlip."
            )
        try:
            transforms.append(instantiate(_resolve_mean(spec, fill)))
        except Exception as err:  # hydra wraps import and argument errors in its own types
            raise ConfigError(
                f"data.train_transforms[{i}] ({spec.get('_target_')}) could not be built: {err}. "
                "Check the transform name and its arguments against albumentations 2.0.8."
            ) from err
    return A.Compose(transforms + [ToTensorV2()], seed=seed)


def build_eval_transform() -> A.Compose:
    """No augmentation (validation and test): (32, 32, 3) uint8 -> (3, 32, 32) uint8 tensor."""
    return A.Compose([ToTensorV2()])


# ---------------------------------------------------------------- device path: batched tensor ops
@dataclass
class BatchContext:
    """What a batched op may draw on: the batch's dataset ``indices`` (N,) int64 of a dataset of
    ``dataset_size`` images, the ``epoch`` (0-based), the run's ``seed`` and the device
    ``generator`` that per-batch random draws come from."""

    indices: torch.Tensor
    dataset_size: int
    epoch: int
    seed: int
    generator: torch.Generator


BatchedOp = Callable[[torch.Tensor, BatchContext], torch.Tensor]


def _rand(n: int, ctx: BatchContext, device: torch.device) -> torch.Tensor:
    return torch.rand(n, device=device, generator=ctx.generator)


def _randint(high: torch.Tensor | int, n: int, ctx: BatchContext, device: torch.device) -> torch.Tensor:
    """Integers uniform over [0, high] (inclusive, as albumentations draws offsets), shape (n,).
    ``high`` is an int or an (n,) tensor on ``device`` (no host-to-device copy either way)."""
    return (torch.rand(n, device=device, generator=ctx.generator) * (high + 1)).long()


def _fill_value(fill: float | Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """``fill`` as a (1, C or 1, 1, 1) tensor of ``like``'s dtype on its device, made by a fill
    kernel per channel rather than a host-to-device copy (which would wait on the device)."""
    values = [fill] if isinstance(fill, (int, float)) else list(fill)
    out = torch.empty((1, len(values), 1, 1), dtype=like.dtype, device=like.device)
    for c, value in enumerate(values):
        out[:, c].fill_(value)
    return out


def _border_index(size: int, before: int, after: int, border_mode: int, device: torch.device) -> torch.Tensor:
    """Source row/column of each padded position for OpenCV's border modes 1, 2 and 4."""
    idx = torch.arange(-before, size + after, device=device)
    if border_mode == 1:  # BORDER_REPLICATE
        return idx.clamp(0, size - 1)
    if border_mode == 2:  # BORDER_REFLECT: edge repeated
        idx = torch.where(idx < 0, -idx - 1, idx)
        return torch.where(idx > size - 1, 2 * size - 1 - idx, idx)
    idx = idx.abs()  # BORDER_REFLECT_101: edge not repeated (torch's and numpy's "reflect")
    return torch.where(idx > size - 1, 2 * (size - 1) - idx, idx)


def pad_if_needed(min_height: int, min_width: int, border_mode: int = 4, fill: float | Sequence[float] = 0,
                  **_: object) -> BatchedOp:
    """Batched ``albumentations.PadIfNeeded`` (position centre): (N, C, H, W) -> (N, C, max(H, min_height), ...).

    Raises:
        ConfigError: a border mode other than 0 (constant), 1 (replicate), 2 (reflect), 4 (reflect-101).
    """
    if border_mode not in (0, 1, 2, 4):
        raise ConfigError(f"PadIfNeeded border_mode={border_mode} has no batched equivalent (use 0, 1, 2 or 4)")

    def op(x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, left = max(0, min_height - h) // 2, max(0, min_width - w) // 2
        bottom, right = max(0, min_height - h) - top, max(0, min_width - w) - left
        if border_mode == 0:
            out = torch.empty((*x.shape[:2], h + top + bottom, w + left + right), dtype=x.dtype, device=x.device)
            out[:] = _fill_value(fill, x)
            out[..., top:top + h, left:left + w] = x
            return out
        rows = _border_index(h, top, bottom, border_mode, x.device)
        cols = _border_index(w, left, right, border_mode, x.device)
        return x.index_select(2, rows).index_select(3, cols)

    return op


def random_crop(height: int, width: int, **_: object) -> BatchedOp:
    """Batched ``albumentations.RandomCrop``: an offset per image, uniform over 0..H-height and
    0..W-width; (N, C, H, W) -> (N, C, height, width)."""

    def op(x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        n, c, h, w = x.shape
        dy, dx = _randint(h - height, n, ctx, x.device), _randint(w - width, n, ctx, x.device)
        rows = (dy[:, None] + torch.arange(height, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(width, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        channel = torch.arange(c, device=x.device)[None, :, None, None]
        return x[batch, channel, rows, cols]

    return op


def horizontal_flip(p: float = 0.5, **_: object) -> BatchedOp:
    """Batched ``albumentations.HorizontalFlip``: each image mirrored left-right with probability ``p``."""

    def op(x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        flip = (_rand(len(x), ctx, x.device) < p).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(-1), x)

    return op


def _range(value: Sequence[int] | int, name: str) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(low, int) and isinstance(high, int)) or low > high:
        raise ConfigError(f"CoarseDropout {name}={value!r}: the device path takes whole pixels [low, high]")
    return low, high


def coarse_dropout(num_holes_range: Sequence[int] = (1, 1), hole_height_range: Sequence[int] = (8, 8),
                   hole_width_range: Sequence[int] = (8, 8), fill: float | Sequence[float] = 0, p: float = 0.5,
                   **_: object) -> BatchedOp:
    """Batched ``albumentations.CoarseDropout`` (cutout): with probability ``p``, 1..k rectangular
    holes per image, each wholly inside the image, filled with ``fill`` (a pixel value or one per channel).

    Raises:
        ConfigError: fractional hole sizes (albumentations' float ranges) or a non-numeric fill.
    """
    holes_low, holes_high = _range(num_holes_range, "num_holes_range")
    (h_low, h_high), (w_low, w_high) = _range(hole_height_range, "hole_height_range"), _range(hole_width_range, "hole_width_range")
    if isinstance(fill, str):
        raise ConfigError(f"CoarseDropout fill={fill!r} has no batched equivalent: use a number or dataset_mean")

    def op(x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        n, _, h, w = x.shape
        apply = _rand(n, ctx, x.device) < p
        num_holes = holes_low + _randint(holes_high - holes_low, n, ctx, x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        mask = torch.zeros((n, h, w), dtype=torch.bool, device=x.device)
        for k in range(holes_high):
            hole_h = h_low + _randint(h_high - h_low, n, ctx, x.device)
            hole_w = w_low + _randint(w_high - w_low, n, ctx, x.device)
            y0 = _randint(h - hole_h, n, ctx, x.device).view(n, 1, 1)
            x0 = _randint(w - hole_w, n, ctx, x.device).view(n, 1, 1)
            inside = (ys >= y0) & (ys < y0 + hole_h.view(n, 1, 1)) & (xs >= x0) & (xs < x0 + hole_w.view(n, 1, 1))
            mask |= inside & (apply & (k < num_holes)).view(n, 1, 1)
        return torch.where(mask[:, None], _fill_value(fill, x), x)

    return op


class AlternatingFlip:
    """Marker spec for the device path's alternating flip (airbench: K. Jordan 2024, "94% on CIFAR-10
    in 3.29 seconds", sec. 3.6): in epoch 0 each image is flipped with probability 0.5; from then on
    each image flips orientation every epoch, so consecutive epochs see both. Device-only: it needs
    the dataset index of each image."""


def alternating_flip(**_: object) -> BatchedOp:
    """Batched :class:`AlternatingFlip`: image ``i`` is flipped in epoch ``e`` iff ``base[i] xor (e odd)``,
    with ``base`` one fair coin per dataset image, drawn from ``ctx.seed`` (so it needs no state across epochs)."""
    cache: dict[str, torch.Tensor] = {}

    def op(x: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        if "base" not in cache:
            coins = torch.Generator().manual_seed(ctx.seed)
            cache["base"] = (torch.rand(ctx.dataset_size, generator=coins) < 0.5).to(x.device)
        flip = cache["base"][ctx.indices] ^ bool(ctx.epoch % 2)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    return op


BATCHED_OPS: dict[str, Callable[..., BatchedOp]] = {
    "albumentations.PadIfNeeded": pad_if_needed,
    "albumentations.RandomCrop": random_crop,
    "albumentations.HorizontalFlip": horizontal_flip,
    "albumentations.CoarseDropout": coarse_dropout,
    "cifarlab.data.augment.AlternatingFlip": alternating_flip,
}
DEVICE_ONLY = {"cifarlab.data.augment.AlternatingFlip"}


class DeviceAugment:
    """The augmentation list as batched ops on uint8 (N, 3, H, W) tensors.

    Args:
        specs: the Hydra specs of ``data.train_transforms`` (the same list the workers path uses).
        mean: per-channel training mean in [0, 1] units (pixel / 255), the ``dataset_mean`` fill.

    ``augment(images, ctx)``: uint8 (N, 3, 32, 32) on any device -> uint8 (N, 3, 32, 32).

    Raises:
        ConfigError: a transform with no batched equivalent (its index and name, and to use
            ``data.augment_on=workers``), or arguments the batched op does not take.
    """

    def __init__(self, specs: Sequence[Mapping], mean: Sequence[float]) -> None:
        fill = mean_pixel(mean)
        self.ops: list[BatchedOp] = []
        for i, spec in enumerate(specs):
            target = spec.get("_target_")
            if target not in BATCHED_OPS:
                raise ConfigError(
                    f"data.train_transforms[{i}] ({target}) has no batched equivalent on the device: "
                    f"use data.augment_on=workers, or only {', '.join(sorted(BATCHED_OPS))}."
                )
            args = {k: v for k, v in _resolve_mean(spec, fill).items() if k != "_target_"}
            self.ops.append(BATCHED_OPS[target](**args))

    def augment(self, images: torch.Tensor, ctx: BatchContext) -> torch.Tensor:
        for op in self.ops:
            images = op(images, ctx)
        return images
