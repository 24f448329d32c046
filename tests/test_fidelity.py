"""The speed recipes' mechanics: airbench's whitening-bias freeze, the image-weighted test loss, the
lookahead following a time budget, and an LR range test that trains and nothing else."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from cifarlab.training.callbacks import AirbenchWhitening, training_progress
from cifarlab.training.schedules import TimeBudgetOneCycle
from cifarlab.module import ImageClassifier
from cifarlab.training.pipeline import train
from conftest import compose_train, run_script, tiny_overrides

CLASSES = [str(i) for i in range(10)]


class BiasGradients(L.Callback):
    """Records, after each epoch's first backward, whether the whitening bias got a gradient."""

    def __init__(self) -> None:
        self.has_grad: list[bool] = []

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if len(self.has_grad) == trainer.current_epoch:
            self.has_grad.append(pl_module.net.whiten.bias.grad is not None)


@pytest.mark.slow
def test_the_whitening_bias_stops_training_after_its_epochs(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(["experiment=speedrun"] + tiny_overrides(cifar_root) + [
        "model.compile=false", "data.subset=40", "trainer.max_steps=-1", "trainer.max_epochs=5",
        "callbacks.airbench_whitening.fraction=0.6", "model.scheduler.pct_start=0.3", "test=false"], tmp_path)
    probe = BiasGradients()
    from cifarlab.training import pipeline as training

    original = training.build_trainer
    training.build_trainer = lambda cfg, module, extra: original(cfg, module, extra + [probe])
    try:
        train(cfg)
    finally:
        training.build_trainer = original
    assert probe.has_grad == [True, True, True, False, False]  # 2 steps an epoch: frozen from step 6 of 10


class WhitenedNet(torch.nn.Module):
    """The smallest :class:`cifarlab.models.base.Whitened` network."""

    def __init__(self) -> None:
        super().__init__()
        self.whiten = torch.nn.Conv2d(3, 24, 2)

    def init_whitening(self, images: torch.Tensor) -> None:
        self.whiten.weight.data.fill_(1.0)


def progress_trainer(progress: float, epoch: int = 0) -> SimpleNamespace:
    schedule = SimpleNamespace(progress=progress)
    return SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=schedule)], current_epoch=epoch)


@pytest.mark.parametrize("budget_s", [60, 3600])
def test_the_whitening_bias_freezes_at_the_same_fraction_of_a_short_and_a_long_budget(budget_s: float) -> None:
    clock = [0.0]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = TimeBudgetOneCycle(optimizer, budget_s=budget_s, max_lr=1.0, clock=lambda: clock[0])
    trainer = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=schedule)], current_epoch=0)
    module = SimpleNamespace(net=WhitenedNet())
    freeze, trained = AirbenchWhitening(fraction=0.3), []
    for second in range(0, 100):
        clock[0] = second / 100 * budget_s
        optimizer.step()
        schedule.step()
        freeze.on_train_batch_start(trainer, module, None, second)
        trained.append(module.net.whiten.bias.requires_grad)
    assert trained.index(False) == 30 and not any(trained[30:])  # 30 % of either budget gone at step 30


def test_a_run_resumed_mid_epoch_past_the_freeze_is_frozen_from_its_first_step() -> None:
    module = SimpleNamespace(net=WhitenedNet())
    AirbenchWhitening(fraction=0.3).on_train_batch_start(progress_trainer(0.45, epoch=1), module, None, 57)
    assert not module.net.whiten.bias.requires_grad
    AirbenchWhitening(fraction=0.3).on_train_batch_start(progress_trainer(0.1), module, None, 3)
    assert module.net.whiten.bias.requires_grad


def test_configs_written_with_epochs_still_freeze_by_epoch() -> None:
    module = SimpleNamespace(net=WhitenedNet())
    AirbenchWhitening(epochs=3).on_train_batch_start(progress_trainer(0.9, epoch=2), module, None, 0)
    assert module.net.whiten.bias.requires_grad
    AirbenchWhitening(epochs=3).on_train_batch_start(progress_trainer(0.1, epoch=3), module, None, 0)
    assert not module.net.whiten.bias.requires_grad


def test_whitening_bias_freeze_leaves_a_network_without_whitening_alone() -> None:
    module = SimpleNamespace(net=torch.nn.Linear(2, 2))
    AirbenchWhitening(0.1).on_train_batch_start(progress_trainer(0.5, epoch=5), module, None, 0)
    assert module.net.bias.requires_grad


def test_test_loss_is_the_image_weighted_mean_over_batches_of_different_sizes() -> None:
    net = {"_target_": "torch.nn.Sequential", "_args_": [{"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 10,
                                                          "kernel_size": 2}, {"_target_": "torch.nn.Flatten"}]}
    torch.manual_seed(0)
    module = ImageClassifier(net=net, optimizer={}, loss={"_target_": "torch.nn.CrossEntropyLoss"},
                             mean=[0.5] * 3, std=[0.25] * 3, class_names=CLASSES)
    module.log = lambda *args, **kwargs: None
    batches = [(torch.randint(0, 256, (n, 3, 2, 2), dtype=torch.uint8), torch.randint(0, 10, (n,))) for n in (8, 2)]
    with torch.no_grad():
        for batch in batches:
            module._step(batch, "test")
        logits = [module(images) for images, _ in batches]
    labels = torch.cat([b[1] for b in batches])
    expected = torch.nn.functional.cross_entropy(torch.cat(logits), labels)  # the mean over all 10 images
    batch_means = torch.stack([torch.nn.functional.cross_entropy(x, b[1]) for x, b in zip(logits, batches)]).mean()
    assert module.test_loss.compute() == pytest.approx(expected.item(), abs=1e-6)
    assert abs(expected - batch_means) > 1e-3  # the unweighted mean of batch means would differ


def test_lookahead_progress_follows_a_time_budget_schedule() -> None:
    budget = SimpleNamespace(progress=0.4)
    with_budget = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=budget)], global_step=10,
                                  estimated_stepping_batches=1000)
    by_steps = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=object())], global_step=250,
                               estimated_stepping_batches=1000)
    assert training_progress(with_budget) == 0.4 and training_progress(by_steps) == 0.25


@pytest.mark.slow
def test_lr_find_only_with_a_held_out_split_exits_0_without_validating(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", *tiny_overrides(cifar_root), "lr_find=only", "lr_find.num_steps=30",
                      "data.val_size=100", "data.subset=200", "logger=csv", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "lr_finder.png").is_file() and "suggested learning rate" in proc.stdout
    logged = (tmp_path / "csv" / "metrics.csv").read_text() if (tmp_path / "csv" / "metrics.csv").exists() else ""
    assert "val/" not in logged and "Traceback" not in proc.stderr
