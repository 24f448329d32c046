"""Range checks of the numeric config keys, run on the composed config before any data loads.

Hydra's typed schema (:mod:`cifarlab.config.schema`) catches a wrong *type* at composition; this table
catches a value of the right type that means nothing (``model.optimizer.lr=-1``, ``model.scheduler.pct_start=1.5``).
The nodes stay plain constructor arguments (``_target_`` + the argument names); the table is keyed
by the command-line spelling of each argument, so the message names what the user typed. A key that
the composed config lacks (``model.optimizer.momentum`` with Adam, ``lr_find`` without ``lr_find=...``) is
not checked. ``data``'s counts are checked by :class:`cifarlab.data.ImageDataModule` itself, also
before it reads anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cifarlab.errors import ConfigError

_ABSENT = object()


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


@dataclass(frozen=True)
class Range:
    """The finite numbers between ``low`` and ``high`` (``None``: unbounded), each bound open or
    closed; ``integer``: whole numbers only; ``nullable``: ``null`` allowed too. Booleans and
    strings are never in a range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    nullable: bool = False

    def __contains__(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.integer and value != int(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            low, high = "(" if self.low_open else "[", ")" if self.high_open else "]"
            text = f"{kind} in {low}{_number(self.low)}, {_number(self.high)}{high}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {_number(self.low)}"
        else:
            text = kind
        return text + (" or null" if self.nullable else "")


@dataclass(frozen=True)
class BatchLimit:
    """Lightning's ``limit_*_batches`` / ``overfit_batches``: a fraction of the batches (a float in
    [0, 1]), a number of batches (a whole number >= 0), or ``null``."""

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, float):
            return value in Range(0, 1)
        return value in Range(0, integer=True, nullable=True)

    def __str__(self) -> str:
        return "a fraction of the batches in [0.0, 1.0], a whole number of batches >= 0, or null"


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)  # (0, 1)
UNIT_BELOW_ONE = Range(0, 1, high_open=True)             # [0, 1)
COUNT = Range(1, integer=True)
SEED = Range(0, 2**32 - 1, integer=True)                 # numpy's and Lightning's seed range

# key -> (allowed values, what the value means). A list value (widths, betas) is checked element by element.
RANGES: dict[str, tuple[Range | BatchLimit, str]] = {
    "seed": (SEED, "the global seed"),
    "data.seed": (Range(0, 2**32 - 1, integer=True, nullable=True), "the data order's seed (null: the global seed)"),
    "checkpoint.every_n_minutes": (POSITIVE, "minutes between mid-epoch checkpoints"),
    "model.net.num_classes": (COUNT, "outputs of the last layer"),
    "model.net.widths": (Range(1, integer=True, nullable=True), "channels of each conv group; null: the budget's choice"),
    "model.net.num_groups": (COUNT, "GroupNorm groups"),
    "model.net.bn_momentum": (Range(0, 1), "PyTorch-convention BatchNorm momentum"),
    "model.net.logit_scale": (POSITIVE, "the logits' multiplier"),
    "model.net.bias_lr_scale": (POSITIVE, "the BatchNorm biases' learning-rate multiplier"),
    "model.optimizer.lr": (POSITIVE, "the learning rate"),
    "model.optimizer.momentum": (UNIT_BELOW_ONE, "the fraction of the previous update kept; 1 never forgets"),
    "model.optimizer.weight_decay": (NON_NEGATIVE, "the weight decay coefficient"),
    "model.optimizer.betas": (UNIT_BELOW_ONE, "Adam's running-average factors"),
    "model.optimizer.eps": (POSITIVE, "the denominator's guard"),
    "model.scheduler.max_lr": (POSITIVE, "the peak learning rate"),
    "model.scheduler.pct_start": (OPEN_UNIT, "the fraction of training spent warming up"),
    "model.scheduler.div_factor": (POSITIVE, "initial lr = max_lr / div_factor"),
    "model.scheduler.final_div_factor": (POSITIVE, "final lr = initial lr / final_div_factor"),
    "model.scheduler.budget_s": (Range(0, low_open=True, nullable=True),
                                 "seconds of training the schedule spans; null: it spans trainer.max_steps"),
    "model.loss.label_smoothing": (UNIT_BELOW_ONE, "the probability mass spread over all classes; 1 leaves no label"),
    "lr_find.min_lr": (POSITIVE, "the range test's first learning rate"),
    "lr_find.max_lr": (POSITIVE, "the range test's last learning rate"),
    "lr_find.num_steps": (COUNT, "training steps of the range test"),
    "lr_find.early_stop_threshold": (Range(1, low_open=True, nullable=True),
                                     "stop once the loss exceeds this multiple of its best (null: never)"),
    "callbacks.ema.decay": (UNIT_BELOW_ONE, "the average's weight on its past per update"),
    "callbacks.ema.update_every_n_steps": (COUNT, "steps between updates of the average"),
    "callbacks.lookahead.every_n_steps": (COUNT, "steps between lookahead updates"),
    "callbacks.lookahead.base_decay": (UNIT_BELOW_ONE, "the slow weights' decay at the end of training"),
    "callbacks.early_stopping.patience": (Range(0, integer=True), "checks without improvement before stopping"),
    "callbacks.early_stopping.min_delta": (NON_NEGATIVE, "the smallest change counted as improvement"),
    "callbacks.finite_loss.every_n_steps": (COUNT, "steps between checks of the training loss"),
    "trainer.max_epochs": (Range(-1, integer=True, nullable=True), "epochs (-1: no limit)"),
    "trainer.min_epochs": (Range(0, integer=True, nullable=True), "epochs before early stopping may stop"),
    "trainer.max_steps": (Range(-1, integer=True), "optimiser steps (-1: no limit)"),
    "trainer.num_nodes": (COUNT, "machines"),
    "trainer.accumulate_grad_batches": (COUNT, "batches per optimiser step"),
    "trainer.gradient_clip_val": (Range(0, nullable=True), "the gradient norm clipped to (null: no clipping)"),
    "trainer.log_every_n_steps": (Range(1, integer=True, nullable=True), "steps between logged points"),
    "trainer.check_val_every_n_epoch": (Range(1, integer=True, nullable=True), "epochs between validations"),
    "trainer.limit_train_batches": (BatchLimit(), "training batches per epoch"),
    "trainer.limit_val_batches": (BatchLimit(), "validation batches per epoch"),
    "trainer.limit_test_batches": (BatchLimit(), "test batches"),
    "trainer.overfit_batches": (BatchLimit(), "batches trained on repeatedly"),
}

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


def check_ranges(cfg: DictConfig) -> None:
    """Check every key of :data:`RANGES` and every pair of :data:`ORDERED` that ``cfg`` (a composed
    ``conf/train.yaml``) has. Resolves only those keys, so it reads no data and measures nothing.

    Raises:
        ConfigError: the first value out of its range, naming the key, the value, the allowed
            values and what they mean; or an :data:`ORDERED` pair in the wrong order.
    """
    for key, (allowed, meaning) in RANGES.items():
        value = lookup(cfg, key)
        if value is _ABSENT:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(v in allowed for v in values):
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            each = "each value" if isinstance(value, list) else "it"
            raise ConfigError(f"{key}={value!r} is {'out of range' if numbers else 'not a number'}: "
                              f"{each} must be {allowed} ({meaning}). "
                              f"Set {key} to such a value, on the command line or in the preset that sets it.")
    for small, large, why in ORDERED:
        low, high = lookup(cfg, small), lookup(cfg, large)
        if low is not _ABSENT and high is not _ABSENT and None not in (low, high) and not low < high:
            raise ConfigError(f"{small}={low!r} must be below {large}={high!r}: {why}. "
                              f"Lower {small} or raise {large}.")
