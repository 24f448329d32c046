"""The LightningModule: a classifier around any network of :mod:`cifarlab.models`.

Its arguments are plain containers (the Hydra specs of the network, loss and optimiser
recipe, and the normalisation statistics), saved as hyperparameters, so a checkpoint
rebuilds its model with ``ImageClassifier.load_from_checkpoint(path)`` under torch's
``weights_only`` loading, with no config at hand.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy


class ImageClassifier(L.LightningModule):
    """Train / validate / test a CIFAR-10 classifier.

    Args:
        net: Hydra spec of the network (``conf/model``), e.g.
            ``{"_target_": "cifarlab.models.CustomResNet", "num_classes": 10, "norm": "batch"}``.
        optimizer: Hydra spec of a recipe in :mod:`cifarlab.optim` (``conf/optimizer``), called
            with ``params`` and ``total_steps``; it returns (optimizer, per-batch scheduler).
        loss: Hydra spec of the loss, e.g. ``CrossEntropyLoss`` with ``label_smoothing``.
        mean, std: per-channel training statistics (pixel/255) the inputs were normalised with;
            kept so that evaluation and the app can normalise and denormalise images.
        class_names: the 10 class names, in label order.
        channels_last: keep weights and inputs in NHWC memory format (faster convolutions with
            bf16 on CPU and tensor cores on GPU).

    Inputs (N, 3, 32, 32) float32, labels (N,) int64; ``forward`` returns (N, C) logits.
    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/loss``, ``test/acc``
    (accuracy as a fraction in [0, 1], micro-averaged).
    """

    def __init__(self, net: dict, optimizer: dict, loss: dict, mean: list[float], std: list[float],
                 class_names: list[str], channels_last: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = instantiate(net)
        self.criterion = instantiate(loss)
        num_classes = len(class_names)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro"))
            setattr(self, f"{stage}_loss", MeanMetric())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        acc, mean_loss = getattr(self, f"{stage}_acc"), getattr(self, f"{stage}_loss")
        acc(logits.detach(), labels)
        mean_loss(loss.detach())
        on_step = stage == "train"
        self.log(f"{stage}/loss", mean_loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(labels))
        self.log(f"{stage}/acc", acc, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Logits (N, C) float32 of a batch of (images, labels)."""
        return self(batch[0]).float()

    def configure_optimizers(self) -> dict:
        optimizer, scheduler = instantiate(
            self.hparams.optimizer, params=self.parameters(), total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
