"""Typed schemas of ``conf/predict.yaml`` and ``conf/export.yaml`` (their comments say what each key
does), stored in Hydra's ConfigStore on import as ``predict_schema`` and ``export_schema``: an
unknown key or a value of the wrong type fails when the config is composed, naming the key.
Each number's range is declared next to its type (:mod:`cifarlab.config.ranges`) and checked when an entry
point makes these objects (``OmegaConf.to_object``), or when code constructs one.

Raises (on construction):
    ConfigError: a missing ``ckpt_path`` or ``inputs``, a value out of range; the message names the key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Optional

from hydra.core.config_store import ConfigStore

from cifarlab.config.ranges import POSITIVE, Range, check_fields
from cifarlab.errors import ConfigError
from cifarlab.reports.config import AT_LEAST_ONE, FIGURE_SIZE, TTA, Paths

MAX_MEGAPIXELS = POSITIVE.means("larger uploads are refused", message="{key}={value} must be positive")

Format = Enum("Format", {"onnx": "onnx", "torchscript": "torchscript"})


def require_ckpt_path(ckpt_path: Optional[str], script: str) -> None:
    """Raise ConfigError naming the command line to use when ``ckpt_path`` is not set."""
    if not ckpt_path:
        raise ConfigError(f"ckpt_path is not set: python {script} ckpt_path=<train.py run dir or .ckpt file> ...")


@dataclass
class PredictConfig:
    ckpt_path: Optional[str] = None
    inputs: Any = None  # a folder, a glob or a file, or a list of them; made a list of str on construction
    top_k: Annotated[Optional[int], Range(1, integer=True, nullable=True, message="{key}={value} must be at least 1")
                     ] = None  # None: 3, or every class of a model with fewer (cifarlab.serving.predict.top_k_of)
    batch_size: Annotated[int, AT_LEAST_ONE] = 500
    tta: TTA = TTA.none
    precision: Optional[str] = None
    max_megapixels: Annotated[float, MAX_MEGAPIXELS] = 40.0
    gradcam: bool = False
    target_layer: Optional[str] = None
    image_size: Annotated[int, FIGURE_SIZE] = 128
    task_name: str = "predict"
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        require_ckpt_path(self.ckpt_path, "predict.py")
        entries = self.inputs if isinstance(self.inputs, (list, tuple)) else [] if self.inputs is None else [self.inputs]
        self.inputs = [str(entry) for entry in entries if str(entry)]
        if not self.inputs:
            raise ConfigError("inputs is not set: pass inputs=<folder, glob or image file>, or a list "
                              "inputs=[a.png,photos/*.jpg]")
        check_fields(self)


@dataclass
class ExportConfig:
    ckpt_path: Optional[str] = None
    format: Format = Format.onnx
    task_name: str = "export"
    paths: Paths = field(default_factory=Paths)

    def __post_init__(self) -> None:
        require_ckpt_path(self.ckpt_path, "export.py")


ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
ConfigStore.instance().store(name="export_schema", node=ExportConfig)
