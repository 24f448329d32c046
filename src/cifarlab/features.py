"""What the network computes inside: one channel's activation in each block, and conv kernels as image grids.

Both render to uint8 RGB arrays that the app shows as they are. Feature maps are scaled to
[0, 1] per map (min to max) and coloured with viridis; kernels of a conv over RGB are shown
as RGB tiles (the whole layer scaled to [0, 1]), other kernels as a grid of output x input
channels on a blue-white-red scale symmetric around 0.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np
import torch
from torch import nn

from cifarlab.errors import ConfigError


@dataclass
class ChannelMap:
    """One block's activation of one channel for one image: ``values`` (h, w) float32."""

    block: str
    channel: int
    channels: int
    values: np.ndarray


def block_channels(net: nn.Module, blocks: Sequence[str], size: int = 32) -> dict[str, int]:
    """Number of output channels of each block, found by a forward pass of a blank (1, 3, size, size) image."""
    return {name: out.shape[1] for name, out in block_outputs(net, torch.zeros(1, 3, size, size), blocks).items()}


def block_outputs(net: nn.Module, image: torch.Tensor, blocks: Sequence[str]) -> dict[str, torch.Tensor]:
    """Outputs (N, C, h, w) of the named submodules ``blocks`` for ``image`` (N, 3, H, W) float32, normalised.

    The hooks go on a copy of ``net`` (as :func:`cifarlab.explain.gradcam` does), so a forward pass
    of ``net`` in another thread (the app serves several users) never runs them.
    """
    net = copy.deepcopy(net).eval()
    outputs: dict[str, torch.Tensor] = {}
    for name in blocks:
        net.get_submodule(name).register_forward_hook(
            lambda _module, _inputs, out, name=name: outputs.__setitem__(name, out.detach().clone()))
    with torch.inference_mode():
        net(image)
    return {name: outputs[name] for name in blocks}


def channel_maps(net: nn.Module, image: torch.Tensor, channel: int, blocks: Sequence[str]) -> list[ChannelMap]:
    """Activation of ``channel`` in each of ``blocks`` for one image (1, 3, H, W) float32, normalised.

    Raises:
        ConfigError: ``channel`` is not an integer in 0 .. (fewest channels of the blocks - 1).
    """
    outputs = block_outputs(net, image, blocks)
    fewest = min(out.shape[1] for out in outputs.values())
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < fewest:
        widths = ", ".join(f"{name} {out.shape[1]}" for name, out in outputs.items())
        raise ConfigError(f"channel {channel!r} is out of range: the blocks have {widths} channels; "
                          f"choose 0..{fewest - 1}")
    return [ChannelMap(name, int(channel), out.shape[1], out[0, channel].float().numpy())
            for name, out in outputs.items()]


def colourise(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """A (h, w) float map scaled to [0, 1] by its own min and max -> (h, w, 3) uint8 RGB (a constant map is dark)."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return (matplotlib.colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def conv_layer_names(net: nn.Module) -> list[str]:
    """Names of the ``nn.Conv2d`` modules of ``net``, in forward order (e.g. ``prep.0``, ``layer1.conv.0``)."""
    return [name for name, module in net.named_modules() if isinstance(module, nn.Conv2d)]


def conv_weight(net: nn.Module, layer: str) -> torch.Tensor:
    """The kernels (out, in, kh, kw) float32 of the conv layer named ``layer``.

    Raises:
        ConfigError: ``layer`` is not the name of a conv layer of ``net``.
    """
    names = conv_layer_names(net)
    if layer not in names:
        raise ConfigError(f"unknown conv layer {layer!r}: choose from {', '.join(names)}")
    return net.get_submodule(layer).weight.detach().float().cpu()


def _tile(tiles: np.ndarray, scale: int, gap: int) -> np.ndarray:
    """(rows, cols, kh, kw, 3) uint8 -> one (rows*(kh*scale+gap)-gap, ...) uint8 image, white gaps."""
    rows, cols, kh, kw, _ = tiles.shape
    tiles = tiles.repeat(scale, axis=2).repeat(scale, axis=3)
    th, tw = kh * scale, kw * scale
    grid = np.full((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            grid[r * (th + gap):r * (th + gap) + th, c * (tw + gap):c * (tw + gap) + tw] = tiles[r, c]
    return grid


def kernel_grid(weight: torch.Tensor, max_out: int = 32, max_in: int = 32, width: int = 640,
                gap: int = 2) -> np.ndarray:
    """Render conv kernels (out, in, kh, kw) as one uint8 RGB image about ``width`` pixels wide.

    With 3 input channels (a conv over the RGB image) each output channel is one RGB tile,
    the whole layer scaled to [0, 1], in a near-square grid of all ``out`` kernels. Otherwise
    tile (r, c) is kernel [r, c] for the first ``max_out`` output and ``max_in`` input
    channels, coloured blue (negative) - white (0) - red (positive), symmetric around 0.
    Each weight is a square of ``width // (columns * kw)`` pixels (at least 1); tiles are
    separated by ``gap`` white pixels.
    """
    w = weight.numpy()
    if w.shape[1] == 3:
        low, high = float(w.min()), float(w.max())
        rgb = (w - low) / (high - low) if high > low else np.zeros_like(w)
        cols = int(np.ceil(np.sqrt(len(w))))
        rows = int(np.ceil(len(w) / cols))
        tiles = np.full((rows * cols, w.shape[2], w.shape[3], 3), 255, dtype=np.uint8)
        tiles[:len(w)] = (rgb.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        tiles = tiles.reshape(rows, cols, *tiles.shape[1:])
    else:
        shown = w[:max_out, :max_in]
        limit = float(np.abs(shown).max()) or 1.0
        tiles = (matplotlib.colormaps["RdBu_r"]((shown / limit + 1) / 2)[..., :3] * 255).round().astype(np.uint8)
    return _tile(tiles, max(1, width // (tiles.shape[1] * tiles.shape[3])), gap)
