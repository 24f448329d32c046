"""The progress bars: each metric once, and the budget left instead of an epoch count for a timed run."""
from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.trainer.states import RunningStage

from cifarlab.training.progress import BudgetRichProgressBar, LineProgressBar, budget_left_s
from cifarlab.training.schedules import TimeBudgetOneCycle

# what Lightning's progress_bar_metrics hold in epoch 2 of a run logging train/* on step and epoch
METRICS = {"train/loss_step": torch.tensor(1.25), "train/acc_step": torch.tensor(0.5),
           "train/loss_epoch": torch.tensor(2.0), "train/acc_epoch": torch.tensor(0.25), "val/acc": torch.tensor(0.4)}


def budget_schedule(budget_s: float, elapsed_s: float) -> TimeBudgetOneCycle:
    schedule = TimeBudgetOneCycle(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), budget_s=budget_s,
                                  max_lr=0.1, clock=lambda: elapsed_s)
    schedule.started_at = 0.0  # its first step was at time 0
    return schedule


def fake_trainer(schedule: TimeBudgetOneCycle | None = None, callbacks: tuple = ()) -> SimpleNamespace:
    configs = [SimpleNamespace(scheduler=schedule)] if schedule else []
    return SimpleNamespace(current_epoch=1, max_epochs=10, num_training_batches=391, progress_bar_metrics=METRICS,
                           callbacks=list(callbacks), lr_scheduler_configs=configs, sanity_checking=False, loggers=[])


def last_line(bar: LineProgressBar, trainer: SimpleNamespace, capsys: pytest.CaptureFixture, done: int = 391) -> str:
    bar._trainer = trainer
    bar.on_train_epoch_start(trainer, None)
    bar.on_train_batch_end(trainer, None, None, (None, [0] * 128), done - 1)
    return capsys.readouterr().out.strip()


def test_the_epoch_end_line_shows_each_metric_once_with_the_steps_value(capsys: pytest.CaptureFixture) -> None:
    line = last_line(LineProgressBar(refresh_rate=50), fake_trainer(), capsys)
    assert line.startswith("epoch 2/10  step 391/391 (100%)  train/loss 1.2500  train/acc 0.5000  ")
    assert line.count("train/loss") == 1 and line.count("train/acc") == 1 and " eta " in line


def test_a_time_budget_run_shows_the_budget_left_instead_of_epochs_and_eta(capsys: pytest.CaptureFixture) -> None:
    line = last_line(LineProgressBar(refresh_rate=50), fake_trainer(budget_schedule(450, 238)), capsys, done=50)
    assert line.startswith("epoch 2  step 50/391 (13%)  train/loss 1.2500  train/acc 0.5000  ")
    assert line.endswith("img/s  budget 212 s left") and "eta" not in line and "/10" not in line


def test_max_time_counts_before_the_schedule() -> None:
    timer = Timer(duration={"seconds": 300})
    timer._start_time[RunningStage.TRAINING] = time.monotonic() - 88  # training started 88 s ago
    assert budget_left_s(fake_trainer(budget_schedule(450, 238), callbacks=(timer,))) == pytest.approx(212, abs=5)
    assert budget_left_s(fake_trainer()) is None


def test_rich_bar_is_lightnings_with_the_budget_in_its_description() -> None:
    bar = BudgetRichProgressBar(refresh_rate=7)
    assert bar.refresh_rate == 7
    bar._trainer = fake_trainer(budget_schedule(450, 238))
    assert bar._get_train_description(1) == "Epoch 1 · budget 212 s left"
    bar._trainer = fake_trainer()
    assert bar._get_train_description(1).strip() == "Epoch 1/9"


def test_a_run_resumed_mid_epoch_reports_the_speed_since_it_started(capsys: pytest.CaptureFixture,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    bar, trainer = LineProgressBar(refresh_rate=1), fake_trainer()
    bar._trainer = trainer
    bar.on_train_start(trainer, None)  # resumed at step 200 of 391: no on_train_epoch_start for this epoch
    now[0] += 2.0
    bar.on_train_batch_end(trainer, None, None, (None, [0] * 128), 200)
    line = capsys.readouterr().out  # 128 images in 2 s, not since the clock's origin; 190 steps left at 2 s
    assert line.rstrip().endswith("  64 img/s  eta 0:06:20")
