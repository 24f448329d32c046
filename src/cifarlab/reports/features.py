"""What the network computes inside: each block's activation of one channel, and conv kernels,
rendered as uint8 RGB arrays.

Feature maps come from torchvision's ``create_feature_extractor`` (an FX graph of the network
that returns the blocks' outputs and shares its weights; no hooks; every BatchNorm class is a leaf
of the graph, so subclasses such as airbench's trace too), each map scaled to [0, 1]
by its own min and max and coloured with viridis. Kernels over RGB are RGB tiles (the layer
scaled to [0, 1]); deeper ones a grid of output x input channels, blue (< 0) - white - red (> 0).
"""
from __future__ import annotations

import matplotlib
import numpy as np
import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.utils import make_grid

from cifarlab.errors import ConfigError
from cifarlab.models.base import feature_blocks


class BlockOutputs:
    """The outputs of the network's ``feature_blocks`` (``prep``, ``layer1``.. for ResNet-9; ``stem``,
    ``layer1``.. for ResNet-18; ``whiten``, ``block1``.. for airbench), or of its top-level blocks
    (heads and pools excluded) for a network that names none.

    Build it before serving: tracing switches ``net`` between train and eval mode for a moment.
    Attributes: ``blocks`` (names, in forward order), ``channels`` (block -> its output channels).
    """

    def __init__(self, net: nn.Module, size: int = 32) -> None:
        self.blocks = feature_blocks(net)
        norms = sorted({type(m) for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}, key=str)
        self.extractor = create_feature_extractor(net, return_nodes=self.blocks, tracer_kwargs={"leaf_modules": norms})
        device = next(net.parameters()).device
        self.channels = {name: out.shape[1] for name, out in self(torch.zeros(1, 3, size, size, device=device)).items()}

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised images (N, 3, H, W) float32 -> {block: its output (N, C, h, w)}."""
        with torch.inference_mode():
            return self.extractor(x)


def colourise(values: np.ndarray) -> np.ndarray:
    """A (h, w) float map scaled by its own min and max -> (h, w, 3) uint8 viridis (a constant map is dark)."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return (matplotlib.colormaps["viridis"](scaled)[..., :3] * 255).round().astype(np.uint8)


def conv_layer_names(net: nn.Module) -> list[str]:
    """Names of the ``nn.Conv2d`` modules of ``net``, in forward order (e.g. ``prep.0``, ``layer1.conv.0``)."""
    return [name for name, module in net.named_modules() if isinstance(module, nn.Conv2d)]


def kernel_grid(net: nn.Module, layer: str, max_channels: int = 32, width: int = 640, gap: int = 2) -> np.ndarray:
    """The kernels (out, in, kh, kw) of conv layer ``layer`` as one (H, W, 3) uint8 image about ``width`` wide.

    Over RGB (in = 3): one RGB tile per output channel in a near-square grid. Otherwise tile
    (r, c) is kernel [r, c] of the first ``max_channels`` output and input channels. Each weight
    is a square of ``width // (columns * kw)`` pixels (at least 1); tiles are ``gap`` white pixels apart.

    Raises:
        ConfigError: ``layer`` is not a conv layer of ``net``.
    """
    if layer not in conv_layer_names(net):
        raise ConfigError(f"unknown conv layer {layer!r}: choose from {', '.join(conv_layer_names(net))}")
    w = net.get_submodule(layer).weight.detach().float().cpu()
    if w.shape[1] == 3:
        tiles, cols = (w - w.min()) / (w.max() - w.min()).clamp_min(1e-12), int(np.ceil(np.sqrt(len(w))))
    else:
        shown = w[:max_channels, :max_channels]
        cols = shown.shape[1]
        rgb = matplotlib.colormaps["RdBu_r"]((shown / shown.abs().max().clamp_min(1e-12) + 1).numpy() / 2)[..., :3]
        tiles = torch.from_numpy(rgb).float().flatten(0, 1).permute(0, 3, 1, 2)  # (out * in, 3, kh, kw)
    scale = max(1, width // (cols * w.shape[3]))
    tiles = tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3)
    grid = make_grid(tiles, nrow=cols, padding=gap, pad_value=1.0)[:, gap:-gap, gap:-gap]  # no outer border
    return (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
