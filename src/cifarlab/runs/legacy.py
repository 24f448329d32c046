"""What older versions of cifarlab wrote, read in the current layout: every shim for an old run in one place.

Runs, checkpoints and records of these layouts still load, evaluate and resume (fixtures in ``tests/fixtures``):

- **The network was the ``model`` node** (commits up to 1fa7fc9, before 11968f7): the optimiser, scheduler, loss,
  ``channels_last``, ``compile`` and ``tta`` were top-level keys of ``config.yaml`` (:func:`current_config`).
- **Nested groups** (11968f7 up to 8167430): ``model/net``, ``model/optimizer`` and ``model/scheduler`` chose the
  module's parts and ``model`` the module itself (:func:`current_choices`).
- **Normalisation statistics as hyperparameters** (before 11968f7; fixture from fd7237a): checkpoints without the
  ``pixel_shift``/``pixel_scale`` buffers (:func:`add_missing_buffers`).
- **Renamed classes and modules** (:data:`RENAMED_TARGETS`, :data:`MOVED_MODULES`): ``_target_`` paths of configs
  written before the modules were grouped into ``training/``, ``runs/`` and ``config/`` (``cifarlab.callbacks.Lookahead``,
  ``cifarlab.schedules.TimeBudgetOneCycle``, ``cifarlab.sweeps.SweepSummary``), and
  ``cifarlab.callbacks.progress_bar`` (now in ``cifarlab.training.progress``) and
  ``cifarlab.callbacks.WhiteningBiasFreeze``, now :class:`cifarlab.training.callbacks.AirbenchWhitening` (which
  also initialises the whitening); all written by commits up to c5a6f61.
"""
from __future__ import annotations

from typing import Any

import torch

# Top-level keys of configs written while the network was the model node; they now sit under model.
MOVED_UNDER_MODEL = ("optimizer", "scheduler", "loss", "channels_last", "compile", "tta")
# Config groups of records written while the LightningModule's parts were the groups model/net, model/optimizer and
# model/scheduler (the model group chose the module itself): the user's spelling model=, optimizer=, scheduler= again.
NESTED_GROUPS = {"model/net": "model", "model/optimizer": "optimizer", "model/scheduler": "scheduler"}
# ``_target_`` classes that configs of older runs name, and what they are now.
RENAMED_TARGETS = {"cifarlab.callbacks.WhiteningBiasFreeze": "cifarlab.training.callbacks.AirbenchWhitening",
                   "cifarlab.callbacks.progress_bar": "cifarlab.training.progress.progress_bar"}
# Modules of older runs' ``_target_`` paths, and where they are now.
MOVED_MODULES = {f"cifarlab.{name}": f"cifarlab.{package}.{name}" for package, names in (
    ("training", ("budget", "callbacks", "schedules", "lr_finder", "precision", "distributed", "resume", "tracking")),
    ("runs", ("rundir", "run", "provenance", "sweeps")), ("config", ("schema", "validation", "resolvers"))) for name in names}


def _network_was_the_model(config: dict) -> bool:
    return isinstance(config.get("model"), dict) and "net" not in config["model"] and "optimizer" in config


def current_target(target: str) -> str:
    """The current path of a ``_target_`` that an older config names (:data:`RENAMED_TARGETS`,
    :data:`MOVED_MODULES`); a current one as it is."""
    if target in RENAMED_TARGETS:
        return RENAMED_TARGETS[target]
    module, _, name = target.rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target


def renamed_targets(node: Any) -> Any:
    """``node`` (plain dicts and lists) with every ``_target_`` at its current path (:func:`current_target`)."""
    if isinstance(node, dict):
        return {k: current_target(v) if k == "_target_" and isinstance(v, str) else renamed_targets(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [renamed_targets(v) for v in node]
    return node


def current_config(config: dict) -> dict:
    """A resolved ``config.yaml`` (plain dicts) in the current layout, renamed targets replaced. One written while
    the network was the ``model`` node and the optimiser, scheduler, loss, ``channels_last``, ``compile`` and
    ``tta`` were top-level keys gets ``model: {_target_: ImageClassifier, net: <its model>, optimizer: ..., ...}``."""
    config = renamed_targets(config)
    if not _network_was_the_model(config):
        return config
    model = {"_target_": "cifarlab.module.ImageClassifier", "net": config.pop("model")}
    model |= {key: config.pop(key) for key in MOVED_UNDER_MODEL if key in config}
    return config | {"model": model}


def current_choices(choices: dict) -> dict:
    """Hydra's group choices (``hydra.runtime.choices``) in the current layout, whose groups ``model``,
    ``optimizer`` and ``scheduler`` choose the network, optimiser and scheduler of the LightningModule. A record
    with ``model/net`` (written while those were nested groups, and ``model`` chose the module) gets ``model/net``
    -> ``model``, ``model/optimizer`` -> ``optimizer``, ``model/scheduler`` -> ``scheduler``; the oldest records
    (``model`` chose the network) and current ones are returned as they are."""
    if "model/net" not in choices:
        return choices
    return {NESTED_GROUPS.get(group, group): option for group, option in choices.items() if group != "model"}


def add_missing_buffers(state_dict: dict[str, torch.Tensor], prefix: str, module: torch.nn.Module,
                        names: tuple[str, ...]) -> None:
    """A checkpoint written while the normalisation statistics were hyperparameters has none of the buffers
    ``names``: ``state_dict`` gets ``module``'s own (which its ``mean``/``std`` hyperparameters built, or a fit's
    data module set), so that it loads strictly. Edits ``state_dict`` in place."""
    if not any(prefix + name in state_dict for name in names):
        state_dict.update({prefix + name: getattr(module, name) for name in names})
