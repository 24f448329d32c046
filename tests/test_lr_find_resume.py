"""The LR range test, resume after SIGKILL, TensorBoard hparams, and no selection on the test set."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from cifarlab.errors import ConfigError
from cifarlab.training.pipeline import train
from conftest import ROOT, compose_train, run_script, tensorboard_hparams_row, tiny_overrides

FIT = ["data.subset=200", "trainer.max_epochs=4", "data/augmentation=none"]


@pytest.mark.slow  # trains
def test_lr_find_only_writes_the_curve_and_a_suggestion_inside_the_range(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + FIT + [
        "lr_find=only", "lr_find.num_steps=30", "lr_find.min_lr=1e-5", "lr_find.max_lr=1.0"], tmp_path)
    assert train(cfg) is None  # the range test alone: no training, no result
    found = json.loads((tmp_path / "lr_finder.json").read_text())
    assert 1e-5 <= found["suggested_lr"] <= 1.0
    assert len(found["lr"]) == len(found["loss"]) == found["steps_run"] and 11 < found["steps_run"] <= 30
    assert found["lr"] == sorted(found["lr"])  # an exponential sweep upwards
    assert Image.open(tmp_path / "lr_finder.png").size[0] > 300
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # trains
def test_lr_find_apply_trains_with_the_suggestion(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + FIT + ["lr_find=apply", "lr_find.num_steps=30"], tmp_path)
    results = train(cfg)
    assert results.lr_find["applied"] and results.max_lr == results.lr_find["suggested_lr"]
    saved = (tmp_path / "config.yaml").read_text()
    assert f"max_lr: {results.lr_find['suggested_lr']}" in saved
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 40 and metrics["schema"] == "cifarlab.train/1"


def unbroken_then_killed_and_resumed(overrides: list[str], tmp_path: Path, steps_per_epoch: int = 5) -> tuple[Path, int]:
    """Train ``overrides`` unbroken into ``tmp_path/unbroken``; train them again into ``tmp_path/run``, SIGKILL it
    mid-epoch (:func:`kill_mid_epoch`) and continue it with ``resume=``. Returns the resumed run dir and the step
    it was killed at."""
    unbroken = run_script("train.py", *overrides, f"hydra.run.dir={tmp_path / 'unbroken'}")
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]
    run_dir = tmp_path / "run"
    args = [sys.executable, str(ROOT / "train.py"), *overrides, "checkpoint.every_n_minutes=0.001",
            f"hydra.run.dir={run_dir}"]
    killed_at = kill_mid_epoch(args, run_dir / "checkpoints" / "last.ckpt", steps_per_epoch)
    assert not (run_dir / "metrics.json").exists()
    resumed = run_script("train.py", f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume_log'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not resumable" not in resumed.stderr  # Lightning's warning for a loader that restarts its epoch
    return run_dir, killed_at


def kill_mid_epoch(args: list[str], last: Path, steps_per_epoch: int) -> int:
    """Start ``args``, then SIGKILL it while its ``last.ckpt`` was written mid-epoch (the process is
    frozen with SIGSTOP while the checkpoint is read). Returns that checkpoint's global step."""
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if last.exists():
                proc.send_signal(signal.SIGSTOP)
                step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
                if step % steps_per_epoch:
                    return step
                proc.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        raise AssertionError("the run ended before a mid-epoch checkpoint could be caught")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("path", [["data.augment_on=workers", "data.num_workers=2"], ["data.augment_on=device"]],
                         ids=["workers", "device"])
def test_a_run_killed_mid_epoch_resumes_into_its_own_dir_as_if_unbroken(path: list[str], cifar_root: Path,
                                                                       tmp_path: Path) -> None:
    """SIGKILL with a mid-epoch last.ckpt, then resume=<run dir>: the same dir ends with one metrics.json,
    and the weights, order and augmentations of the rest of the epoch are the unbroken run's, so the
    test loss is the same."""
    overrides = [*tiny_overrides(cifar_root), "data.subset=100", "trainer.max_epochs=3", "model.tta=none", *path]
    run_dir, killed_at = unbroken_then_killed_and_resumed(overrides, tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    reference = json.loads((tmp_path / "unbroken" / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["global_step"] == reference["global_step"] == 15 and metrics["epochs"] == 3
    assert metrics["test"]["loss"] == pytest.approx(reference["test"]["loss"], rel=1e-5), killed_at
    assert metrics["test"]["acc"] == reference["test"]["acc"]
    # the resumed process's own training: the batches after the checkpoint, within its wall time
    assert metrics["images_per_s"] * metrics["train_seconds"] == pytest.approx((15 - killed_at) * 20)
    assert 0 < metrics["train_seconds"] < metrics["wall_time_s"]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]  # one last.ckpt, no last-v1
    assert not (tmp_path / "resume_log" / "metrics.json").exists()


@pytest.mark.slow  # starts a process
def test_resume_of_a_dir_without_checkpoint_says_so(tmp_path: Path) -> None:
    proc = run_script("train.py", f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'log'}")
    assert proc.returncode == 2 and "config.yaml is missing" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow  # trains
def test_early_stopping_on_the_test_set_is_refused(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + ["callbacks=early_stopping", "trainer.fast_dev_run=true"], tmp_path)
    with pytest.raises(ConfigError, match="callbacks.early_stopping stops early on val/acc while data.val_size=0"):
        train(cfg)
    held_out = compose_train(tiny_overrides(cifar_root) + [
        "callbacks=early_stopping", "trainer.fast_dev_run=true", "data.val_size=100"], tmp_path / "ok")
    assert train(held_out).val is not None


@pytest.mark.slow  # trains
def test_hparams_reach_tensorboard_with_the_final_metrics(cifar_root: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_train(tiny_overrides(cifar_root) + ["data.subset=100", "trainer.max_epochs=1"], tmp_path)
    results = train(cfg)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(results.test.acc)
    assert events.PluginTagToContent("hparams")  # the HParams plugin has the run
    # composed without train.py, so no Hydra choices: the key hyperparameters only
    assert tensorboard_hparams_row(tmp_path / "tensorboard") == {
        "model.scheduler.max_lr": 0.01, "model.optimizer.weight_decay": 1e-4, "model.loss.label_smoothing": 0.0, "data.batch_size": 20,
        "trainer.max_epochs": 1, "seed": 42}
