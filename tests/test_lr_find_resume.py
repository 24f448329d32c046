"""The LR range test, resume after SIGKILL, TensorBoard hparams, and no selection on the test set."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from cifarlab.errors import ConfigError
from cifarlab.training import run
from conftest import ROOT, compose_train, run_script, tiny_overrides

FIT = ["data.subset=200", "trainer.max_epochs=4", "data/augmentation=none"]


def test_lr_find_only_writes_the_curve_and_a_suggestion_inside_the_range(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + FIT + [
        "lr_find=only", "lr_find.num_steps=30", "lr_find.min_lr=1e-5", "lr_find.max_lr=1.0"], tmp_path)
    results = run(cfg)
    found = json.loads((tmp_path / "lr_finder.json").read_text())
    assert 1e-5 <= found["suggested_lr"] <= 1.0 and found["suggested_lr"] == results["lr_find"]["suggested_lr"]
    assert len(found["lr"]) == len(found["loss"]) == found["steps_run"] and 11 < found["steps_run"] <= 30
    assert found["lr"] == sorted(found["lr"])  # an exponential sweep upwards
    assert Image.open(tmp_path / "lr_finder.png").size[0] > 300
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoints").exists()


def test_lr_find_apply_trains_with_the_suggestion(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + FIT + ["lr_find=apply", "lr_find.num_steps=30"], tmp_path)
    results = run(cfg)
    assert results["lr_find"]["applied"] and results["max_lr"] == results["lr_find"]["suggested_lr"]
    saved = (tmp_path / "config.yaml").read_text()
    assert f"max_lr: {results['lr_find']['suggested_lr']}" in saved
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 40 and metrics["schema"] == "cifarlab.train/1"


def test_a_killed_run_resumes_into_its_own_dir(cifar_root: Path, tmp_path: Path) -> None:
    """SIGKILL after the first mid-epoch checkpoint, then resume=<run dir>: the same dir ends with one
    metrics.json and the global step of an unbroken run."""
    run_dir = tmp_path / "run"
    args = [sys.executable, str(ROOT / "train.py"), *tiny_overrides(cifar_root), "data.subset=200",
            "trainer.max_epochs=6", "checkpoint.every_n_minutes=0.002", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert last.exists() and not (run_dir / "metrics.json").exists(), "the run finished before it could be killed"
    resumed = run_script("train.py", f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'resume_log'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["global_step"] == 60 and metrics["epochs"] == 6
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["last.ckpt"]  # one last.ckpt, no last-v1
    assert not (tmp_path / "resume_log" / "metrics.json").exists()


def test_resume_of_a_dir_without_checkpoint_says_so(tmp_path: Path) -> None:
    proc = run_script("train.py", f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'log'}")
    assert proc.returncode == 2 and "config.yaml is missing" in proc.stderr and "Traceback" not in proc.stderr


def test_early_stopping_on_the_test_set_is_refused(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + ["callbacks=early_stopping", "trainer.fast_dev_run=true"], tmp_path)
    with pytest.raises(ConfigError, match="callbacks.early_stopping stops early on val/acc while data.val_size=0"):
        run(cfg)
    held_out = compose_train(tiny_overrides(cifar_root) + [
        "callbacks=early_stopping", "trainer.fast_dev_run=true", "data.val_size=100"], tmp_path / "ok")
    assert run(held_out)["val"] is not None


def test_hparams_reach_tensorboard_with_the_final_metrics(cifar_root: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = compose_train(tiny_overrides(cifar_root) + ["data.subset=100", "trainer.max_epochs=1"], tmp_path)
    results = run(cfg)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(results["test"]["acc"])
    assert events.PluginTagToContent("hparams")  # the HParams plugin has the run
