"""The LightningModule: a classifier around any network of :mod:`cifarlab.models`.

Its arguments are plain containers (the Hydra specs of the network, loss, optimiser and scheduler,
and the normalisation statistics), saved as hyperparameters, so a checkpoint rebuilds its model
with ``ImageClassifier.load_from_checkpoint(path)`` under torch's ``weights_only`` loading, with no
config at hand.

On the training path nothing waits for the device: metrics skip argument validation and NaN checks
(:class:`~cifarlab.callbacks.FiniteLossCheck` catches a NaN loss every N steps instead), and values
reach the host only when the logger or the progress bar reads them.
"""
from __future__ import annotations

import copy
import functools
import time
from typing import Any

import lightning as L
import torch
import numpy as np
from hydra.utils import instantiate
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from torch.optim.lr_scheduler import OneCycleLR
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cifarlab.errors import ConfigError
from cifarlab.tta import TTA_MODES, tta_logits


def check_one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool = False) -> None:
    """Refuse a OneCycle schedule with a phase of zero steps, on which PyTorch's ``OneCycleLR``
    divides by zero (e.g. 4 steps with ``pct_start=0.25``: a warm-up of 0 steps). Shorter phases
    that do not divide by zero, as in a 1-step ``fast_dev_run``, are left to run.

    Raises:
        ConfigError: naming the step count and the phases.
    """
    warmup_end = float(pct_start * total_steps) - 1
    ends = [warmup_end, 2 * warmup_end, total_steps - 1] if three_phase else [warmup_end, total_steps - 1]
    lengths = [ends[0]] + [b - a for a, b in zip(ends, ends[1:])]
    if 0 in lengths:
        raise ConfigError(
            f"OneCycleLR cannot schedule {total_steps} steps with scheduler.pct_start={pct_start}: its phases "
            f"would last {', '.join(f'{n:g}' for n in lengths)} steps. Train for more steps (a larger data.subset "
            "or more trainer.max_epochs) or change scheduler.pct_start."
        )


class ImageClassifier(L.LightningModule):
    """Train / validate / test a CIFAR-10 classifier.

    Args:
        net: Hydra spec of the network (``conf/model``), e.g.
            ``{"_target_": "cifarlab.models.CustomResNet", "num_classes": 10, "norm": "batch"}``.
        optimizer: Hydra ``_partial_`` spec of a torch optimiser (``conf/optimizer``), completed with
            the parameter groups. A network with ``param_groups()`` (airbench) gives its own groups,
            whose ``lr_scale`` and ``weight_decay_scale`` multiply the configured values.
        scheduler: Hydra ``_partial_`` spec of a per-step scheduler (``conf/scheduler``, OneCycleLR),
            completed with the optimiser and ``total_steps``; ``None`` keeps the optimiser's ``lr``.
        loss: Hydra spec of the loss, e.g. ``CrossEntropyLoss`` with ``label_smoothing``.
        mean, std: per-channel training statistics (pixel/255) the inputs were normalised with;
            kept so that evaluation and the app can normalise and denormalise images.
        class_names: the 10 class names, in label order.
        channels_last: keep weights and inputs in NHWC memory format (faster convolutions with
            bf16 on CPU and tensor cores on GPU).
        compile: ``torch.compile`` the network; :attr:`compile_seconds` times the compilation,
            done on random batches before the first epoch so that it stays out of the training time
            (on a GPU the same warm-up runs without ``compile`` too: cuDNN's autotuning).
        tta: test-time augmentation reported beside the plain test accuracy: ``none``, ``flip``
            or ``flip_translate`` (see :func:`cifarlab.tta.tta_logits`).

    Inputs (N, 3, 32, 32) float32 normalised, labels (N,) int64; ``forward`` returns (N, C) logits.
    Logs ``train/loss_step`` and ``train/acc_step`` (each batch's), ``train/loss_epoch``,
    ``train/acc_epoch``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc`` and, with ``tta``,
    ``test/acc_tta`` (accuracy as a fraction in [0, 1], micro-averaged; epoch losses averaged over
    images, so a last smaller batch counts by its size).

    Raises:
        ConfigError: an unknown ``tta``, or a OneCycle schedule too short for its phases.
    """

    def __init__(self, net: dict, optimizer: dict, loss: dict, mean: list[float], std: list[float],
                 class_names: list[str], scheduler: dict | None = None, channels_last: bool = False,
                 compile: bool = False, tta: str = "none") -> None:
        super().__init__()
        if tta not in TTA_MODES:
            raise ConfigError(f"tta={tta!r} is not one of {', '.join(TTA_MODES)}")
        self.save_hyperparameters(logger=False)  # cifarlab.tracking decides what loggers record
        self.net = instantiate(net)
        self.criterion = instantiate(loss)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        num_classes = len(class_names)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False))
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))
        self.test_acc_tta = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.compile_seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        acc, mean_loss = getattr(self, f"{stage}_acc"), getattr(self, f"{stage}_loss")
        # update, not forward: no per-batch compute. The loss enters once per image (a broadcast view),
        # because MeanMetric(nan_strategy="disable") drops its weight argument (torchmetrics 1.9.0, #3434).
        acc.update(logits.detach(), labels)
        mean_loss.update(loss.detach().expand(len(labels)))
        if stage == "train":  # the batch's own values for the progress bar and the step curves
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
            self.log("train/acc_step", (logits.detach().argmax(1) == labels).float().mean(), on_step=True,
                     on_epoch=False, prog_bar=True)
        suffix = "_epoch" if stage == "train" else ""
        self.log(f"{stage}/loss{suffix}", mean_loss, on_step=False, on_epoch=True, prog_bar=stage != "train",
                 batch_size=len(labels))
        self.log(f"{stage}/acc{suffix}", acc, on_step=False, on_epoch=True, prog_bar=stage != "train",
                 batch_size=len(labels))
        return loss, logits

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        _, logits = self._step(batch, "test")
        if self.hparams.tta != "none":
            self.test_acc_tta.update(tta_logits(self, batch[0], self.hparams.tta, plain=logits), batch[1])
            self.log("test/acc_tta", self.test_acc_tta, on_step=False, on_epoch=True, batch_size=len(batch[1]))

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Logits (N, C) float32 of a batch of (images, labels)."""
        return self(batch[0]).float()

    # ------------------------------------------------------------------ optimisation
    def _param_groups(self) -> tuple[list[dict], list[float]]:
        """The optimiser's parameter groups and each group's learning-rate multiplier."""
        groups = self.net.param_groups() if hasattr(self.net, "param_groups") else [
            {"params": [p for p in self.parameters() if p.requires_grad]}]
        weight_decay = self.hparams.optimizer.get("weight_decay", 0.0)
        scales = []
        for group in groups:
            scales.append(group.pop("lr_scale", 1.0))
            if "weight_decay_scale" in group:
                group["weight_decay"] = weight_decay * group.pop("weight_decay_scale")
        return groups, scales

    def configure_optimizers(self) -> dict:
        groups, scales = self._param_groups()
        optimizer = instantiate(self.hparams.optimizer)(groups)
        for group, scale in zip(optimizer.param_groups, scales):
            group["lr"] *= scale
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        total_steps = int(self.trainer.estimated_stepping_batches)
        make_scheduler: functools.partial = instantiate(self.hparams.scheduler)
        if make_scheduler.func is OneCycleLR:
            check_one_cycle_phases(total_steps, make_scheduler.keywords["pct_start"],
                                   make_scheduler.keywords.get("three_phase", False))
        if "max_lr" in make_scheduler.keywords:
            make_scheduler = functools.partial(make_scheduler, max_lr=[make_scheduler.keywords["max_lr"] * s for s in scales])
        scheduler = make_scheduler(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ resume: random states in the checkpoint
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store torch's, CUDA's, numpy's and Python's random states (numpy's as plain lists, so the
        checkpoint still loads under ``weights_only``), so a resumed run draws what an unbroken one would."""
        states = _collect_rng_states()
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        states["numpy"] = [kind, keys.tolist(), pos, has_gauss, gauss]
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states is not None and self._trainer is not None and self.trainer.state.fn == "fit":
            kind, keys, pos, has_gauss, gauss = states["numpy"]
            _set_rng_states(states | {"numpy": (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss)})

    # ------------------------------------------------------------------ set-up: whitening, compilation
    def setup(self, stage: str) -> None:
        if self.hparams.compile and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile()

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        if hasattr(self.net, "init_whitening") and datamodule is not None:
            self.net.init_whitening(datamodule.normalised_train_images(5000).to(self.device))
        if (self.hparams.compile or self.device.type == "cuda") and datamodule is not None:
            hp = datamodule.hparams
            self.compile_seconds = self._warm_up_on_random_batches(hp.batch_size, hp.get("eval_batch_size") or hp.batch_size)

    def _warm_up_on_random_batches(self, batch_size: int, eval_batch_size: int) -> float:
        """Compile (with ``compile``) and warm up (cuDNN's autotuning on a GPU) the training graph, and the
        evaluation graph under inference mode as ``trainer.test`` runs it, on random batches of the
        sizes training and testing use; weights, buffers and gradients are restored afterwards.
        Returns the seconds it took (device synchronised), kept out of the training time."""
        state = copy.deepcopy(self.net.state_dict())
        start = time.perf_counter()
        x = torch.randn(batch_size, 3, 32, 32, device=self.device)
        y = torch.randint(0, len(self.hparams.class_names), (batch_size,), device=self.device)
        precision = self.trainer.precision_plugin
        for _ in range(2):
            with precision.train_step_context():
                loss = self.criterion(self(x), y)
            loss.backward()
        self.eval()
        with torch.inference_mode(), precision.test_step_context():
            tta_logits(self, torch.randn(eval_batch_size, 3, 32, 32, device=self.device), self.hparams.tta)
        self.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.net.load_state_dict(state)
        self.zero_grad(set_to_none=True)
        return time.perf_counter() - start
