"""The LR range test (L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", 2015; the
seed notebooks' ``find_LR``): train from the initial weights with the learning rate rising
exponentially from ``min_lr`` to ``max_lr``, one step each, and read the best rate off the loss curve.

It runs Lightning's ``Tuner.lr_find`` on the configured model, data and optimiser (the schedule is
replaced by the sweep; weights and optimiser state are restored afterwards) on training images only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import lightning as L
from lightning.pytorch.tuner import Tuner

from cifarlab.config.ranges import COUNT, POSITIVE, Range, check_arguments
from cifarlab.errors import ConfigError
from cifarlab.runs.rundir import write_json_atomic

if TYPE_CHECKING:
    from lightning.pytorch.tuner.lr_finder import _LRFinder  # what Tuner.lr_find returns


@dataclass
class LRFinderResult:
    """The sweep: ``lr`` and (smoothed, as Lightning records it) ``loss`` per step; ``suggested_lr``:
    the rate at the lowest loss divided by 10 (fastai's ``lr_min`` rule; a OneCycle ``max_lr`` a
    decade below where the loss turns up; see :func:`suggest`), and ``steepest_lr``: Lightning's steepest-descent point,
    for comparison; the settings it ran with."""

    suggested_lr: float
    steepest_lr: float | None
    lr: list[float]
    loss: list[float]
    min_lr: float
    max_lr: float
    num_steps: int

    @property
    def steps_run(self) -> int:
        return len(self.lr)


def suggest(lr: list[float], loss: list[float], skip_begin: int = 10) -> float:
    """The learning rate at the lowest loss, divided by 10, searched after the curve's first peak:
    Lightning's running average of the loss starts low and climbs for its first steps (seen on
    real CIFAR-10 with Adam and SGD), so the earliest points are not a valley.

    Raises:
        ConfigError: fewer than ``skip_begin + 2`` points.
    """
    if len(lr) < skip_begin + 2:
        raise ConfigError(
            f"the LR range test ran {len(lr)} steps, too few to suggest a rate (the loss diverged early, or "
            "lr_find.num_steps is small): lower lr_find.max_lr or raise lr_find.num_steps."
        )
    peak = max(range(len(loss) // 2), key=loss.__getitem__)
    best = min(range(max(peak, skip_begin), len(loss)), key=loss.__getitem__)
    return lr[best] / 10


def write_lr_finder(finder: "_LRFinder", result: LRFinderResult, output_dir: Path, title: str = "LR range test") -> None:
    """``lr_finder.png`` and ``lr_finder.json`` (the curve and the suggestions) in ``output_dir``. The figure is
    Lightning's ``plot(suggest=True)`` (loss against learning rate, log x axis, the steepest descent as a red
    point), with what it lacks: the suggested ``max_lr`` (lowest loss / 10) marked, a legend and a title."""
    from matplotlib.figure import Figure

    output_dir.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(7, 4.5))
    axes = figure.subplots()
    finder.plot(suggest=True, ax=axes)
    axes.axvline(result.suggested_lr, color="tab:red", linestyle="--",
                 label=f"suggested max_lr {result.suggested_lr:.3g} (lowest loss / 10)")
    if result.steepest_lr:
        axes.plot([], [], "o", color="red", label=f"steepest descent {result.steepest_lr:.3g} (Lightning)")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss (smoothed)")
    axes.set_title(f"{title}: {result.steps_run} steps")
    axes.legend()
    figure.savefig(output_dir / "lr_finder.png", dpi=100, bbox_inches="tight")
    write_json_atomic(output_dir / "lr_finder.json", asdict(result) | {"steps_run": result.steps_run})


def find_lr(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, output_dir: Path,
            min_lr: Annotated[float, POSITIVE.means("the range test's first learning rate")] = 1e-6,
            max_lr: Annotated[float, POSITIVE.means("the range test's last learning rate")] = 1.0,
            num_steps: Annotated[int, COUNT.means("training steps of the range test")] = 100,
            early_stop_threshold: Annotated[float | None, Range(1, low_open=True, nullable=True, meaning=(
                "stop once the loss exceeds this multiple of its best (null: never)"))] = 4.0) -> LRFinderResult:
    """Run the range test and write ``lr_finder.png`` and ``lr_finder.json`` (:func:`write_lr_finder`)
    to ``output_dir`` (rank 0). It trains only: validation is off while it runs. The sweep stops early once the
    loss exceeds ``early_stop_threshold`` x its best (divergence).

    The ``lr_find`` node of the config holds these arguments; their ranges are checked with the rest of the
    config (:func:`cifarlab.config.validation.check_ranges`) and again here.

    Raises:
        ConfigError: an argument out of its range, ``min_lr`` not below ``max_lr``, or a sweep too short to
            suggest a rate (see :func:`suggest`).
    """
    check_arguments(find_lr, locals(), "lr_find")
    if not min_lr < max_lr:
        raise ConfigError(f"lr_find.min_lr={min_lr} and lr_find.max_lr={max_lr} must satisfy 0 < min_lr < max_lr")
    # the sweep trains and nothing else: no sanity check, no validation at the epoch ends it crosses
    saved = trainer.limit_val_batches, trainer.num_sanity_val_steps
    trainer.limit_val_batches, trainer.num_sanity_val_steps = 0, 0
    try:
        finder = Tuner(trainer).lr_find(module, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                        num_training=num_steps, mode="exponential",
                                        early_stop_threshold=early_stop_threshold, update_attr=False)
    finally:
        trainer.limit_val_batches, trainer.num_sanity_val_steps = saved
    lr = [float(x) for x in finder.results.get("lr", [])]
    loss = [float(x) for x in finder.results.get("loss", [])]
    steepest = finder.suggestion()
    result = LRFinderResult(suggest(lr, loss), None if steepest is None else float(steepest), lr, loss,
                            min_lr, max_lr, num_steps)
    if trainer.is_global_zero:
        write_lr_finder(finder, result, output_dir)
    return result
