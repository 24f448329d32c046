"""What a network of the zoo offers the rest of cifarlab, declared once.

:class:`Network` is the contract of every class in :mod:`cifarlab.models`; the LightningModule (its optimiser
groups), GradCAM (its default target layer) and the app (its feature maps) read it through the functions below.
A network from elsewhere (``model.net._target_=torchvision.models.resnet18``) works too: the functions fall back
to one optimiser group and to the network's top-level blocks. :class:`Whitened` is airbench's frozen first layer,
which :class:`cifarlab.training.callbacks.AirbenchWhitening` initialises and freezes.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

# Top-level children that output no (N, C, H, W) feature map of their own: heads, pools, identities.
NOT_BLOCKS = (nn.Linear, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool2d, nn.Identity)


@runtime_checkable
class Network(Protocol):
    """A classifier of the zoo: normalised images (N, 3, H, W) float32 -> logits (N, num_classes).

    Attributes:
        gradcam_layer: the block GradCAM explains by default (the last conv block: a 4x4 map at 32 px).
        feature_blocks: the blocks whose outputs the app shows, in forward order.
    """

    gradcam_layer: str
    feature_blocks: tuple[str, ...]

    def param_groups(self) -> list[dict]:
        """Optimiser groups ``{"params": [...], "lr_scale": float, "weight_decay_scale": float}`` (the scales
        optional, 1 by default); every trainable parameter is in one group."""
        ...


@runtime_checkable
class Whitened(Protocol):
    """A network whose first layer ``whiten`` (a conv with a trainable bias) is set from training images
    before training (airbench: K. Jordan 2024, legacy/airbench94.py)."""

    whiten: nn.Conv2d

    def init_whitening(self, images: torch.Tensor) -> None:
        """Set ``whiten``'s weights from normalised training images (N, 3, 32, 32) float32."""
        ...


def trainable_group(net: nn.Module) -> list[dict]:
    """One optimiser group of all trainable parameters of ``net``: :meth:`Network.param_groups` of a network
    without parameter-specific learning rates."""
    return [{"params": [p for p in net.parameters() if p.requires_grad]}]


def param_groups(net: nn.Module) -> list[dict]:
    """``net.param_groups()`` for a :class:`Network`, else :func:`trainable_group`."""
    return net.param_groups() if isinstance(net, Network) else trainable_group(net)


def top_level_blocks(net: nn.Module) -> list[str]:
    """Names of ``net``'s top-level children that output feature maps (:data:`NOT_BLOCKS` excluded)."""
    return [name for name, child in net.named_children() if not isinstance(child, NOT_BLOCKS)]


def feature_blocks(net: nn.Module) -> list[str]:
    """``net.feature_blocks`` for a :class:`Network`, else :func:`top_level_blocks`."""
    return list(net.feature_blocks) if isinstance(net, Network) else top_level_blocks(net)


def gradcam_layer(net: nn.Module) -> str | None:
    """``net.gradcam_layer`` for a :class:`Network`, else None (the caller picks the last block)."""
    return net.gradcam_layer if isinstance(net, Network) else None
