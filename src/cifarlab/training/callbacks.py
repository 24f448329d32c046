"""Lightning callbacks of our own (the progress bars are in :mod:`cifarlab.training.progress`): a throughput meter,
a NaN-loss stop that does not wait on the device every step, the random states of an exact resume, the compile
warm-up, a periodic checkpoint, and airbench's lookahead (on Lightning's ``WeightAveraging``) and whitening layer."""
from __future__ import annotations

import copy
import itertools
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import (
    Callback, EMAWeightAveraging, ModelCheckpoint, WeightAveraging,
)
from lightning.pytorch.trainer.states import TrainerFn

from cifarlab.config.ranges import COUNT, UNIT_BELOW_ONE
from cifarlab.errors import CifarlabError
from cifarlab.models.base import Whitened


class TrainingDiverged(CifarlabError):
    """The training loss became NaN or infinite."""


class FiniteLossCheck(Callback):
    """Stop the run with :class:`TrainingDiverged` when the training loss is NaN or infinite.

    Each step folds ``isfinite(loss)`` into a flag on the device (no wait); the flag is read every
    ``every_n_steps`` steps and at each epoch's end, so a diverged run stops within that many steps.
    (torchmetrics' ``MeanMetric`` would otherwise drop NaNs silently.) Checkpoints already written stay.
    """

    def __init__(self, every_n_steps: Annotated[int, COUNT.means("steps between checks of the training loss")] = 50,
                 ) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self._finite: torch.Tensor | None = None
        self._checked_step = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        finite = torch.isfinite(loss.detach()).all()
        self._finite = finite if self._finite is None else self._finite & finite
        if trainer.global_step % self.every_n_steps == 0:
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        if self._finite is not None and not bool(self._finite):
            raise TrainingDiverged(
                f"the training loss became NaN or infinite between steps {self._checked_step} and {trainer.global_step} "
                f"(epoch {trainer.current_epoch}): the run is stopped. Lower the learning rate (model.scheduler.max_lr), "
                "set trainer.gradient_clip_val, or use trainer.precision=32-true; checkpoints already written are kept."
            )
        self._finite, self._checked_step = None, trainer.global_step


class AveragedWeightsOnTest:
    """Mixin for ``WeightAveraging`` callbacks: outside ``fit``, a loaded checkpoint keeps its
    ``state_dict`` (the averaged weights). Lightning 2.6 reloads the non-averaged
    ``current_model_state`` whenever the callback still holds an average, so ``trainer.test`` right
    after ``fit`` would test the raw weights instead of the averaged ones ``last.ckpt`` holds."""

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class EMA(AveragedWeightsOnTest, EMAWeightAveraging):
    """Lightning's ``EMAWeightAveraging`` (an exponential moving average of the weights, ``decay`` per
    update), whose averaged weights are also the ones ``trainer.test`` loads from ``last.ckpt``. Other keyword
    arguments go to ``EMAWeightAveraging``."""

    def __init__(self, decay: Annotated[float, UNIT_BELOW_ONE.means("the average's weight on its past per update")] = 0.999,
                 update_every_n_steps: Annotated[int, COUNT.means("steps between updates of the average")] = 1,
                 **kwargs: Any) -> None:
        super().__init__(decay=decay, update_every_n_steps=update_every_n_steps, **kwargs)


def training_progress(trainer: L.Trainer) -> float:
    """The fraction of training done, in [0, 1]: the learning-rate schedule's own ``progress`` when it
    has one (:class:`cifarlab.training.schedules.TimeBudgetOneCycle`: elapsed seconds over the budget), else
    ``global_step / estimated_stepping_batches``."""
    for config in trainer.lr_scheduler_configs:
        progress = getattr(config.scheduler, "progress", None)
        if progress is not None:
            return float(progress)
    return trainer.global_step / max(1, trainer.estimated_stepping_batches)


class Lookahead(AveragedWeightsOnTest, WeightAveraging):
    """airbench94's lookahead (K. Jordan 2024; M. Zhang et al., "Lookahead Optimizer", 2019) on Lightning's
    ``WeightAveraging``: every ``every_n_steps`` steps the slow weights move towards the fast ones,
    ``slow += (1 - decay) (fast - slow)`` with ``decay = base_decay * progress ** 3`` (progress: see
    :func:`training_progress`, so under a time budget the decay follows the clock), then the fast
    weights are reset to the slow ones. Training ends on the slow weights, which ``last.ckpt`` holds.
    BatchNorm statistics are averaged with the weights, as in airbench.

    The update is a foreach lerp and copy on the device; it never waits on it.
    """

    def __init__(self, every_n_steps: Annotated[int, COUNT.means("steps between lookahead updates")] = 5,
                 base_decay: Annotated[float, UNIT_BELOW_ONE.means("the slow weights' decay at the end of training")]
                 = 0.95 ** 5) -> None:
        super().__init__(use_buffers=True)
        self.every_n_steps, self.base_decay = every_n_steps, base_decay

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return False  # the lookahead step below replaces WeightAveraging's own updates

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every_n_steps:
            return
        decay = self.base_decay * training_progress(trainer) ** 3
        pairs = [(a, c) for a, c in zip(
            itertools.chain(self._average_model.module.parameters(), self._average_model.module.buffers()),
            itertools.chain(pl_module.parameters(), pl_module.buffers())) if a.is_floating_point()]
        slow, fast = [a.data for a, _ in pairs], [c.data for _, c in pairs]
        torch._foreach_lerp_(slow, fast, 1 - decay)
        torch._foreach_copy_(fast, slow)


class AirbenchWhitening(Callback):
    """airbench94's whitening layer (K. Jordan 2024, legacy/airbench94.py), initialised and frozen in one place.

    - When a fit starts, ``net.init_whitening`` sets the frozen 2x2 filters from the patches of the first
      ``init_images`` training images (airbench: 5,000), normalised as the network sees them.
    - ``whiten_bias_epochs``: the bias trains for the first ``fraction`` of training, then is frozen
      (``requires_grad=False``: no gradient, so SGD neither moves nor decays it). Progress is
      :func:`training_progress`, read before every step: a short and a long budget freeze at the same fraction,
      and a run resumed mid-epoch past it is frozen from its first step. airbench94 freezes after 3 of its 9.9
      epochs: step 144 of 476 at batch 1024, ``fraction=0.3025``. ``epochs`` (configs written before the
      fraction) freezes from that epoch on instead; neither: the bias trains throughout.

    A network that is not :class:`cifarlab.models.base.Whitened` is left alone.
    :func:`cifarlab.training.builds.build_trainer` adds this callback, without a freeze, to a fit of a whitened
    network whose callbacks have none.
    """

    def __init__(self, fraction: float | None = 0.3025, epochs: int | None = None, init_images: int = 5000) -> None:
        self.fraction, self.epochs = fraction, None if epochs is None else int(epochs)
        self.init_images = init_images

    def trains(self, trainer: L.Trainer) -> bool:
        """Whether the bias trains in the step about to run."""
        if self.epochs is not None:
            return trainer.current_epoch < self.epochs
        return self.fraction is None or training_progress(trainer) < self.fraction

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net, datamodule = getattr(pl_module, "net", None), trainer.datamodule
        if isinstance(net, Whitened) and datamodule is not None:
            images = datamodule.train_images(self.init_images).to(pl_module.device)
            net.init_whitening(pl_module.normalise(images).contiguous())

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        net = getattr(pl_module, "net", None)
        if isinstance(net, Whitened) and net.whiten.bias is not None:
            net.whiten.bias.requires_grad_(self.trains(trainer))


class RandomStates(Callback):
    """Exact resume: the checkpoint keeps torch's, CUDA's, numpy's and Python's random states (``rng_states``, in
    the layout of Lightning's ``_collect_rng_states``, numpy's as plain lists so that the checkpoint still loads
    under ``weights_only``); a resumed fit restores them, so it draws what an unbroken run would."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "python": random.getstate(),
                                    "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
                                    "torch.cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states is None or trainer.state.fn != TrainerFn.FITTING:
            return
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        torch.set_rng_state(states["torch"])
        version, state, gauss = states["python"]
        random.setstate((version, tuple(state), gauss))
        if states.get("torch.cuda"):
            torch.cuda.set_rng_state_all(states["torch.cuda"])


class WarmUp(Callback):
    """Compile (with ``model.compile``) and warm up (cuDNN's autotuning on a GPU) the training graph, and the
    evaluation graph under inference mode as ``trainer.test`` runs it, on random uint8 batches of the data
    module's ``batch_size`` and ``eval_batch_size`` before the first epoch, so that neither enters the
    training time; the network's weights, buffers and gradients are restored afterwards. On a CPU without
    ``compile`` it does nothing. Attribute ``seconds``: the time it took (device synchronised)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if datamodule is None or not (pl_module.hparams.get("compile") or pl_module.device.type == "cuda"):
            return
        hp = datamodule.hparams
        self.seconds = self.warm_up(trainer, pl_module, hp.batch_size, hp.get("eval_batch_size") or hp.batch_size)

    @staticmethod
    def warm_up(trainer: L.Trainer, pl_module: L.LightningModule, batch_size: int, eval_batch_size: int) -> float:
        """Two training steps and one TTA inference batch on random images; returns the seconds taken."""
        net = pl_module.net
        state = copy.deepcopy(net.state_dict())
        start = time.perf_counter()
        num_classes, device = len(pl_module.hparams.class_names), pl_module.device
        x = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
        y = torch.randint(0, num_classes, (batch_size,), device=device)
        precision = trainer.precision_plugin
        for _ in range(2):
            with precision.train_step_context():
                loss = pl_module.criterion(pl_module(x), y)
            loss.backward()
        pl_module.eval()
        with torch.inference_mode(), precision.test_step_context():
            pl_module(torch.randint(0, 256, (eval_batch_size, 3, 32, 32), dtype=torch.uint8, device=device),
                      pl_module.hparams.tta)
        pl_module.train()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        net.load_state_dict(state)
        pl_module.zero_grad(set_to_none=True)
        return time.perf_counter() - start


class Throughput(Callback):
    """Training throughput: images and seconds spent in training epochs (data loading, augmentation,
    forward, backward and optimiser steps; validation and checkpoint writing excluded). On a GPU the
    clock is read after synchronising the device at each epoch's start and end, so the seconds are
    those of the work done, not of its launch. Logs ``train/images_per_s`` each epoch.

    Attributes after fit: ``images`` (int), ``seconds`` (float), ``images_per_s`` (float), and
    ``epoch_images_per_s`` (one float per epoch: the first includes cuDNN's autotuning). A resumed run
    counts its own process's training only.
    """

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self.epoch_images_per_s: list[float] = []
        self._epoch_images = 0
        self._start = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    @staticmethod
    def _clock(pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # a run resumed mid-epoch gets no on_train_epoch_start for that epoch: its clock starts here
        self._start, self._epoch_images = self._clock(pl_module), 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._epoch_images = self._clock(pl_module), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._epoch_images += len(batch[1]) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self._clock(pl_module) - self._start
        self.images += self._epoch_images
        self.seconds += seconds
        self.epoch_images_per_s.append(self._epoch_images / seconds if seconds else 0.0)
        # every rank estimates the job's rate (its images x world size over its seconds); logged: their mean
        pl_module.log("train/images_per_s", self.images_per_s, on_epoch=True, sync_dist=True)


def periodic_checkpoint(dirpath: str | Path, every_n_minutes: float = 10.0) -> ModelCheckpoint:
    """A ``ModelCheckpoint`` that rewrites ``dirpath/last.ckpt`` every ``every_n_minutes`` of training,
    mid-epoch too, so a killed run loses at most that much work (``resume=<run dir>`` continues it).
    Lightning writes checkpoints atomically (to a buffer, then the file in one transaction)."""
    return ModelCheckpoint(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, save_last=False,
                           train_time_interval=timedelta(minutes=every_n_minutes), enable_version_counter=False,
                           save_on_train_epoch_end=False)
