"""David Page's ResNet-9 ("custom ResNet") for CIFAR-10.

Source: D. Page, "How to train your ResNet" (Myrtle.ai, 2018), https://github.com/davidcpage/cifar10-fast
(the 94 % in 79 s DAWNBench entry). Layout, as in Page's diagram:

    prep    conv 64
    layer1  conv 128 + max-pool, residual(conv 128, conv 128)
    layer2  conv 256 + max-pool
    layer3  conv 512 + max-pool, residual(conv 512, conv 512)
    head    MaxPool(4) -> flatten -> Linear(512, 10, bias=False) -> Mul(0.125)

Every conv is 3x3, stride 1, padding 1, no bias, followed by norm + ReLU. 6,573,120 parameters.

Where the max-pool sits is an option, because Page's posts used both:
- ``pool_before_norm=False``: conv -> norm -> ReLU -> max-pool, the DAWNBench network of part 4
  (cifar10-fast ``dawn.py`` / ``torch_backend.conv_bn``; 94.08 % median in 24 epochs on the official data);
- ``pool_before_norm=True``: conv -> max-pool -> norm -> ReLU, from "How to train your ResNet 8: bag of
  tricks" (pooling first makes norm and ReLU run on a quarter of the pixels).
"""
from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from cifarlab.config.ranges import LOGIT_SCALE, NUM_CLASSES, NUM_GROUPS
from cifarlab.models.base import trainable_group
from cifarlab.models.norm import make_norm


def conv_block(c_in: int, c_out: int, norm: str, num_groups: int, pool: bool = False,
               pool_before_norm: bool = True) -> nn.Sequential:
    """3x3 conv (no bias) + norm + ReLU, with a 2x2 max-pool after the conv (``pool_before_norm``)
    or after the ReLU: (N, c_in, H, W) -> (N, c_out, H', W')."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                               make_norm(norm, c_out, num_groups), nn.ReLU(inplace=True)]
    if pool:
        layers.insert(1 if pool_before_norm else 3, nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """``x + f(x)`` for a shape-preserving ``f``."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Stage(nn.Module):
    """Conv + max-pool, optionally followed by a residual of two convs (Page's "layer")."""

    def __init__(self, c_in: int, c_out: int, norm: str, num_groups: int, residual: bool,
                 pool_before_norm: bool = True) -> None:
        super().__init__()
        self.conv = conv_block(c_in, c_out, norm, num_groups, pool=True, pool_before_norm=pool_before_norm)
        self.res = (
            Residual(nn.Sequential(conv_block(c_out, c_out, norm, num_groups), conv_block(c_out, c_out, norm, num_groups)))
            if residual
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.conv(x))


class CustomResNet(nn.Module):
    """Page's ResNet-9 for 32x32 RGB images.

    Args:
        num_classes: size of the output layer.
        norm: ``batch`` | ``group`` | ``layer`` (see :func:`cifarlab.models.norm.make_norm`).
        num_groups: groups for ``norm="group"``.
        logit_scale: the logits' multiplier, Page's final ``Mul(0.125)``: it keeps the initial
            loss near ln 10 (about 5.3 without it) and acts as a temperature for the rest of training.
        pool_before_norm: max-pool right after the conv (True, "bag of tricks") or after the ReLU
            (False, the DAWNBench network); see the module docstring.

    Input (N, 3, 32, 32) float; output (N, num_classes) logits, float.
    """

    gradcam_layer = "layer3"  # the last conv block: a 4x4 map (GradCAM's default target layer)
    feature_blocks = ("prep", "layer1", "layer2", "layer3")  # the app's feature maps, in forward order

    def __init__(self, num_classes: Annotated[int, NUM_CLASSES] = 10, norm: str = "batch",
                 num_groups: Annotated[int, NUM_GROUPS] = 8, logit_scale: Annotated[float, LOGIT_SCALE] = 0.125,
                 pool_before_norm: bool = True) -> None:
        super().__init__()
        self.logit_scale = logit_scale
        self.prep = conv_block(3, 64, norm, num_groups)
        self.layer1 = Stage(64, 128, norm, num_groups, residual=True, pool_before_norm=pool_before_norm)
        self.layer2 = Stage(128, 256, norm, num_groups, residual=False, pool_before_norm=pool_before_norm)
        self.layer3 = Stage(256, 512, norm, num_groups, residual=True, pool_before_norm=pool_before_norm)
        self.pool = nn.AdaptiveMaxPool2d(1)  # MaxPool(4) on the 4x4 map, any input size
        self.fc = nn.Linear(512, num_classes, bias=False)

    def param_groups(self) -> list[dict]:
        """One optimiser group: every trainable parameter at the configured learning rate and weight decay."""
        return trainable_group(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(torch.flatten(self.pool(x), 1)) * self.logit_scale
