"""Typed schemas of ``conf/eval.yaml``, ``conf/compare.yaml`` and ``conf/data_figures.yaml`` (their
comments say what each key does), stored in Hydra's ConfigStore on import as ``eval_schema``,
``compare_schema`` and ``data_figures_schema``:
an unknown key or a value of the wrong type fails when the config is composed, naming the key.
Each number's range is declared next to its type (:mod:`cifarlab.config.ranges`) and checked when an entry
point makes these objects (``OmegaConf.to_object``), or when code constructs one.

Raises (on construction):
    ConfigError: a value out of range; the message names the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Optional

from hydra.core.config_store import ConfigStore

from cifarlab.config.ranges import Range, check_fields
from cifarlab.errors import ConfigError
from cifarlab.tta import TTA_MODES

Target = Enum("Target", {"predicted": "predicted", "label": "label"})  # the class whose evidence GradCAM shows
TTA = Enum("TTA", {m: m for m in TTA_MODES})  # test-time augmentation, cifarlab.tta

AT_LEAST_ONE = Range(1, integer=True, message="{key}={value} must be at least 1")  # a count or a batch size
FIGURE_SIZE = Range(32, integer=True, message="{key}={value} must be at least 32 (pixels)")  # side of a shown image


@dataclass
class Paths:
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class DataRoot:
    """``data``: where the test set is read from."""

    root: Optional[str] = None  # holds cifar-10-batches-py/; None: the data.root the checkpoint records


@dataclass
class GradcamSettings:
    target_layer: Optional[str] = None
    image_weight: Annotated[float, Range(0, 1, message="{key}={value} must be in [0, 1]")] = 0.5
    target: Target = Target.predicted


@dataclass
class RobustnessSettings:
    enabled: bool = True
    images: Annotated[int, AT_LEAST_ONE] = 1000
    seed: int = 0
    baseline: Optional[str] = None


@dataclass
class ReportSettings:
    """``eval.*`` of ``conf/eval.yaml``: what the report shows."""

    num_misclassified: Annotated[int, AT_LEAST_ONE] = 10
    image_size: Annotated[int, FIGURE_SIZE] = 128
    tta: Optional[TTA] = None  # None: the run's own (train.py's test)
    gradcam: GradcamSettings = field(default_factory=GradcamSettings)
    robustness: RobustnessSettings = field(default_factory=RobustnessSettings)

    def __post_init__(self) -> None:
        check_fields(self, "eval")


@dataclass
class EvalConfig:
    ckpt_path: Optional[str] = None
    data: DataRoot = field(default_factory=DataRoot)
    batch_size: Annotated[int, AT_LEAST_ONE] = 500
    precision: Optional[str] = None
    model: Optional[Any] = None
    task_name: str = "eval"
    eval: ReportSettings = field(default_factory=ReportSettings)
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class BootstrapSettings:
    """``bootstrap.*`` of ``conf/compare.yaml``: the paired bootstrap interval of the accuracy difference."""

    resamples: Annotated[int, Range(100, integer=True, message=(
        "{key}={value} is too few for a 95 % interval: use at least 100 (default 9999)"))] = 9999
    seed: int = 0


@dataclass
class CompareConfig:
    """``conf/compare.yaml``. ``a`` and ``b``: a run dir, a sweep dir of seeds, or a list of run dirs;
    ``a_predictions`` / ``b_predictions``: an ``evaluate.py`` output dir (or its ``predictions.npz``)
    of the first run of that side."""

    a: Any = None
    b: Any = None
    a_predictions: Optional[str] = None
    b_predictions: Optional[str] = None
    data: DataRoot = field(default_factory=DataRoot)
    batch_size: Annotated[int, AT_LEAST_ONE] = 500
    precision: Optional[str] = None  # None: the one this machine runs fast; the runs' own reproduce their numbers
    alpha: Annotated[float, Range(0, 1, low_open=True, high_open=True,
                                  message="{key}={value} must be in (0, 1), e.g. alpha=0.05")] = 0.05
    gallery_size: Annotated[int, Range(1, integer=True, message="{key}={value} must be at least 1 (images)")] = 20
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    task_name: str = "compare"
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        if not self.a or not self.b:
            raise ConfigError("give both sides: python compare.py a=<run or sweep dir> b=<run or sweep dir> "
                              "(or a list of run dirs, a=[<run>,<run>]); make compare A=... B=...")
        check_fields(self)


@dataclass
class DataFiguresConfig:
    data: Any = None
    num_samples: Annotated[int, AT_LEAST_ONE] = 20
    image_size: Annotated[int, FIGURE_SIZE] = 128
    seed: int = 0
    task_name: str = "data_figures"
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        check_fields(self)


ConfigStore.instance().store(name="eval_schema", node=EvalConfig)
ConfigStore.instance().store(name="data_figures_schema", node=DataFiguresConfig)
ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
