"""Typed schema of ``conf/train.yaml`` (Hydra structured configs), stored in Hydra's ConfigStore on
import of :mod:`cifarlab` as ``train_schema``: a value of the wrong type (``trainer.max_epochs=ten``,
``data.batch_size=abc``) or an unknown key fails when the config is composed, naming the key, before
any data is read. The top level, ``data``, ``model`` and ``trainer`` are typed, ``data`` and ``model`` with
the types and defaults of their constructors' signatures (a default is stated once, in the code); the nodes
that describe other objects (``model.net``, ``model.optimizer``, ``model.scheduler``, callbacks, loggers)
are checked by their constructors, and every number against the range declared next to its type
(:mod:`cifarlab.config.ranges`) by :func:`cifarlab.config.validation.check_ranges`.
"""
from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Optional

import lightning as L
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from cifarlab.config.ranges import POSITIVE, SEED
from cifarlab.data import ImageDataModule
from cifarlab.module import ImageClassifier


def _schema_type(hint: Any) -> Any:
    """A constructor's type hint as a type OmegaConf enforces: ``int | None`` -> ``Optional[int]``,
    containers -> ``list[Any]`` / ``dict[str, Any]``, anything else -> ``Any``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if len(args) < len(typing.get_args(hint)):  # a union with None
        return Optional[_schema_type(args[0] if len(args) == 1 else Any)]
    origin = typing.get_origin(hint) or hint
    if origin in (list, tuple):
        return list[Any]
    if origin is dict:
        return dict[str, Any]
    return hint if hint in (int, float, str, bool) else Any


def _signature_fields(cls: type, target: str, skip: tuple[str, ...] = ()) -> list[tuple[str, Any, Any]]:
    """Dataclass fields mirroring ``cls.__init__``: each argument (but ``skip``) with its type and default
    (an argument without one is required: OmegaConf's ``???``), after ``_target_``."""
    hints = typing.get_type_hints(cls.__init__)
    fields = [("_target_", str, field(default=target))]
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", *skip) or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = MISSING if parameter.default is parameter.empty else parameter.default
        spec = field(default_factory=lambda d=default: d) if isinstance(default, (list, dict)) else field(default=default)
        fields.append((name, _schema_type(hints.get(name, Any)), spec))
    return fields


DataConfig = dataclasses.make_dataclass("DataConfig", _signature_fields(ImageDataModule, "cifarlab.data.ImageDataModule"))
DataConfig.__doc__ = ("``data``: the arguments of :class:`cifarlab.data.ImageDataModule`, typed and with the defaults "
                      "of its signature (its docstring says what each does).")

# Set by a fit from its data, or given by older checkpoints only: not config keys.
MODEL_ARGUMENTS_FROM_DATA = ("mean", "std", "class_names")
ModelConfig = dataclasses.make_dataclass(
    "ModelConfig", _signature_fields(ImageClassifier, "cifarlab.module.ImageClassifier", skip=MODEL_ARGUMENTS_FROM_DATA))
ModelConfig.__doc__ = ("``model``: the arguments of :class:`cifarlab.module.ImageClassifier` but the data's statistics "
                       "and class names, typed and with the defaults of its signature (its docstring says what each does).")


# Lightning Trainer arguments whose type the schema enforces; the others are accepted as any value.
TRAINER_TYPES = {"max_epochs": Optional[int], "min_epochs": Optional[int], "max_steps": int, "num_nodes": int,
                 "log_every_n_steps": Optional[int], "check_val_every_n_epoch": Optional[int],
                 "accumulate_grad_batches": int, "gradient_clip_val": Optional[float], "benchmark": Optional[bool],
                 "sync_batchnorm": bool, "num_sanity_val_steps": Optional[int], "accelerator": Any}


def _trainer_fields() -> list[tuple[str, Any, Any]]:
    fields = [("_target_", str, field(default="lightning.pytorch.Trainer"))]
    for name, parameter in inspect.signature(L.Trainer.__init__).parameters.items():
        if name in ("self", "callbacks", "logger", "plugins") or parameter.kind is not parameter.KEYWORD_ONLY:
            continue
        default = parameter.default
        if not isinstance(default, (int, float, str, bool, type(None))):
            default = None
        fields.append((name, TRAINER_TYPES.get(name, Any), field(default=default)))
    return fields


TrainerConfig = dataclasses.make_dataclass("TrainerConfig", _trainer_fields())
TrainerConfig.__doc__ = "``trainer``: the keyword arguments of ``lightning.pytorch.Trainer``, some typed."


@dataclass
class CheckpointConfig:
    every_n_minutes: Annotated[float, POSITIVE.means("minutes between mid-epoch checkpoints")] = 10.0


@dataclass
class TrainConfig:
    """The top level of ``conf/train.yaml``; its comments say what each key does."""

    task_name: str = "train"
    seed: Annotated[int, SEED.means("the global seed")] = 42
    test: bool = True
    optimized_metric: str = "val/acc"
    resume: Optional[str] = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    callbacks: Any = None
    logger: Any = None
    lr_find: Any = None
    budget: Any = None  # cifarlab.training.budget's wall_s, reserve_s, widths and train_s (experiment=cpu_airbench)
    hparams_search: Any = None
    debug: Any = None
    paths: Any = None


def register_schema() -> None:
    """Store :class:`TrainConfig` as ``train_schema`` (``conf/train.yaml`` lists it first in its defaults)."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
