"""Normalisation layers selectable by name (the seed notebooks compare batch, group and layer norm)."""
from __future__ import annotations

from torch import nn

from cifarlab.errors import ConfigError

NORMS = ("batch", "group", "layer")


def make_norm(norm: str, channels: int, num_groups: int = 8) -> nn.Module:
    """Return a normalisation layer for ``channels`` feature maps.

    Args:
        norm: ``"batch"`` (``BatchNorm2d``), ``"group"`` (``GroupNorm(num_groups, C)``) or
            ``"layer"`` (``GroupNorm(1, C)``: normalises over C, H and W of each sample, the
            usual layer norm for conv nets). All three hold 2 * C learnable parameters, so a
            model's parameter count does not depend on the choice.
        channels: number of channels C of the (N, C, H, W) input.
        num_groups: groups for ``norm="group"``; must divide ``channels``.

    Raises:
        ConfigError: unknown ``norm`` or ``num_groups`` that does not divide ``channels`` (a ``ValueError``).
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        if channels % num_groups:
            raise ConfigError(
                f"model.net.num_groups={num_groups} does not divide {channels} channels; "
                "choose a divisor of 64 (e.g. 4, 8, 16, 32)"
            )
        return nn.GroupNorm(num_groups, channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels)
    raise ConfigError(f"model.net.norm={norm!r} is not one of {', '.join(NORMS)}: choose one, e.g. model.net.norm=batch")
