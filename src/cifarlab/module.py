"""The LightningModule: a classifier around any network of :mod:`cifarlab.models`, from uint8
pixels to logits in one forward.

It owns what stands between the pixels and the network: the normalisation (the training images'
per-channel mean and standard deviation, as buffers), the memory format and test-time augmentation.
Both data paths hand it uint8 batches, and ``trainer.test``, :class:`cifarlab.runs.run.TrainedRun`, evaluate,
the app and the export all call the same :meth:`ImageClassifier.forward` (airbench's ``infer``:
one path from weights to predictions; and a quarter of the bytes of float32 on the way to the device).

It is the ``model`` node of the config (``conf/classifier.yaml``, as in lightning-hydra-template), whose
network, optimiser and scheduler the ``model=``, ``optimizer=`` and ``scheduler=`` groups fill: one
``instantiate`` builds it, with the network, optimiser, scheduler and loss as nested Hydra specs, kept
as plain containers and saved as hyperparameters, so a checkpoint rebuilds its model with
``ImageClassifier.load_from_checkpoint(path)`` under torch's ``weights_only`` loading, with no config at
hand. The normalisation statistics are buffers in its ``state_dict``, which whoever builds it sets from the
training images (:meth:`ImageClassifier.set_normalisation`; :func:`cifarlab.training.builds.build_module`); it never
reads the data module. Checkpoints written while they were hyperparameters still load
(:meth:`ImageClassifier._load_from_state_dict` keeps the buffers they lack). What training needs beside the
contract (airbench's whitening, the random states of an exact resume, the compile warm-up) is in
:mod:`cifarlab.training.callbacks`.

On the training path nothing waits for the device: metrics skip argument validation and NaN checks
(:class:`~cifarlab.training.callbacks.FiniteLossCheck` catches a NaN loss every N steps instead), and values
reach the host only when the logger or the progress bar reads them.
"""
from __future__ import annotations

import functools
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import OneCycleLR
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from cifarlab.errors import ConfigError
from cifarlab.runs.legacy import add_missing_buffers
from cifarlab.models.base import param_groups
from cifarlab.training.schedules import check_one_cycle_phases
from cifarlab.tta import TTA_MODES, tta_logits

# The official CIFAR-10 training set's per-channel statistics (pixel / 255) and class names (its batches.meta):
# the normalisation of a module built without data, until a fit copies the data module's own.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NORMALISATION_BUFFERS = ("pixel_shift", "pixel_scale")


def _plain(spec: Any) -> Any:
    """A Hydra spec as plain dicts and lists (what ``weights_only`` checkpoints can hold)."""
    return OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else spec


class ImageClassifier(L.LightningModule):
    """Train / validate / test a CIFAR-10 classifier.

    Args:
        net: Hydra spec of the network (the ``model`` group, ``conf/model``), e.g.
            ``{"_target_": "cifarlab.models.CustomResNet", "num_classes": 10, "norm": "batch"}``.
        optimizer: Hydra ``_partial_`` spec of a torch optimiser (the ``optimizer`` group), completed with
            the network's parameter groups (:func:`cifarlab.models.base.param_groups`; airbench's own),
            whose ``lr_scale`` and ``weight_decay_scale`` multiply the configured values.
        scheduler: Hydra ``_partial_`` spec of a per-step scheduler (the ``scheduler`` group, OneCycleLR),
            completed with the optimiser and ``total_steps``; ``None`` keeps the optimiser's ``lr``.
        loss: Hydra spec of the loss, e.g. ``CrossEntropyLoss`` with ``label_smoothing``.
        class_names: the class names, in label order (default: CIFAR-10's).
        channels_last: keep weights and normalised inputs in NHWC memory format (faster
            convolutions with bf16 on CPU and tensor cores on GPU).
        compile: ``torch.compile`` the network; :class:`cifarlab.training.callbacks.WarmUp` times the compilation,
            done on random batches before the first epoch so that it stays out of the training time
            (on a GPU the same warm-up runs without ``compile`` too: cuDNN's autotuning).
        tta: test-time augmentation reported beside the plain test accuracy: ``none``, ``flip``
            or ``flip_translate`` (see :func:`cifarlab.tta.tta_logits`).
        mean, std: per-channel statistics (pixel/255) of the training images, held as buffers:
            :meth:`normalise` maps a pixel ``x`` of channel ``c`` to ``(x - 255 mean[c]) * (1 / (255 std[c]))``
            in float32, the arithmetic of albumentations' ``Normalize``. None: the official CIFAR-10
            training set's (:data:`CIFAR10_MEAN`, :data:`CIFAR10_STD`) until :meth:`set_normalisation` sets the data
            module's; given only by checkpoints written while they were hyperparameters.

    Batches are (images (N, 3, 32, 32) uint8, labels (N,) int64); ``forward(images, tta)`` returns
    (N, C) logits (float32, or the autocast dtype under ``*-mixed`` precision).
    Logs ``train/loss_step`` and ``train/acc_step`` (each batch's), ``train/loss_epoch``,
    ``train/acc_epoch``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc`` and, with ``tta``,
    ``test/acc_tta`` (accuracy as a fraction in [0, 1], micro-averaged; epoch losses averaged over
    images, so a last smaller batch counts by its size).

    Raises:
        ConfigError: an unknown ``tta``, or a OneCycle schedule too short for its phases.
        ValueError: ``forward`` of images that are not a uint8 batch.
    """

    def __init__(self, net: dict, optimizer: dict, loss: dict, scheduler: dict | None = None,
                 class_names: list[str] | None = None, channels_last: bool = False, compile: bool = False,
                 tta: str = "none", mean: list[float] | None = None, std: list[float] | None = None) -> None:
        super().__init__()
        if tta not in TTA_MODES:
            raise ConfigError(f"model.tta={tta!r} is not one of {', '.join(TTA_MODES)}")
        net, optimizer, loss, scheduler = _plain(net), _plain(optimizer), _plain(loss), _plain(scheduler)
        class_names = list(_plain(class_names) or CIFAR10_CLASSES)
        # cifarlab.training.tracking decides what loggers record; mean/std stay out unless given (older checkpoints)
        self.save_hyperparameters(ignore=[k for k, v in (("mean", mean), ("std", std)) if v is None], logger=False)
        self.net = instantiate(net)
        self.criterion = instantiate(loss)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        num_classes = len(class_names)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro", validate_args=False))
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))
        self.test_acc_tta = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.register_buffer("pixel_shift", torch.zeros(1, 3, 1, 1))
        self.register_buffer("pixel_scale", torch.ones(1, 3, 1, 1))
        self.set_normalisation(mean or CIFAR10_MEAN, std or CIFAR10_STD)

    def set_normalisation(self, mean: list[float], std: list[float]) -> None:
        """Normalise with per-channel ``mean`` and ``std`` (pixel/255, 3 floats each) from now on."""
        with torch.no_grad():
            self.pixel_shift.copy_((torch.tensor(mean, dtype=torch.float32) * 255).view(1, 3, 1, 1))
            self.pixel_scale.copy_(torch.reciprocal(torch.tensor(std, dtype=torch.float32) * 255).view(1, 3, 1, 1))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        """``nn.Module``'s, for this module's own entries (as BatchNorm upgrades its older states). A checkpoint
        written while the statistics were hyperparameters has no normalisation buffers: the module keeps its
        own, which its ``mean``/``std`` built (a checkpoint loaded with its hyperparameters) or a fit's data
        module set (such a run resumed, its weight averages too)."""
        add_missing_buffers(state_dict, prefix, self, NORMALISATION_BUFFERS)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) or (N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised with the training
        statistics, channels_last with ``channels_last``: what the network takes.

        Raises:
            ValueError: ``images`` is not a 4-d uint8 batch (e.g. already normalised floats).
        """
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"the model takes (N, 3, H, W) or (N, H, W, 3) uint8 images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if images.shape[1] != 3 and images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        x = (images.float() - self.pixel_shift) * self.pixel_scale
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def forward(self, images: torch.Tensor, tta: str = "none") -> torch.Tensor:
        """Logits (N, C) of uint8 ``images`` (N, 3, H, W) or (N, H, W, 3) under test-time augmentation
        ``tta`` (``none`` | ``flip`` | ``flip_translate``, :func:`cifarlab.tta.tta_logits`).

        Raises:
            ValueError: images that are not a uint8 batch; an unknown ``tta``.
        """
        return tta_logits(self._net, self.normalise(images), tta)

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        """The network on normalised images ``x``, in the memory format it trains in (TTA's flipped
        and shifted views come back contiguous)."""
        return self.net(x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
        """Loss, normalised images and logits of a (uint8 images, labels) batch; updates and logs
        the stage's metrics."""
        images, labels = batch
        x = self.normalise(images)
        logits = self._net(x)  # = self(images): the plain logits, kept for the TTA of test_step
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
        return loss, x, logits

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        _, x, logits = self._step(batch, "test")
        if self.hparams.tta != "none":  # forward(images, tta), reusing the plain logits
            self.test_acc_tta.update(tta_logits(self._net, x, self.hparams.tta, plain=logits), batch[1])
            self.log("test/acc_tta", self.test_acc_tta, on_step=False, on_epoch=True, batch_size=len(batch[1]))

    # ------------------------------------------------------------------ optimisation
    def _param_groups(self) -> tuple[list[dict], list[float]]:
        """The optimiser's parameter groups and each group's learning-rate multiplier."""
        groups = param_groups(self.net)
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

    # ------------------------------------------------------------------ set-up: compilation
    def setup(self, stage: str) -> None:
        """Compile the network with ``compile`` (once; :class:`cifarlab.training.callbacks.WarmUp` then compiles its
        graphs outside the training time)."""
        if self.hparams.compile and getattr(self.net, "_compiled_call_impl", None) is None:
            self.net.compile()
