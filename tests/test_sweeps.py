"""Sweeps: what train.py returns to sweepers, the multirun summaries, the Optuna search and its refusal on the test set."""
from __future__ import annotations

import csv
import importlib.util
import json
import statistics
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from cifarlab.runs.result import HeldOutScores, TestScores, TrainResult
from cifarlab.runs.rundir import RunDir
from cifarlab.runs.sweeps import write_summary
from conftest import CONF, ROOT, compose_train, run_script, tensorboard_hparams_row, tiny_overrides, train_result


def held_out(root: Path) -> list[str]:
    """One epoch of two steps on 40 fixture images, 40 more held out: a sweep job in seconds."""
    return tiny_overrides(root) + ["data.subset=40", "data.val_size=40", "trainer.max_epochs=1",
                                   "data/augmentation=none"]


def train_main():
    """``train.main`` without the ``@hydra.main`` wrapper: the function sweepers get the value of."""
    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main.__wrapped__


def rows(sweep_dir: Path, kind: str) -> list[dict]:
    return [r for r in csv.DictReader((sweep_dir / "summary.csv").open()) if r["kind"] == kind]


@pytest.mark.slow  # trains
def test_train_returns_the_held_out_accuracy_of_the_tested_weights(cifar_root: Path, tmp_path: Path) -> None:
    value = train_main()(compose_train(held_out(cifar_root), tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert value == metrics["val"]["acc"] and 0.0 <= value <= 1.0
    assert metrics["val"]["loss"] > 0
    tested = Path(metrics["tested_checkpoint"]["path"]).name  # the best-on-val file, named by its val/acc
    assert tested == f"epoch000-val_acc{value:.4f}.ckpt"


@pytest.mark.slow  # trains
def test_train_returns_none_without_a_held_out_split(cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + ["trainer.fast_dev_run=true", "data.val_size=0"], tmp_path)
    assert train_main()(cfg) is None
    assert json.loads((tmp_path / "metrics.json").read_text())["val"] is None


@pytest.mark.slow  # starts a process
def test_two_job_multirun_writes_the_summary_with_mean_and_std(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", "-m", *held_out(cifar_root), "seed=0,1", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs, (group,) = rows(tmp_path, "job"), rows(tmp_path, "mean_std")
    assert [(j["job"], j["seed"], j["status"]) for j in jobs] == [("0", "0", "ok"), ("1", "1", "ok")]
    for job in jobs:
        metrics = json.loads((tmp_path / job["job"] / "metrics.json").read_text())
        assert float(job["val_acc"]) == pytest.approx(metrics["val"]["acc"], abs=1e-6)
        assert float(job["test_acc"]) == pytest.approx(metrics["test"]["acc"], abs=1e-6)
    assert group["n"] == "2" and group["seed"] == "0 1" and "seed=" not in group["overrides"]
    for field in ("val_acc", "test_acc"):
        values = [float(j[field]) for j in jobs]
        assert float(group[field]) == pytest.approx(statistics.fmean(values), abs=1e-6)
        assert float(group[f"{field}_std"]) == pytest.approx(statistics.stdev(values), abs=1e-6)
    assert "| `(all jobs)` | 2 |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for job in jobs:  # HParams columns: what the sweep varies, not the keys every job shares
        assert tensorboard_hparams_row(tmp_path / job["job"] / "tensorboard") == {"seed": float(job["seed"])}


def fake_job(sweep_dir: Path, name: str, overrides: list[str], metrics: TrainResult | None) -> None:
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), job / ".hydra" / "overrides.yaml")
    if metrics is not None:
        RunDir(job).write_result(metrics)


def test_summary_groups_all_but_seed_and_lists_jobs_without_metrics(tmp_path: Path) -> None:
    def metrics(val: float, test: float) -> TrainResult:
        return train_result(val=HeldOutScores(val, 1.0), test=TestScores(test, 1.0, 10000), wall_time_s=10.0)

    fake_job(tmp_path, "0", ["model=a", "seed=0"], metrics(0.50, 0.40))
    fake_job(tmp_path, "1", ["model=a", "seed=1"], metrics(0.70, 0.60))
    fake_job(tmp_path, "2", ["model=b", "seed=0"], metrics(0.65, 0.55))
    fake_job(tmp_path, "10", ["model=b", "seed=1"], None)  # failed: a folder, no metrics.json
    write_summary(tmp_path)
    assert [r["job"] for r in rows(tmp_path, "job")] == ["0", "1", "2", "10"]
    a, b = rows(tmp_path, "mean_std")
    assert (a["config"], a["n"], a["val_acc"], a["val_acc_std"]) == ("model=a", "2", "0.600000", "0.141421")
    assert (b["config"], b["n"], b["val_acc"], b["val_acc_std"]) == ("model=b", "1", "0.650000", "")
    assert b["status"] == "1 of 2 jobs: no metrics.json (failed or unfinished)"
    md = (tmp_path / "summary.md").read_text()
    assert "| `model=a` | 2 | 60.00 ± 14.14 | 50.00 ± 14.14 | 10 ± 0 |" in md
    assert "Best on val: `model=b`" in md
    assert "## Jobs without metrics.json" in md and "- 10: `model=b seed=1`" in md


def optuna_search(cifar_root: Path, sweep_dir: Path, n_trials: int):
    return run_script("train.py", "-m", "hparams_search=optuna", f"hydra.sweeper.n_trials={n_trials}",
                      *held_out(cifar_root), f"hydra.sweep.dir={sweep_dir}")


@pytest.mark.slow  # starts a process
def test_optuna_searches_on_the_held_out_split_and_resumes_from_its_storage(cifar_root: Path, tmp_path: Path) -> None:
    proc = optuna_search(cifar_root, tmp_path, n_trials=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.load_study(study_name="train", storage=storage)
    # A search killed mid-trial leaves that trial running in the storage.
    space = {key: trial_dist for key, trial_dist in study.trials[0].distributions.items()}
    interrupted = study.ask(space)

    proc = optuna_search(cifar_root, tmp_path, n_trials=3)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="train", storage=storage)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.FAIL,
                                                               optuna.trial.TrialState.COMPLETE]
    rerun = study.trials[3]
    assert rerun.params == interrupted.params  # the interrupted trial's parameters, tried again
    searched = set(OmegaConf.load(CONF / "hparams_search" / "optuna.yaml").hydra.sweeper.params)
    for trial in study.trials[:2] + [rerun]:  # job N is trial N; its value is its held-out accuracy
        assert set(trial.params) == searched
        metrics = json.loads((tmp_path / str(trial.number) / "metrics.json").read_text())
        assert trial.value == metrics["val"]["acc"]
        overrides = OmegaConf.load(tmp_path / str(trial.number) / ".hydra" / "overrides.yaml")
        assert {f"{k}={v}" for k, v in trial.params.items()} <= set(overrides)
    assert [r["job"] for r in rows(tmp_path, "job")] == ["0", "1", "3"]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert best.best_value == max(t.value for t in study.trials if t.value is not None)


@pytest.mark.slow  # starts a process
def test_an_optimising_sweep_without_a_held_out_split_is_refused(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", "-m", "hparams_search=optuna", *tiny_overrides(cifar_root), "data.val_size=0",
                      f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 2
    assert "data.val_size=0 holds no images out" in proc.stderr and "set data.val_size" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep").exists()  # refused before any trial
