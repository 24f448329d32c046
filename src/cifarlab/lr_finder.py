"""The LR range test (L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", 2015; the
seed notebooks' ``find_LR``): train from the initial weights with the learning rate rising
exponentially from ``min_lr`` to ``max_lr``, one step each, and read the best rate off the loss curve.

It runs Lightning's ``Tuner.lr_find`` on the configured model, data and optimiser (the schedule is
replaced by the sweep; weights and optimiser state are restored afterwards) on training images only.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
from lightning.pytorch.tuner import Tuner  # noqa: E402

from cifarlab.errors import ConfigError  # noqa: E402


@dataclass
class LRFinderResult:
    """The sweep: ``lr`` and (smoothed) ``loss`` per step, the ``suggested_lr`` (steepest descent of the
    loss), and the settings it ran with."""

    suggested_lr: float
    lr: list[float]
    loss: list[float]
    min_lr: float
    max_lr: float
    num_steps: int

    @property
    def steps_run(self) -> int:
        return len(self.lr)


def find_lr(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, output_dir: Path,
            min_lr: float = 1e-6, max_lr: float = 1.0, num_steps: int = 100,
            early_stop_threshold: float | None = 4.0) -> LRFinderResult:
    """Run the range test and write ``lr_finder.png`` (loss against learning rate, log x axis, the
    suggestion marked) and ``lr_finder.json`` (the curve and the suggestion) to ``output_dir``.

    The sweep stops early once the loss exceeds ``early_stop_threshold`` x its best (divergence).

    Raises:
        ConfigError: bad bounds, or a sweep too short to suggest a rate (it diverged within a few
            steps): the message says what to change.
    """
    if not 0 < min_lr < max_lr:
        raise ConfigError(f"lr_find.min_lr={min_lr} and lr_find.max_lr={max_lr} must satisfy 0 < min_lr < max_lr")
    finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr, num_training=num_steps,
                                    mode="exponential", early_stop_threshold=early_stop_threshold, update_attr=False)
    suggestion = finder.suggestion() if finder is not None else None
    if suggestion is None:
        raise ConfigError(
            f"the LR range test ran {len(finder.results.get('lr', [])) if finder else 0} of {num_steps} steps, too few "
            "to suggest a rate (the loss diverged early): lower lr_find.max_lr or raise lr_find.num_steps."
        )
    result = LRFinderResult(float(suggestion), [float(x) for x in finder.results["lr"]],
                            [float(x) for x in finder.results["loss"]], min_lr, max_lr, num_steps)
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        figure = finder.plot(suggest=True, show=False)
        axes = figure.axes[0]
        axes.set_xscale("log")
        axes.set_xlabel("learning rate (log scale)")
        axes.set_ylabel("training loss (smoothed)")
        axes.set_title(f"LR range test: suggested {suggestion:.3g} (steepest descent)")
        figure.savefig(output_dir / "lr_finder.png", dpi=100, bbox_inches="tight")
        (output_dir / "lr_finder.json").write_text(json.dumps(asdict(result) | {"steps_run": result.steps_run}, indent=2) + "\n")
    return result
