"""Test-only callback for ``tests/test_ddp.py``, added to a run with
``+callbacks.probe._target_=ddp_probe.RankProbe`` (``tests/`` on ``PYTHONPATH``): what one DDP rank saw,
written to ``<run dir>/probe/rank<global rank>.json`` when its test ends."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import lightning as L


class RankProbe(L.Callback):
    """Records the first training batch of this rank (a SHA-256 of its pixels as float32, its labels)
    and the number of test images this rank evaluated."""

    def __init__(self) -> None:
        self.first_batch: dict | None = None
        self.test_images = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.first_batch is None:
            images, labels = batch
            pixels = images.detach().float().cpu().contiguous().numpy().tobytes()
            self.first_batch = {"pixels_sha256": hashlib.sha256(pixels).hexdigest(), "labels": labels.tolist()}

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self.test_images += len(batch[1])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        out = Path(trainer.default_root_dir) / "probe"
        out.mkdir(parents=True, exist_ok=True)
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "first_batch": self.first_batch,
                  "test_images": self.test_images}
        (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record, indent=2) + "\n")


class Preempted(Exception):
    """Raised by :class:`PreemptAt`: the job is gone, as after SLURM's requeue."""


class PreemptAt(L.Callback):
    """Stops the run with :class:`Preempted` when epoch ``epoch`` (0-based) starts, after the previous
    epoch's checkpoints were written: a job that SLURM ends and requeues."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise Preempted(f"preempted at the start of epoch {self.epoch}")
