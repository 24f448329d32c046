"""How a number's range is declared, next to its type, and the one check of it.

A constructor argument or dataclass field states its range in its annotation::

    def __init__(self, logit_scale: Annotated[float, POSITIVE.means("the logits' multiplier")] = 1 / 9): ...

    @dataclass
    class CompareConfig:
        alpha: Annotated[float, OPEN_UNIT.means("the test's significance level")] = 0.05

:func:`declared_ranges` reads those annotations, and :func:`check_values` checks values against them,
raising :class:`~cifarlab.errors.ConfigError` with the key's command-line spelling. The composed config is
checked node by node (:func:`cifarlab.config.validation.check_ranges`); a dataclass checks its own fields on
construction (:func:`check_fields`); a constructor that users call from Python checks its arguments
(:func:`check_arguments`). Arguments of third-party constructors (torch, Lightning) are declared in one
table, :data:`cifarlab.config.validation.THIRD_PARTY`.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from cifarlab.errors import ConfigError


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Range:
    """The finite numbers between ``low`` and ``high`` (``None``: unbounded), each bound open or
    closed; ``integer``: whole numbers only; ``nullable``: ``null`` allowed too. Booleans and
    strings are never in a range. A list value (widths, betas) is checked element by element.

    ``meaning`` says what the value means, in the message; ``message`` replaces the whole message
    (a ``str.format`` template of ``key`` and ``value``) where an entry point keeps its own wording."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    nullable: bool = False
    meaning: str = ""
    message: str | None = None

    def means(self, meaning: str, message: str | None = None) -> Range:
        """This range, saying what its value means (and, optionally, with its own message template)."""
        return replace(self, meaning=meaning, message=message)

    def __contains__(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if not _numeric(value) or not math.isfinite(value):
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

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (a number, ``None`` or a list of them) is in the range, each element of a list."""
        return all(v in self for v in (value if isinstance(value, list) else [value]))

    def complaint(self, key: str, value: Any) -> str:
        """The message for ``key=value`` out of this range: the key as typed, the value, the allowed values
        and what they mean, and what to do."""
        if self.message is not None:
            return self.message.format(key=key, value=value)
        values = value if isinstance(value, list) else [value]
        what = "out of range" if all(_numeric(v) for v in values) else "not a number"
        each = "each value" if isinstance(value, list) else "it"
        meaning = f" ({self.meaning})" if self.meaning else ""
        return (f"{key}={value!r} is {what}: {each} must be {self}{meaning}. "
                f"Set {key} to such a value, on the command line or in the preset that sets it.")


@dataclass(frozen=True)
class BatchLimit(Range):
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
UNIT = Range(0, 1)                                       # [0, 1]
UNIT_BELOW_ONE = Range(0, 1, high_open=True)             # [0, 1)
COUNT = Range(1, integer=True)                           # 1, 2, ...
WHOLE = Range(0, integer=True)                           # 0, 1, ...
SEED = Range(0, 2**32 - 1, integer=True)                 # numpy's and Lightning's seed range

# Arguments that several constructors share (torch's OneCycleLR and our TimeBudgetOneCycle; SGD and Adam).
LR = POSITIVE.means("the learning rate")
WEIGHT_DECAY = NON_NEGATIVE.means("the weight decay coefficient")
MAX_LR = POSITIVE.means("the peak learning rate")
PCT_START = OPEN_UNIT.means("the fraction of training spent warming up")
DIV_FACTOR = POSITIVE.means("initial lr = max_lr / div_factor")
FINAL_DIV_FACTOR = POSITIVE.means("final lr = initial lr / final_div_factor")
NUM_CLASSES = COUNT.means("outputs of the last layer")
LOGIT_SCALE = POSITIVE.means("the logits' multiplier")
NUM_GROUPS = COUNT.means("GroupNorm groups")


def range_of(hint: Any) -> Range | None:
    """The :class:`Range` in an ``Annotated[...]`` type hint, or ``None``."""
    if typing.get_origin(hint) is typing.Annotated:
        return next((meta for meta in typing.get_args(hint)[1:] if isinstance(meta, Range)), None)
    return None


def declared_ranges(owner: Callable | type) -> dict[str, Range]:
    """The ranges that ``owner`` declares: a dataclass's fields, or the arguments of a function or of a
    class's ``__init__`` (the class's own and those of its bases, the nearest first), by name."""
    if dataclasses.is_dataclass(owner):
        hints = typing.get_type_hints(owner, include_extras=True)
        return {f.name: r for f in dataclasses.fields(owner) if (r := range_of(hints.get(f.name))) is not None}
    ranges: dict[str, Range] = {}
    for fn in ([c.__dict__["__init__"] for c in owner.__mro__ if "__init__" in c.__dict__]
               if inspect.isclass(owner) else [owner]):
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except (NameError, TypeError):  # a third-party signature that does not resolve: declares nothing
            continue
        for name, hint in hints.items():
            if (found := range_of(hint)) is not None:
                ranges.setdefault(name, found)
    return ranges


def check_values(values: Mapping[str, Any], ranges: Mapping[str, Range], prefix: str = "") -> None:
    """Check each of ``values`` that ``ranges`` declares (a name missing from ``values`` is not checked).

    Args:
        values: argument or field name -> plain value (a number, ``None``, a list of numbers, or anything
            else, which is then "not a number").
        ranges: name -> its :class:`Range`, as :func:`declared_ranges` returns them.
        prefix: the config path of the node, as the user types it (``"model.optimizer"``; ``""`` at the top).

    Raises:
        ConfigError: the first value out of its range, in the order of ``ranges``: see :meth:`Range.complaint`.
    """
    for name, allowed in ranges.items():
        if name in values and not allowed.allows(values[name]):
            raise ConfigError(allowed.complaint(f"{prefix}.{name}" if prefix else name, values[name]))


def check_fields(instance: Any, prefix: str = "") -> None:
    """Check the fields of a dataclass ``instance`` against its declared ranges, and those of the dataclasses
    its fields hold (their keys under ``prefix.field``); call it in the ``__post_init__`` of a config's top.

    Raises:
        ConfigError: see :func:`check_values`.
    """
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    check_values(values, declared_ranges(type(instance)), prefix)
    for name, value in values.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_fields(value, f"{prefix}.{name}" if prefix else name)


def check_arguments(owner: Callable | type, arguments: Mapping[str, Any], prefix: str = "") -> None:
    """Check a constructor's ``arguments`` (its ``locals()`` at the top of ``__init__``) against the ranges
    ``owner`` declares.

    Raises:
        ConfigError: see :func:`check_values`.
    """
    check_values(arguments, declared_ranges(owner), prefix)
