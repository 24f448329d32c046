"""Albumentations pipelines built from the YAML lists in ``conf/data/augmentation/``.

Each list entry is a Hydra spec (``_target_`` + arguments) of an albumentations transform
applied to the uint8 (32, 32, 3) HWC image before normalisation. An argument whose value is
the string ``dataset_mean`` is replaced by the training set's per-channel mean pixel (0-255),
so CoarseDropout holes and padding are filled with the mean, which normalises to 0
(cutout as in DeVries & Taylor 2017 and the seed recipes).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import albumentations as A
from albumentations.pytorch import ToTensorV2
from hydra.utils import instantiate

from cifarlab.errors import ConfigError

DATASET_MEAN = "dataset_mean"


def _resolve_mean(spec: Mapping, mean_pixel: tuple[int, int, int]) -> dict:
    return {k: (mean_pixel if v == DATASET_MEAN else v) for k, v in spec.items()}


def normalise_and_tensor(mean: Sequence[float], std: Sequence[float]) -> list[A.BasicTransform]:
    """Normalize((x/255 - mean) / std) then HWC uint8 -> CHW float32 tensor."""
    return [A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0), ToTensorV2()]


def build_train_transform(specs: Sequence[Mapping], mean: Sequence[float], std: Sequence[float],
                          seed: int | None = None) -> A.Compose:
    """Compose the augmentation specs, then normalise with the training statistics.

    Args:
        specs: Hydra specs of albumentations transforms, in order.
        mean, std: per-channel training statistics in [0, 1] units (pixel / 255).
        seed: seed of the pipeline's own random state (albumentations ignores the global seeds);
            ``None`` draws one from the OS, so runs are not reproducible.

    Returns:
        A Compose mapping ``image=`` (32, 32, 3) uint8 to ``{"image": (3, 32, 32) float32 tensor}``.

    Raises:
        ConfigError: a spec that albumentations cannot instantiate (bad name or argument).
    """
    mean_pixel = tuple(int(round(m * 255)) for m in mean)
    transforms = []
    for i, spec in enumerate(specs):
        try:
            transforms.append(instantiate(_resolve_mean(spec, mean_pixel)))
        except Exception as err:  # hydra wraps import and argument errors in its own types
            raise ConfigError(
                f"data.train_transforms[{i}] ({spec.get('_target_')}) could not be built: {err}. "
                "Check the transform name and its arguments against albumentations 2.0.8."
            ) from err
    return A.Compose(transforms + normalise_and_tensor(mean, std), seed=seed)


def build_eval_transform(mean: Sequence[float], std: Sequence[float]) -> A.Compose:
    """Normalise only (validation and test): (32, 32, 3) uint8 -> (3, 32, 32) float32 tensor."""
    return A.Compose(normalise_and_tensor(mean, std))
