"""Typed schemas of ``conf/eval.yaml`` and ``conf/data_figures.yaml``, stored in Hydra's ConfigStore
on import (as ``eval_schema``, ``data_figures_schema``): an unknown key or a value of the wrong
type fails when the config is composed, naming the key. Ranges are checked when the entry point
turns the config into these objects (``OmegaConf.to_object``), before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore

from cifarlab.errors import ConfigError


class Target(Enum):
    """The class whose evidence GradCAM shows: the predicted one, or the true label."""

    predicted = "predicted"
    label = "label"


class TTA(Enum):
    """Test-time augmentation: none, or the mean of the logits of each image and its mirror image."""

    none = "none"
    flip = "flip"


@dataclass
class Paths:
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class GradcamSettings:
    target_layer: Optional[str] = None  # None: the last conv block (layer3 / layer4)
    image_weight: float = 0.5  # the image's opacity under the heat map, in [0, 1]
    target: Target = Target.predicted


@dataclass
class ReportSettings:
    """``eval.*``: what the report shows."""

    num_misclassified: int = 10
    image_size: int = 128  # 32 x 32 images are upscaled to this many pixels for display
    tta: TTA = TTA.none
    gradcam: GradcamSettings = field(default_factory=GradcamSettings)

    def __post_init__(self) -> None:
        if self.num_misclassified < 1:
            raise ConfigError(f"eval.num_misclassified={self.num_misclassified} must be at least 1")
        if self.image_size < 32:
            raise ConfigError(f"eval.image_size={self.image_size} must be at least 32 (pixels)")
        if not 0.0 <= self.gradcam.image_weight <= 1.0:
            raise ConfigError(f"eval.gradcam.image_weight={self.gradcam.image_weight} must be in [0, 1]")


@dataclass
class EvalConfig:
    """``conf/eval.yaml``."""

    ckpt_path: Optional[str] = None  # a train.py run dir (its tested checkpoint) or a .ckpt file
    data_root: Optional[str] = None  # None: the data.root recorded in the checkpoint
    batch_size: int = 500
    precision: Optional[str] = None  # None: the training run's, so that accuracies match
    model: Optional[Any] = None  # model=<name> asserts the checkpoint's architecture
    task_name: str = "eval"
    eval: ReportSettings = field(default_factory=ReportSettings)
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be at least 1")


@dataclass
class DataFiguresConfig:
    """``conf/data_figures.yaml``."""

    data: Any = None  # the data module's node (conf/data)
    num_samples: int = 20
    image_size: int = 128
    seed: int = 0  # which random augmentations are drawn
    task_name: str = "data_figures"
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"num_samples={self.num_samples} must be at least 1")


ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
ConfigStore.instance().store(name="data_figures_schema", node=DataFiguresConfig)
