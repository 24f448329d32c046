"""ResNet-18 for CIFAR-10 as in kuangliu/pytorch-cifar (models/resnet.py).

He et al., "Deep Residual Learning for Image Recognition" (2016), adapted to 32x32 inputs:
3x3 stem conv with stride 1 and no stem max-pool, BasicBlocks [2, 2, 2, 2] with 64/128/256/512
channels, 4x4 average pool, Linear(512, 10). 11,173,962 parameters.
"""
from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from cifarlab.config.ranges import NUM_CLASSES, NUM_GROUPS
from cifarlab.models.base import trainable_group
from cifarlab.models.norm import make_norm


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 conv projection) shortcut: (N, c_in, H, W) -> (N, c_out, H/s, W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, num_groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = make_norm(norm, c_out, num_groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = make_norm(norm, c_out, num_groups)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), make_norm(norm, c_out, num_groups)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """kuangliu's CIFAR ResNet-18.

    Args:
        num_classes: size of the output layer.
        norm: ``batch`` | ``group`` | ``layer`` (see :func:`cifarlab.models.norm.make_norm`).
        num_groups: groups for ``norm="group"``.

    Input (N, 3, 32, 32) float; output (N, num_classes) logits, float.
    """

    gradcam_layer = "layer4"  # the last residual stage: a 4x4 map (GradCAM's default target layer)
    feature_blocks = ("stem", "layer1", "layer2", "layer3", "layer4")  # the app's feature maps, in forward order

    def __init__(self, num_classes: Annotated[int, NUM_CLASSES] = 10, norm: str = "batch",
                 num_groups: Annotated[int, NUM_GROUPS] = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), make_norm(norm, 64, num_groups), nn.ReLU(inplace=True))
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        c_in = 64
        for i, (width, stride) in enumerate(zip(widths, strides), start=1):
            blocks = [BasicBlock(c_in, width, stride, norm, num_groups), BasicBlock(width, width, 1, norm, num_groups)]
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
            c_in = width
        self.pool = nn.AdaptiveAvgPool2d(1)  # avg-pool 4 on the 4x4 map, any input size
        self.fc = nn.Linear(512, num_classes)

    def param_groups(self) -> list[dict]:
        """One optimiser group: every trainable parameter at the configured learning rate and weight decay."""
        return trainable_group(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))
