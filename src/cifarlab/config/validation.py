"""The range check of a composed train config, run before any data loads.

Hydra's typed schema (:mod:`cifarlab.config.schema`) catches a wrong *type* at composition; this check
catches a value of the right type that means nothing (``model.optimizer.lr=-1``, ``model.scheduler.pct_start=1.5``).
Each range is declared once, next to its type (:mod:`cifarlab.config.ranges`): in the annotations of our
constructors (the ``_target_`` of a node), of the schema's dataclasses (the top level, ``checkpoint``,
``lr_find``), and, for torch's and Lightning's constructors, in :data:`THIRD_PARTY`. :func:`check_ranges`
walks the config and checks each node against the ranges of what it describes; the message names the key
as the user types it. A key that the composed config lacks (``model.optimizer.momentum`` with Adam) is not
checked.
"""
from __future__ import annotations

import importlib
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cifarlab.config.ranges import (COUNT, DIV_FACTOR, FINAL_DIV_FACTOR, LR, MAX_LR, NON_NEGATIVE, PCT_START,
                                    POSITIVE, UNIT_BELOW_ONE, WEIGHT_DECAY, WHOLE, BatchLimit, Range, declared_ranges)
from cifarlab.errors import ConfigError

__all__ = ["Range", "check_ranges", "lookup", "THIRD_PARTY", "ORDERED"]

_ABSENT = object()

# The ranges of third-party constructors' arguments, by the ``_target_`` that names them in conf/.
THIRD_PARTY: dict[str, dict[str, Range]] = {
    "torch.optim.SGD": {
        "lr": LR,
        "momentum": UNIT_BELOW_ONE.means("the fraction of the previous update kept; 1 never forgets"),
        "weight_decay": WEIGHT_DECAY,
    },
    "torch.optim.Adam": {
        "lr": LR,
        "betas": UNIT_BELOW_ONE.means("Adam's running-average factors"),
        "eps": POSITIVE.means("the denominator's guard"),
        "weight_decay": WEIGHT_DECAY,
    },
    "torch.optim.lr_scheduler.OneCycleLR": {
        "max_lr": MAX_LR,
        "pct_start": PCT_START,
        "div_factor": DIV_FACTOR,
        "final_div_factor": FINAL_DIV_FACTOR,
    },
    "torch.nn.CrossEntropyLoss": {
        "label_smoothing": UNIT_BELOW_ONE.means("the probability mass spread over all classes; 1 leaves no label"),
    },
    "lightning.pytorch.callbacks.EarlyStopping": {
        "patience": WHOLE.means("checks without improvement before stopping"),
        "min_delta": NON_NEGATIVE.means("the smallest change counted as improvement"),
    },
    "lightning.pytorch.Trainer": {
        "max_epochs": Range(-1, integer=True, nullable=True, meaning="epochs (-1: no limit)"),
        "min_epochs": Range(0, integer=True, nullable=True, meaning="epochs before early stopping may stop"),
        "max_steps": Range(-1, integer=True, meaning="optimiser steps (-1: no limit)"),
        "num_nodes": COUNT.means("machines"),
        "accumulate_grad_batches": COUNT.means("batches per optimiser step"),
        "gradient_clip_val": Range(0, nullable=True, meaning="the gradient norm clipped to (null: no clipping)"),
        "log_every_n_steps": Range(1, integer=True, nullable=True, meaning="steps between logged points"),
        "check_val_every_n_epoch": Range(1, integer=True, nullable=True, meaning="epochs between validations"),
        "limit_train_batches": BatchLimit(meaning="training batches per epoch"),
        "limit_val_batches": BatchLimit(meaning="validation batches per epoch"),
        "limit_test_batches": BatchLimit(meaning="test batches"),
        "overfit_batches": BatchLimit(meaning="batches trained on repeatedly"),
    },
}

# Nodes without a ``_target_`` whose keys are the arguments of a function (it is called with them).
NODE_OWNERS: dict[str, str] = {"lr_find": "cifarlab.training.lr_finder.find_lr"}

# (smaller key, larger key, why): both present and in range, the first must be below the second.
ORDERED: tuple[tuple[str, str, str], ...] = (
    ("lr_find.min_lr", "lr_find.max_lr", "the range test sweeps the learning rate from min_lr up to max_lr"),
)


def lookup(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key`` as plain Python, or ``_ABSENT`` when the config has no such key."""
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _locate(target: str) -> Any:
    """Our own ``_target_`` (``cifarlab.*``) as the object it names; ``None`` for a third-party one (not imported).
    Not ``hydra.utils.get_object``: it logs an error of its own for a bad target, which instantiate reports later."""
    if not target.startswith("cifarlab."):
        return None
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # instantiate reports a bad target, with its own message


def node_ranges(node: DictConfig, path: str) -> dict[str, Range]:
    """The ranges declared for the keys of ``node`` (at config ``path``): by its schema dataclass, and by the
    constructor its ``_target_`` names (our annotations, or :data:`THIRD_PARTY`) or :data:`NODE_OWNERS` gives."""
    ranges: dict[str, Range] = {}
    schema = OmegaConf.get_type(node)
    if schema is not None and schema is not dict:
        ranges.update(declared_ranges(schema))
    target = node.get("_target_") if "_target_" in node else NODE_OWNERS.get(path)
    if isinstance(target, str):
        owner = _locate(target)
        ranges.update(declared_ranges(owner) if owner is not None else THIRD_PARTY.get(target, {}))
    return ranges


def _nodes(cfg: DictConfig | ListConfig, path: str = ""):
    """Every dict node under ``cfg`` with its config path (``""``, ``"model"``, ``"model.optimizer"``, ...),
    parents first. No value is resolved: an interpolated or missing child is not walked into."""
    if isinstance(cfg, DictConfig):
        yield path, cfg
        keys = [(key, f"{path}.{key}" if path else str(key)) for key in cfg.keys()]
    else:
        keys = [(i, f"{path}[{i}]") for i in range(len(cfg))]
    for key, child_path in keys:
        if OmegaConf.is_interpolation(cfg, key) or OmegaConf.is_missing(cfg, key):
            continue
        child = cfg[key]
        if isinstance(child, (DictConfig, ListConfig)):
            yield from _nodes(child, child_path)


def check_ranges(cfg: DictConfig) -> None:
    """Check every number that ``cfg`` (a composed ``conf/train.yaml``) holds against its declared range,
    and every pair of :data:`ORDERED`. Resolves only the keys it checks, so it reads no data and measures
    nothing.

    Raises:
        ConfigError: the first value out of its range, naming the key, the value, the allowed values and
            what they mean (:meth:`cifarlab.config.ranges.Range.complaint`); or an :data:`ORDERED` pair in
            the wrong order.
    """
    for path, node in _nodes(cfg):
        for name, allowed in node_ranges(node, path).items():
            key = f"{path}.{name}" if path else name
            value = lookup(cfg, key)
            if value is not _ABSENT and not allowed.allows(value):
                raise ConfigError(allowed.complaint(key, value))
    for small, large, why in ORDERED:
        low, high = lookup(cfg, small), lookup(cfg, large)
        if low is not _ABSENT and high is not _ABSENT and None not in (low, high) and not low < high:
            raise ConfigError(f"{small}={low!r} must be below {large}={high!r}: {why}. "
                              f"Lower {small} or raise {large}.")
