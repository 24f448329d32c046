"""train.py end to end on the fixture: fast_dev_run, a fit whose loss falls, a sweep, and bad input."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from cifarlab.data import load_cifar10
from cifarlab.module import ImageClassifier
from cifarlab.runs.result import TestedCheckpoint
from cifarlab.training.pipeline import train
from conftest import CONF, compose_train, run_script, tiny_overrides


@pytest.mark.slow  # trains
@pytest.mark.parametrize("model", ["custom_resnet", "resnet18"])
def test_fast_dev_run_fits_and_tests(model: str, cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [f"model={model}", "trainer.fast_dev_run=true"], tmp_path)
    results = train(cfg)
    assert 0.0 <= results.test.acc <= 1.0
    assert results.tested_checkpoint.path is None
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["model"] == {"custom_resnet": "CustomResNet", "resnet18": "ResNet18"}[model]
    assert written["data"]["checksum"]["status"] == "mismatch"


@pytest.fixture(scope="module")
def short_fit(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Four epochs of ResNet-9 on 200 fixture images, logged to CSV and TensorBoard."""
    out = tmp_path_factory.mktemp("fit")
    cfg = compose_train(tiny_overrides(cifar_root) + [
        "data.subset=200", "data/augmentation=none", "trainer.max_epochs=4", "trainer.log_every_n_steps=1",
        "model.scheduler.max_lr=0.005", "logger=[tensorboard,csv]"], out)
    return out, train(cfg)


def test_training_loss_falls(short_fit: tuple[Path, dict]) -> None:
    out, _ = short_fit
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    per_epoch = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(per_epoch) == 4
    assert per_epoch[-1] < 0.7 * per_epoch[0], per_epoch


def test_run_dir_holds_config_checkpoints_logs_and_metrics(short_fit: tuple[Path, dict]) -> None:
    out, results = short_fit
    assert (out / "config.yaml").is_file()
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    checkpoints = out / "checkpoints"
    assert all(p.is_file() for p in checkpoints.iterdir()), "a metric name with '/' created a folder"
    names = sorted(p.name for p in checkpoints.iterdir())
    assert names == ["last.ckpt"], names  # val_size=0 validates on the test set: no best-on-test file
    assert results.tested_checkpoint == TestedCheckpoint("last", "checkpoints/last.ckpt")
    assert results.epochs == 4 and results.global_step == 40 and results.images_per_s > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["images"] == 100 and metrics["wall_time_s"] > 0


def test_checkpoint_loads_weights_only_and_reproduces_test_accuracy(short_fit: tuple[Path, dict], cifar_root: Path) -> None:
    out, results = short_fit
    raw = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert raw["hyper_parameters"]["net"]["_target_"] == "cifarlab.models.CustomResNet"
    model = ImageClassifier.load_from_checkpoint(out / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    arrays = load_cifar10(cifar_root)
    images = torch.from_numpy(arrays.test_images)  # uint8: the model normalises with its training statistics
    with torch.no_grad():
        correct = (model(images).argmax(1).numpy() == arrays.test_labels).sum()
    assert correct / 100 == pytest.approx(results.test.acc, abs=1e-6)


@pytest.mark.slow  # trains
def test_held_out_validation_tests_the_best_checkpoint(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [
        "data.val_size=100", "data.subset=100", "trainer.max_epochs=2", "data/augmentation=none"], tmp_path)
    results = train(cfg)
    assert results.tested_checkpoint.which == "best"
    assert re.fullmatch(r"checkpoints/epoch00[01]-val_acc[01]\.\d{4}\.ckpt", results.tested_checkpoint.path)
    assert results.validation == "held_out" and 0.0 <= results.val.acc <= 1.0


@pytest.mark.slow  # trains
def test_test_false_chooses_on_the_held_out_split_without_testing(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [
        "data.val_size=100", "data.subset=100", "trainer.max_epochs=1", "data/augmentation=none", "test=false"], tmp_path)
    results = train(cfg)
    assert results.test is None and results.test_seconds < 1.0
    assert 0.0 <= results.val.acc <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["test"] is None


@pytest.mark.slow  # starts a process
def test_multirun_sweeps_two_models(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", "-m", "model=custom_resnet,resnet18", "trainer.fast_dev_run=true",
                      *tiny_overrides(cifar_root), f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    models = sorted(json.loads((tmp_path / str(i) / "metrics.json").read_text())["model"] for i in (0, 1))
    assert models == ["CustomResNet", "ResNet18"]


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("override,message", [
    ("model=resnet1000", "Could not find 'model/resnet1000'"),
    ("data.batch_size=0", "data.batch_size must be a positive integer, got 0"),
    ("data.root=/definitely/not/here", "/definitely/not/here/cifar-10-batches-py lacks data_batch_1"),
])
def test_bad_input_exits_non_zero_with_a_message(override: str, message: str, cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", *tiny_overrides(cifar_root), "trainer.fast_dev_run=true", override,
                      f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # starts a process
def test_truncated_batch_exits_non_zero(cifar_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(cifar_root, root)
    batch = root / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1000])
    proc = run_script("train.py", *tiny_overrides(root), "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert "data_batch_2 is truncated" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow  # trains
def test_device_path_fit_loss_falls(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [
        "data.augment_on=device", "data/augmentation=page", "data.subset=200", "trainer.max_epochs=2",
        "model.scheduler.max_lr=0.005", "logger=csv", "trainer.limit_val_batches=0"], tmp_path)
    results = train(cfg)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    per_epoch = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert len(per_epoch) == 2 and per_epoch[1] < per_epoch[0], per_epoch
    assert results.augment_on == "device" and results.global_step == 20 and results.test.images == 100


PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.slow  # trains
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_fast_dev_run_on_cpu(preset: str, cifar_root: Path, tmp_path: Path) -> None:
    """A glob over conf/experiment: a new preset is covered without editing this test. Batch, precision
    and compilation are shrunk for the CPU; the rest of the preset (model, optimiser, schedule, data path,
    callbacks, TTA) runs as configured."""
    cfg = compose_train([f"experiment={preset}"] + tiny_overrides(cifar_root) + [
        "trainer.fast_dev_run=true", "model.compile=false"], tmp_path)
    results = train(cfg)
    assert results.global_step == 1 and 0.0 <= results.test.acc <= 1.0
    assert results.accelerator == "CPUAccelerator"


@pytest.mark.slow  # trains
@pytest.mark.parametrize("cycle_momentum", [False, True])
def test_cycle_momentum_off_keeps_sgd_momentum_at_0_9(cycle_momentum: bool, cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [
        "optimizer=sgd", f"model.scheduler.cycle_momentum={cycle_momentum}", "model.scheduler.max_lr=0.05", "data.subset=100",
        "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "+callbacks.lr_monitor.log_momentum=true",
        "logger=csv", "trainer.limit_val_batches=0"], tmp_path)
    train(cfg)
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    momenta = {float(r["lr-SGD-momentum"]) for r in rows if r.get("lr-SGD-momentum")}
    assert len(momenta) > 1 if cycle_momentum else momenta == {0.9}, momenta


@pytest.mark.slow  # starts a process
def test_nan_loss_stops_the_run_with_a_message(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", *tiny_overrides(cifar_root), "model.net.logit_scale=1e38", "data.subset=100",
                      "trainer.max_epochs=1", "callbacks.finite_loss.every_n_steps=2", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "the training loss became NaN or infinite between steps 0 and 2" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "metrics.json").exists()


@pytest.mark.slow  # starts a process
def test_a_run_too_short_for_one_cycle_names_the_steps_and_phases(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", *tiny_overrides(cifar_root), "data.subset=80", "trainer.max_epochs=1",
                      f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    assert "OneCycleLR cannot schedule 4 steps with model.scheduler.pct_start=0.25: its phases would last 0, 3 steps" in proc.stderr


@pytest.mark.slow  # trains
def test_time_budget_run_writes_a_checkpoint_that_loads_weights_only(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(["experiment=cpu_quick"] + tiny_overrides(cifar_root) + [
        "data.subset=100", "trainer.max_epochs=1", "model.scheduler.budget_s=600"], tmp_path)
    results = train(cfg)
    assert results.tested_checkpoint == TestedCheckpoint("last", "checkpoints/last.ckpt")
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["lr_schedulers"][0]["elapsed_s"] > 0
