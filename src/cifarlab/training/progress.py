"""Progress on the console: a bar of whole lines for log files (:class:`LineProgressBar`) and Lightning's rich bar
with the time budget's text (:class:`BudgetRichProgressBar`); :func:`progress_bar` picks one."""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, Timer

from cifarlab.training.schedules import TimeBudgetOneCycle


def budget_left_s(trainer: L.Trainer) -> float | None:
    """Seconds left of the run's time budget, >= 0: ``trainer.max_time``'s (Lightning's ``Timer``, which
    stops the run), else a :class:`~cifarlab.training.schedules.TimeBudgetOneCycle` schedule's; ``None`` for a
    run that ends after its epochs or steps."""
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback.time_remaining() is not None:
            return max(0.0, callback.time_remaining())
    for config in trainer.lr_scheduler_configs:
        if isinstance(config.scheduler, TimeBudgetOneCycle) and config.scheduler.budget_s is not None:
            return config.scheduler.budget_s * (1 - config.scheduler.progress)
    return None


def one_per_name(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The progress-bar ``metrics`` whose names start with ``prefix``, one value per name:
    ``train/loss_step`` and ``train/loss_epoch`` become one ``train/loss`` holding the step's value
    (the ``_epoch`` one is the previous epoch's mean until this epoch ends)."""
    values: dict[str, Any] = {}
    for key, value in metrics.items():
        if not key.startswith(prefix):
            continue
        name = key.removesuffix("_step").removesuffix("_epoch")
        if key.endswith("_step") or name not in values:
            values[name] = value
    return values


class LineProgressBar(ProgressBar):
    """Progress as whole lines, every ``refresh_rate`` training batches and after each
    validation, so that output redirected to a log file stays readable (no carriage returns).

    Example line: ``epoch 1/2  step 40/147 (27%)  train/loss 1.6210  train/acc 0.4120  163 img/s  eta 0:06:12``;
    for a run with a time budget (:func:`budget_left_s`), which stops before its last epoch, the epoch
    count and eta give way to the budget: ``epoch 1  step 40/391 (10%)  ...  163 img/s  budget 212 s left``.
    """

    def __init__(self, refresh_rate: int = 50) -> None:
        super().__init__()
        self.refresh_rate = max(1, int(refresh_rate))
        self._enabled = True
        self._epoch_start = 0.0
        self._images = 0
        self._steps = 0  # this process's steps of this epoch (fewer than ``done`` after a resume)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _metrics(self, trainer: L.Trainer, prefix: str) -> str:
        return "  ".join(f"{k} {float(v):.4f}" for k, v in one_per_name(trainer.progress_bar_metrics, prefix).items())

    @staticmethod
    def _epoch(trainer: L.Trainer, budget: float | None) -> str:
        return f"epoch {trainer.current_epoch + 1}" + ("" if budget is not None else f"/{trainer.max_epochs}")

    def _start_clock(self) -> None:
        self._epoch_start, self._images, self._steps = time.perf_counter(), 0, 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_clock()  # a run resumed mid-epoch gets no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_clock()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._images += len(batch[1])
        self._steps += 1
        total = self.total_train_batches
        done = batch_idx + 1
        if not self._enabled or (done % self.refresh_rate and done != total):
            return
        elapsed = time.perf_counter() - self._epoch_start
        speed = self._images / max(elapsed, 1e-9)
        budget = budget_left_s(trainer)
        if budget is not None:
            eta = f"  budget {budget:.0f} s left"
        else:
            eta = f"  eta {timedelta(seconds=round(elapsed / max(self._steps, 1) * (total - done)))}" if isinstance(total, int) else ""
        pct = f" ({100 * done / total:.0f}%)" if isinstance(total, int) else ""
        print(f"{self._epoch(trainer, budget)}  step {done}/{total}{pct}  "
              f"{self._metrics(trainer, 'train/')}  {speed:.0f} img/s{eta}", flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking:
            print(f"{self._epoch(trainer, budget_left_s(trainer))}  {self._metrics(trainer, 'val/')}", flush=True)


class BudgetRichProgressBar(RichProgressBar):
    """Lightning's ``RichProgressBar(refresh_rate=...)``; a run with a time budget (:func:`budget_left_s`) shows
    ``Epoch 0 · budget 212 s left`` where it shows ``Epoch 0/9``."""

    def _get_train_description(self, current_epoch: int) -> str:
        budget = budget_left_s(self.trainer)
        if budget is None:
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch} · budget {budget:.0f} s left"


def progress_bar(refresh_rate: int = 50) -> ProgressBar:
    """:class:`BudgetRichProgressBar` on a terminal, :class:`LineProgressBar` when stdout goes to a file or pipe;
    either redraws every ``refresh_rate`` batches."""
    return BudgetRichProgressBar(refresh_rate=refresh_rate) if sys.stdout.isatty() else LineProgressBar(refresh_rate)
