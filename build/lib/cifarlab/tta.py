"""Test-time augmentation: the logits of a batch averaged over mirrored (and shifted) views.

airbench's ``infer`` (K. Jordan 2024, sec. 3.7): ``flip`` averages the image and its left-right
mirror (about +0.3 to +0.5 points on ResNet-9); ``flip_translate`` also averages the mirrored pairs
of the image shifted one pixel up-left and down-right (reflect padding), weighted 1/2 : 1/4 : 1/4.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

TTA_MODES = ("none", "flip", "flip_translate")


def tta_logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, tta: str,
               plain: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (N, C) of ``images`` (N, 3, H, W) float, normalised, under test-time augmentation ``tta``.

    ``plain`` may pass ``model(images)`` when already computed. Raises ``ValueError`` on an unknown mode.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta={tta!r} is not one of {', '.join(TTA_MODES)}")
    plain = model(images) if plain is None else plain
    if tta == "none":
        return plain
    mirrored = 0.5 * (plain + model(images.flip(-1)))
    if tta == "flip":
        return mirrored
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    h, w = images.shape[-2:]
    shifted = [padded[..., :h, :w], padded[..., 2:h + 2, 2:w + 2]]
    return 0.5 * mirrored + 0.25 * sum(0.5 * (model(x) + model(x.flip(-1))) for x in shifted)
