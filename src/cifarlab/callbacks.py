"""Lightning callbacks of our own: a log-file friendly progress bar and a throughput meter."""
from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ProgressBar, RichProgressBar


class LineProgressBar(ProgressBar):
    """Progress as whole lines, every ``refresh_rate`` training batches and after each
    validation, so that output redirected to a log file stays readable (no carriage returns).

    Example line: ``epoch 1/2  step 40/147 (27%)  train/loss 1.621  train/acc 0.412  163 img/s  eta 0:06:12``.
    """

    def __init__(self, refresh_rate: int = 50) -> None:
        super().__init__()
        self.refresh_rate = max(1, int(refresh_rate))
        self._enabled = True
        self._epoch_start = 0.0
        self._images = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _metrics(self, trainer: L.Trainer, prefix: str) -> str:
        items = [(k, v) for k, v in trainer.progress_bar_metrics.items() if k.startswith(prefix)]
        return "  ".join(f"{k.removesuffix('_step').removesuffix('_epoch')} {float(v):.4f}" for k, v in items)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start, self._images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._images += len(batch[1])
        total = self.total_train_batches
        done = batch_idx + 1
        if not self._enabled or (done % self.refresh_rate and done != total):
            return
        elapsed = time.perf_counter() - self._epoch_start
        speed = self._images / max(elapsed, 1e-9)
        eta = f"  eta {timedelta(seconds=round(elapsed / done * (total - done)))}" if isinstance(total, int) else ""
        pct = f" ({100 * done / total:.0f}%)" if isinstance(total, int) else ""
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  step {done}/{total}{pct}  "
              f"{self._metrics(trainer, 'train/')}  {speed:.0f} img/s{eta}", flush=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled and not trainer.sanity_checking:
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {self._metrics(trainer, 'val/')}", flush=True)


def progress_bar(refresh_rate: int = 50) -> ProgressBar:
    """Rich's live bar on a terminal, :class:`LineProgressBar` when stdout goes to a file or pipe."""
    return RichProgressBar(refresh_rate=1) if sys.stdout.isatty() else LineProgressBar(refresh_rate)


class Throughput(Callback):
    """Training throughput: images and seconds spent in training epochs (data loading, forward,
    backward and optimiser steps; validation excluded). Logs ``train/images_per_s`` each epoch.

    Attributes after fit: ``images`` (int), ``seconds`` (float), ``images_per_s`` (float).
    """

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._start = self._last = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.images += len(batch[1]) * trainer.world_size
        self._last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch_seconds = self._last - self._start
        self.seconds += epoch_seconds
        pl_module.log("train/images_per_s", self.images_per_s, on_epoch=True, sync_dist=False)
