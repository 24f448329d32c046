"""What sets two runs apart in their configs: the config-group choices (``hydra.runtime.choices``
of ``.hydra/hydra.yaml``) and the keys of the resolved ``config.yaml`` that differ, less what only
says where or how a run ran.

Left out: the choices of Hydra's own groups (``hydra/launcher``, ``hydra/sweeper``, logging...);
the keys ``paths.*``, ``task_name`` (it names the output folder), ``resume`` and ``data.root``;
any value that lies inside the run's own output dir (checkpoint and logger folders); and with
``ignore_seed`` (seed groups) ``seed`` and ``data.seed``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

IGNORED_KEYS = ("paths", "task_name", "resume", "data.root")
SEED_KEYS = ("seed", "data.seed")
HYDRA_GROUPS = "hydra/"
ABSENT = object()  # a key one config lacks


@dataclass
class ConfigDiff:
    """The differences, A's value first: ``choices`` group -> (A's option, B's option);
    ``keys`` dotted key (list items by index, ``data.train_transforms.3.p``) -> (A's value,
    B's value), with :data:`ABSENT` for a key one side lacks; ``notes`` say what could not be
    compared (a run without ``.hydra/``); ``ignored`` what was left out."""

    choices: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.choices or self.keys)

    def to_dict(self) -> dict:
        """As JSON-ready data: ``{"choices": {group: {"a", "b"}}, "keys": {key: {"a", "b"}}, "notes",
        "ignored"}``; a side that lacks a key has no ``a`` / ``b`` entry."""
        def sides(a: Any, b: Any) -> dict:
            return {side: value for side, value in (("a", a), ("b", b)) if value is not ABSENT}
        return {"choices": {k: sides(*v) for k, v in self.choices.items()},
                "keys": {k: sides(*v) for k, v in self.keys.items()}, "notes": self.notes, "ignored": self.ignored}


def describe(value: Any) -> str:
    """A config value in a few words: ``Name(k=v, ...)`` for a ``_target_`` node, JSON for the rest
    (``[PadIfNeeded(min_height=40, ...), RandomCrop(height=32, width=32), HorizontalFlip(p=0.5)]``)."""
    if isinstance(value, dict) and "_target_" in value:
        args = ", ".join(f"{k}={describe(v)}" for k, v in value.items() if k != "_target_")
        return f"{str(value['_target_']).rsplit('.', 1)[-1]}({args})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    return json.dumps(value)


def inside(value: Any, folder: str | None) -> bool:
    """Whether ``value`` is a path string inside (or equal to) ``folder``."""
    if not folder or not isinstance(value, str):
        return False
    path, root = PurePath(value), PurePath(folder)
    return path == root or root in path.parents


def key_differences(a: Any, b: Any, key: str = "") -> dict[str, tuple[Any, Any]]:
    """Every dotted key whose value differs between ``a`` and ``b`` (nested dicts and lists):
    dicts key by key, lists of one length item by item, anything else as a whole."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for name in list(a) + [n for n in b if n not in a]:
            out |= key_differences(a.get(name, ABSENT), b.get(name, ABSENT), f"{key}.{name}" if key else str(name))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = {}
        for i, (x, y) in enumerate(zip(a, b)):
            out |= key_differences(x, y, f"{key}.{i}")
        return out
    return {} if a == b and type(a) is type(b) else {key: (a, b)}


def is_ignored(key: str, values: tuple[Any, Any], output_dirs: tuple[str | None, str | None],
               ignore_seed: bool) -> bool:
    """Whether the difference at ``key`` only says where, how or (with ``ignore_seed``) from which seed a run ran."""
    names = IGNORED_KEYS + (SEED_KEYS if ignore_seed else ())
    if any(key == name or key.startswith(name + ".") for name in names):
        return True
    present = [(v, d) for v, d in zip(values, output_dirs) if v is not ABSENT]
    return bool(present) and all(inside(v, d) for v, d in present)


def config_diff(config_a: dict | None, config_b: dict | None, choices_a: dict | None, choices_b: dict | None,
                ignore_seed: bool = False) -> ConfigDiff:
    """The differences between run A's and run B's resolved configs (``config.yaml``) and config-group
    choices (``.hydra/hydra.yaml``); a run without one of them gets a note instead."""
    diff = ConfigDiff(ignored=[f"{HYDRA_GROUPS}* choices", *IGNORED_KEYS, *(SEED_KEYS if ignore_seed else ()),
                               "values inside the run's own output dir"])
    if config_a is None or config_b is None:
        missing = " and ".join(s for s, c in (("A", config_a), ("B", config_b)) if c is None)
        diff.notes.append(f"no config.yaml in {missing}: keys not compared")
    else:
        dirs = tuple((c.get("paths") or {}).get("output_dir") for c in (config_a, config_b))
        diff.keys = {k: v for k, v in key_differences(config_a, config_b).items()
                     if not is_ignored(k, v, dirs, ignore_seed)}
    if choices_a is None or choices_b is None:
        diff.notes.append("no .hydra/hydra.yaml in " + " and ".join(
            s for s, c in (("A", choices_a), ("B", choices_b)) if c is None) + " (a run made without train.py's "
            "Hydra entry point): config-group choices not compared")
    else:
        diff.choices = {g: (choices_a.get(g, ABSENT), choices_b.get(g, ABSENT))
                        for g in list(choices_a) + [g for g in choices_b if g not in choices_a]
                        if not g.startswith(HYDRA_GROUPS) and choices_a.get(g, ABSENT) != choices_b.get(g, ABSENT)}
    return diff
