"""Experiment trackers: MLflow's local store and W&B offline read back, HParams rows, missing packages."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cifarlab.errors import ConfigError
from cifarlab.training.tracking import HydraRecord, check_logger_packages, tensorboard_hparams
from conftest import ROOT, compose_train, run_script, tensorboard_hparams_row, tiny_overrides


@pytest.fixture(scope="module")
def tracked_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train.py run (airbench, SGD, 1 epoch on 100 fixture images) logged to TensorBoard, a local
    MLflow store (``<dir>/mlflow.db``, artifacts in ``<dir>/artifacts``) and W&B offline; returns ``<dir>``."""
    for package in ("mlflow", "wandb"):
        pytest.importorskip(package, reason=f"{package} is an extra: pip install -e '.[{package}]' (make install-dev)")
    out = tmp_path_factory.mktemp("tracked")
    overrides = [*tiny_overrides(cifar_root), "data.subset=100", "trainer.max_epochs=1", "model=airbench", "optimizer=sgd",
                 "logger=[tensorboard,mlflow,wandb]", f"logger.mlflow.tracking_uri=sqlite:///{out}/mlflow.db",
                 f"logger.mlflow.artifact_location={out}/artifacts", f"hydra.run.dir={out}/run"]
    with pytest.MonkeyPatch.context() as env:  # nothing may reach the network: W&B offline, its folders here
        for variable, folder in (("WANDB_CONFIG_DIR", "wandb-config"), ("WANDB_CACHE_DIR", "wandb-cache"),
                                 ("WANDB_DATA_DIR", "wandb-data")):
            env.setenv(variable, str(out / folder))
        env.setenv("WANDB_MODE", "offline")
        proc = run_script("train.py", *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_mlflow_store_holds_params_metrics_and_the_checkpoint(tracked_run: Path) -> None:
    import mlflow

    metrics = json.loads((tracked_run / "run" / "metrics.json").read_text())
    client = mlflow.MlflowClient(f"sqlite:///{tracked_run}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    params, logged = run.data.params, run.data.metrics
    assert (params["choices/model"], params["choices/optimizer"], params["choices/scheduler"]) == (
        "airbench", "sgd", "onecycle")
    assert params["choices/data/augmentation"] == "cutout8" and params["choices/experiment"] == "null"
    assert params["model/optimizer/lr"] == "0.1" and params["model/net/_target_"] == "cifarlab.models.AirbenchNet"
    assert logged["test/acc"] == pytest.approx(metrics["test"]["acc"]) and "train/loss_epoch" in logged
    assert run.data.tags["mlflow.runName"] == "run" and run.info.status == "FINISHED"
    checkpoint = Path(client.download_artifacts(run.info.run_id, "last/last.ckpt", str(tracked_run / "download")))
    assert checkpoint.stat().st_size == (tracked_run / "run" / "checkpoints" / "last.ckpt").stat().st_size


@pytest.mark.slow
def test_search_runs_finds_the_run_by_its_choices(tracked_run: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tracked_run}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["train"], filter_string="params.`choices/model` = 'airbench'")
    assert len(runs) == 1 and runs["metrics.test/acc"].iloc[0] >= 0


@pytest.mark.slow
def test_wandb_writes_an_offline_run_in_the_run_dir(tracked_run: Path) -> None:
    (offline,) = (tracked_run / "run" / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb")) and (offline / "files").is_dir()


@pytest.mark.slow
def test_single_run_hparams_are_the_choices_and_key_hyperparameters(tracked_run: Path) -> None:
    row = tensorboard_hparams_row(tracked_run / "run" / "tensorboard")
    assert row == {"model": "airbench", "optimizer": "sgd", "scheduler": "onecycle", "data/augmentation": "cutout8",
                   "experiment": "null", "model.scheduler.max_lr": 0.01, "model.optimizer.weight_decay": 5e-4,
                   "model.loss.label_smoothing": 0.0, "data.batch_size": 20, "trainer.max_epochs": 1, "seed": 42}


def test_hparams_of_a_sweep_job_are_what_the_sweep_varies() -> None:
    cfg = compose_train(["optimizer=sgd", "model.optimizer.momentum=0.8", "seed=3"])
    record = HydraRecord({"model": "custom_resnet", "optimizer": "sgd"},
                         swept=["optimizer", "model.optimizer.momentum", "seed"])
    assert tensorboard_hparams(cfg, record) == {"optimizer": "sgd", "model.optimizer.momentum": 0.8, "seed": 3}


def test_without_a_scheduler_the_learning_rate_column_is_the_optimizers() -> None:
    cfg = compose_train(["~scheduler"])
    row = tensorboard_hparams(cfg, HydraRecord())
    assert row["model.optimizer.lr"] == 0.001 and "model.scheduler.max_lr" not in row and "model" not in row


@pytest.mark.parametrize("logger,package", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_tracker_package_says_what_to_install(logger: str, package: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # find_spec then reports it missing
    with pytest.raises(ConfigError, match=rf"needs the {package} package.*pip install -e '\.\[{package}\]'"):
        check_logger_packages(compose_train([f"logger={logger}"]).logger)


@pytest.mark.slow
def test_train_py_without_the_package_exits_2(cifar_root: Path, tmp_path: Path) -> None:
    script = ("import runpy, sys; sys.modules['mlflow'] = None; "
              f"sys.argv = ['train.py', *{tiny_overrides(cifar_root) + ['logger=mlflow', f'hydra.run.dir={tmp_path}']!r}]; "
              "runpy.run_path('train.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "error: logger.mlflow" in proc.stderr and "pip install -e '.[mlflow]'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("logger,key", [("csv", "csv"), ("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_tracker_is_added_to_tensorboard(logger: str, key: str) -> None:
    assert sorted(compose_train([f"logger={logger}"]).logger) == sorted(["tensorboard", key])
    assert sorted(compose_train([f"logger=[tensorboard,{logger}]"]).logger) == sorted(["tensorboard", key])


@pytest.mark.slow  # a multirun of two jobs in one process
def test_each_job_of_a_multirun_is_its_own_wandb_run(cifar_root: Path, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="wandb is an extra: pip install -e '.[wandb]' (make install-dev)")
    for variable, folder in (("WANDB_CONFIG_DIR", "wandb-config"), ("WANDB_CACHE_DIR", "wandb-cache"),
                             ("WANDB_DATA_DIR", "wandb-data")):
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.setenv("WANDB_MODE", "offline")
    proc = run_script("train.py", "-m", *tiny_overrides(cifar_root), "data.subset=40", "trainer.max_epochs=1",
                      "logger=wandb", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [list((tmp_path / "sweep" / job / "wandb").glob("offline-run-*")) for job in ("0", "1")]
    assert [len(r) for r in runs] == [1, 1], runs
    assert runs[0][0].name.rsplit("-", 1)[-1] != runs[1][0].name.rsplit("-", 1)[-1]  # two run ids
    assert all(list((tmp_path / "sweep" / job / "tensorboard").glob("events.*")) for job in ("0", "1"))
