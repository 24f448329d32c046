"""Typed schema of ``conf/train.yaml`` (Hydra structured configs), stored in Hydra's ConfigStore on
import of :mod:`cifarlab` as ``train_schema``: a value of the wrong type (``trainer.max_epochs=ten``,
``data.batch_size=abc``) or an unknown key fails when the config is composed, naming the key, before
any data is read. The top level, ``data`` and ``trainer`` are typed; the nodes that describe other
objects (``model``, ``optimizer``, ``scheduler``, callbacks, loggers) are checked by their constructors.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, Optional

import lightning as L
from hydra.core.config_store import ConfigStore



@dataclass
class DataConfig:
    """``data``: the arguments of :class:`cifarlab.data.CIFAR10DataModule` (its docstring says what each does)."""

    _target_: str = "cifarlab.data.CIFAR10DataModule"
    root: str = "data"
    batch_size: int = 512
    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True
    val_size: int = 0
    subset: Optional[int] = None
    strict_checksum: bool = False
    seed: Optional[int] = None
    download: bool = True
    augment_on: str = "workers"  # workers | device (checked by the DataModule)
    eval_batch_size: Optional[int] = None
    train_transforms: list[Any] = field(default_factory=list)


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
    every_n_minutes: float = 10.0


@dataclass
class TrainConfig:
    """The top level of ``conf/train.yaml``; its comments say what each key does."""

    task_name: str = "train"
    seed: int = 42
    channels_last: bool = False
    compile: bool = False
    tta: str = "flip"  # none | flip | flip_translate (checked by ImageClassifier)
    test: bool = True
    resume: Optional[str] = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    loss: Any = None
    callbacks: Any = None
    logger: Any = None
    lr_find: Any = None
    hparams_search: Any = None
    debug: Any = None
    paths: Any = None


def register_schema() -> None:
    """Store :class:`TrainConfig` as ``train_schema`` (``conf/train.yaml`` lists it first in its defaults)."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
