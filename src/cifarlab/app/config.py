"""Typed schema of ``conf/app.yaml``, stored in Hydra's ConfigStore on import as ``app_schema``:
an unknown key or a value of the wrong type fails when the config is composed, naming the key."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Optional

from hydra.core.config_store import ConfigStore

from cifarlab.config.ranges import POSITIVE, check_fields
from cifarlab.errors import ConfigError
from cifarlab.reports.config import DataRoot


@dataclass
class AppConfig:
    ckpt_path: Optional[str] = None  # a train.py run dir (its tested checkpoint) or a .ckpt file
    data: DataRoot = field(default_factory=DataRoot)  # data.root: the test set's folder; None: the checkpoint's
    precision: Optional[str] = None  # None: the one this machine runs fast; the run's own reproduces its numbers
    eval_dir: Optional[str] = None  # an evaluate.py output dir of this checkpoint (its predictions.npz); None: the run's eval/
    server_name: str = "127.0.0.1"
    server_port: Optional[int] = None  # None: Gradio's choice, $GRADIO_SERVER_PORT when set, else the first free from 7860
    max_megapixels: Annotated[float, POSITIVE.means("larger uploads are refused", message=(
        "{key} must be positive, got {value}"))] = 40.0  # larger uploads are refused with a message
    max_file_size: Optional[str] = "25mb"  # larger uploads are refused by Gradio before they reach the model

    def __post_init__(self) -> None:
        if not self.ckpt_path:
            raise ConfigError("ckpt_path is not set: python app.py ckpt_path=<train.py run dir or .ckpt file> "
                              "(make app CKPT=...)")
        check_fields(self)


ConfigStore.instance().store(name="app_schema", node=AppConfig)
