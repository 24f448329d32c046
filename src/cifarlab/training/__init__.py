"""Training: :func:`cifarlab.training.pipeline.train` (``train.py``'s job) and what serves it.

- ``pipeline``: config -> data, model, trainer -> [LR range test] -> fit or resume -> test once -> ``metrics.json``;
- ``budget`` (and ``frontier.csv``): the width and precision this machine trains best in a wall-time budget;
- ``callbacks``, ``schedules``, ``lr_finder``: what runs inside the fit;
- ``precision``, ``distributed``, ``resume``, ``tracking``: the machine, its processes, a continued run, the loggers.

``from cifarlab.training import train`` imports the pipeline when first asked (so that importing a sibling module,
such as ``cifarlab.training.schedules`` from the LightningModule, does not import all of training).
"""
from typing import Any


def __getattr__(name: str) -> Any:
    if name == "train":
        from cifarlab.training.pipeline import train
        return train
    raise AttributeError(f"module 'cifarlab.training' has no attribute {name!r}")
