"""Shared fixtures: a small generated CIFAR-10 in torchvision's layout, and Hydra composition; and the
test tiers: tests that use a training fixture are marked ``slow`` at collection (``make test`` runs
``-m "not slow"``; tests that start a process carry the mark themselves, tests/test_tiers.py checks)."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import cifarlab  # noqa: F401  (registers the resolvers)
from cifarlab.reports.config import ReportSettings, RobustnessSettings
from cifarlab.runs.result import HeldOutScores, TestedCheckpoint, TestScores, TrainResult

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "src" / "cifarlab" / "conf"  # the configs ship inside the package
REAL_DATA = Path(os.environ.get("CIFARLAB_DATA") or ROOT.parent / "shared" / "data").resolve()
# evaluate.py's report for the tests that are not about robustness: its corruption suite on 20 images, not 1,000
QUICK_REPORT = ReportSettings(num_misclassified=1, robustness=RobustnessSettings(images=20))
# Fixtures that train a model: every test using one, directly or through another fixture, is slow.
TRAINING_FIXTURES = {"trained_run", "short_fit"}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable images (n, 3072) uint8: class k is a noisy image whose colour and stripe
    orientation depend on k, so a network can fit them in a few steps."""
    n = len(labels)
    base = rng.integers(0, 256, size=(10, 3), dtype=np.int64)
    yy, xx = np.mgrid[0:32, 0:32]
    images = np.empty((n, 3, 32, 32), dtype=np.uint8)
    for i, k in enumerate(labels):
        stripes = ((xx if k % 2 else yy) // (k // 2 + 1)) % 2 * 60
        pixels = base[k][:, None, None] + stripes[None] + rng.normal(0, 20, size=(3, 32, 32))
        images[i] = np.clip(pixels, 0, 255).astype(np.uint8)
    return images.reshape(n, -1)


def write_cifar(folder: Path, per_class_train: int = 10, per_class_test: int = 10, seed: int = 0) -> Path:
    """Write ``folder/cifar-10-batches-py``: 5 training batches of ``per_class_train`` images per
    class each and a test batch of ``per_class_test`` per class; returns ``folder``."""
    rng = np.random.default_rng(seed)
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    for name, per_class in [(f"data_batch_{i}", per_class_train) for i in range(1, 6)] + [("test_batch", per_class_test)]:
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        entry = {"batch_label": name, "labels": labels.tolist(), "data": make_images(labels, rng),
                 "filenames": [f"{i}.png" for i in range(len(labels))]}
        (out / name).write_bytes(pickle.dumps(entry))
    (out / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES, "num_cases_per_batch": 10 * per_class_train}))
    return folder


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test whose fixtures (all of them, through other fixtures too) include one of
    :data:`TRAINING_FIXTURES`."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$CIFARLAB_CACHE`` for the whole session (its subprocesses too): a folder of its own, whose cached CPU
    precision is fp32, the precision the tests train in, so that a TrainedRun infers in it on any CPU and gives
    train.py's numbers exactly. Tests of the choice itself write their own cache."""
    from cifarlab.training.precision import cache_key

    folder = tmp_path_factory.mktemp("machine_cache")
    (folder / "precision.json").write_text(json.dumps({cache_key(): {"seconds_per_step": {}, "best": "32-true"}}))
    os.environ["CIFARLAB_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated CIFAR-10 with 500 training images (50 per class) and 100 test images."""
    return write_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def trained_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train.py run dir shared by the evaluation and app tests: ResNet-9, 2 epochs on 100
    fixture images (few steps, so many test images stay misclassified); ``checkpoints/last.ckpt``,
    ``metrics.json`` and TensorBoard events inside."""
    from cifarlab.training.pipeline import train

    out = tmp_path_factory.mktemp("trained_run")
    train(compose_train(tiny_overrides(cifar_root) + ["data.subset=100", "trainer.max_epochs=2"], out))
    return out


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose ``conf/train.yaml`` as ``train.py`` would, with ``paths.output_dir`` set."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


def tiny_overrides(root: Path) -> list[str]:
    """Fast CPU settings on the fixture data."""
    return [f"data.root={root}", "data.download=false", "data.batch_size=20", "data.num_workers=0", "trainer=cpu",
            "trainer.precision=32-true", "callbacks.progress_bar.refresh_rate=1000"]


def run_script(script: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python <script> args`` as a user would; returns the completed process (text output)."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def train_result(**changes: Any) -> TrainResult:
    """A complete :class:`TrainResult` as a finished ``cpu_airbench`` run writes it, with ``changes``."""
    fields = dict(model="AirbenchNet", dataset="CIFAR-10", seed=0,
                  test=TestScores(acc=0.8946, loss=0.61, images=10000, tta="flip_translate", acc_tta=0.9038),
                  val=HeldOutScores(acc=0.89, loss=0.62), tested_checkpoint=TestedCheckpoint("last", "checkpoints/last.ckpt"),
                  validation="none", val_size=5000, resumed=False, epochs=9, global_step=816, train_images=45000,
                  world_size=1, images_per_s=928.0, train_seconds=450.3, compile_seconds=0.0, fit_seconds=458.0,
                  test_seconds=21.7, wall_time_s=484.5, augment_on="device", precision="bf16-mixed",
                  accelerator="CPUAccelerator", output_dir="outputs/cpu_airbench/runs/x", max_lr=0.75,
                  data={"root": "data", "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]},
                  epoch_images_per_s=[900.0, 930.0])
    return TrainResult(**(fields | changes))


def tensorboard_hparams_row(tensorboard_dir: Path) -> dict:
    """The run's row in TensorBoard's HParams tab: {column: str | float | bool}, numbers as floats."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    content = EventAccumulator(str(tensorboard_dir)).Reload().PluginTagToContent("hparams")
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}
