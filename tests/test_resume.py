"""resume=: which run it continues (a dir, or last), which overrides it takes, and where its log goes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from cifarlab.errors import ConfigError
from cifarlab.training.resume import (
    ALLOWED_WITH_RESUME, check_overrides, hydra_subdir_resolver, last_run, resumed_config, run_dir_resolver,
)
from conftest import CONF, ROOT, compose_train, run_script, tiny_overrides


@pytest.fixture(scope="module")
def saved() -> DictConfig:
    """What train.py saves as config.yaml, for 3 epochs on data in /data."""
    cfg = compose_train([*tiny_overrides(Path("/data")), "trainer.max_epochs=3"], Path("/run"))
    OmegaConf.resolve(cfg)
    return cfg


def fake_run(run_dir: Path, saved: DictConfig, mtime: float, finished: bool = False) -> Path:
    """A run dir with ``saved`` as config.yaml, an empty checkpoints/last.ckpt written at ``mtime``
    and, when ``finished``, a metrics.json."""
    (run_dir / "checkpoints").mkdir(parents=True)
    OmegaConf.save(saved, run_dir / "config.yaml")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    os.utime(ckpt, (mtime, mtime))
    if finished:
        (run_dir / "metrics.json").write_text("{}")
    return run_dir


def test_an_override_that_resume_would_drop_exits_naming_it_and_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as err:
        check_overrides(["resume=last", "trainer.max_epochs=5", "data.num_workers=2", "model=resnet18"], "last")
    message = str(err.value)
    assert "trainer.max_epochs=5 model=resnet18 would not apply" in message and "data.num_workers=2" not in message
    assert all(key in message for key in ALLOWED_WITH_RESUME if key != "resume")


def test_allowed_overrides_are_returned_for_the_resumed_config_and_selectors_are_not() -> None:
    overrides = ["resume=last", "experiment=cpu_quick", "trainer.devices=2", "data.root=/mnt/d",
                 "callbacks.progress_bar.refresh_rate=10", "~callbacks.progress_bar", "hydra.run.dir=x"]
    assert check_overrides(overrides, "last") == ["trainer.devices", "data.root", "callbacks.progress_bar.refresh_rate",
                                                  "callbacks.progress_bar"]


def test_last_is_the_run_checkpointed_last(tmp_path: Path, saved: DictConfig) -> None:
    runs = tmp_path / "train" / "runs"
    fake_run(runs / "b_older", saved, 1000)
    newest = fake_run(runs / "a_newer", saved, 2000)
    (runs / "c_no_checkpoint").mkdir()
    fake_run(tmp_path / "cpu_quick" / "runs" / "other_task", saved, 3000)
    assert last_run("train", tmp_path) == newest


def test_last_without_a_run_or_after_a_finished_one_says_so(tmp_path: Path, saved: DictConfig) -> None:
    with pytest.raises(ConfigError, match="resume=last: no run of task 'train' has a checkpoint"):
        last_run("train", tmp_path)
    fake_run(tmp_path / "train" / "runs" / "done", saved, 1000, finished=True)
    with pytest.raises(ConfigError, match="finished .*nothing to continue"):
        last_run("train", tmp_path)


def test_resumed_config_is_the_saved_one_with_the_allowed_overrides_applied(tmp_path: Path, saved: DictConfig) -> None:
    run_dir = fake_run(tmp_path / "train" / "runs" / "r", saved, 1000)
    given = ["resume=last", "data.num_workers=3"]
    cfg = compose_train(given)
    with pytest.raises(ConfigError, match="trainer.max_epochs=9 would not apply"):
        resumed_config(cfg, [*given, "trainer.max_epochs=9"], outputs=tmp_path)
    resumed, ckpt = resumed_config(cfg, given, outputs=tmp_path)
    assert ckpt == run_dir / "checkpoints" / "last.ckpt"
    assert resumed.trainer.max_epochs == 3 and resumed.data.num_workers == 3 and resumed.data.root == "/data"
    assert resumed.resume == resumed.paths.output_dir == str(run_dir.resolve())
    as_saved, _ = resumed_config(cfg, None, outputs=tmp_path)  # without a command line (a test of training)
    assert as_saved.data.num_workers == 0


def test_an_experiment_of_another_task_than_the_resumed_run_is_refused(tmp_path: Path, saved: DictConfig) -> None:
    run_dir = fake_run(tmp_path / "r", saved, 1000)
    given = [f"resume={run_dir}", "experiment=cpu_quick"]
    with pytest.raises(ConfigError, match="is a run of task 'train', but the command line asks for task 'cpu_quick'"):
        resumed_config(compose_train(given), given, outputs=tmp_path)


def test_a_resumed_process_logs_into_the_resumed_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         saved: DictConfig) -> None:
    run_dir = fake_run(tmp_path / "outputs" / "train" / "runs" / "r", saved, 1000)
    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        hydra = compose(config_name="train", overrides=["resume=last"], return_hydra_config=True).hydra
        assert hydra.run.dir == str(run_dir.resolve())
        assert hydra.output_subdir.startswith(".hydra/resumed_")  # the first start's .hydra/ stays as it was
        fresh = compose(config_name="train", overrides=[], return_hydra_config=True).hydra
        assert fresh.run.dir.startswith("outputs/train/runs/") and fresh.output_subdir == ".hydra"


def test_a_resume_that_names_no_run_leaves_the_log_in_a_new_dir(tmp_path: Path, saved: DictConfig) -> None:
    run_dir = fake_run(tmp_path / "r", saved, 1000)
    assert run_dir_resolver(str(run_dir), "train", "outputs/new") == str(run_dir.resolve())
    assert run_dir_resolver(None, "train", "outputs/new") == "outputs/new"
    assert run_dir_resolver("/nowhere/run", "train", "outputs/new") == "outputs/new"  # training then says why
    assert hydra_subdir_resolver("/nowhere/run", "train") == ".hydra"


@pytest.mark.slow  # trains, then starts processes
def test_resume_last_continues_the_newest_run_in_its_dir(cifar_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped after the first of its 2 epochs is continued by ``resume=last`` started in the
    working dir above its ``outputs/``: in the same run dir, with train.log there, and no new run dir."""
    from ddp_probe import Preempted

    from cifarlab.training.pipeline import train

    run_dir = tmp_path / "outputs" / "train" / "runs" / "first"
    with pytest.raises(Preempted):
        train(compose_train([*tiny_overrides(cifar_root), "data.subset=80", "trainer.max_epochs=2", "model.tta=none",
                           "trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null",
                           "+callbacks.preempt._target_=ddp_probe.PreemptAt", "+callbacks.preempt.epoch=1"], run_dir))
    saved = OmegaConf.load(run_dir / "config.yaml")
    del saved.callbacks["preempt"]  # the stand-in for a kill stays behind
    OmegaConf.save(saved, run_dir / "config.yaml")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p))

    refused = run_script("train.py", "resume=last", "trainer.max_epochs=5", cwd=tmp_path)
    assert refused.returncode == 2 and "trainer.max_epochs=5 would not apply" in refused.stderr, refused.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()

    resumed = run_script("train.py", "resume=last", "data.num_workers=0", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed"] and metrics["epochs"] == 2 and metrics["global_step"] == 8
    assert "resume=last data.num_workers=0" in metrics["provenance"]["command"]
    assert (run_dir / "train.log").stat().st_size > 0
    assert [p.name for p in (tmp_path / "outputs" / "train" / "runs").iterdir()] == ["first"]


def test_a_run_written_before_the_model_node_held_the_module_resumes_in_the_current_layout(tmp_path: Path) -> None:
    previous = Path(__file__).resolve().parent / "fixtures" / "airbench_1fa7fc9"  # config.yaml with top-level optimizer
    given = [f"resume={previous}"]
    resumed, ckpt = resumed_config(compose_train(given), given, outputs=tmp_path)
    assert ckpt == previous / "checkpoints" / "last.ckpt"
    assert resumed.model._target_ == "cifarlab.module.ImageClassifier" and resumed.model.net.widths == [8, 16, 16]
    assert resumed.model.scheduler.max_lr == 0.75 and resumed.model.loss.label_smoothing == 0.2
    assert "optimizer" not in resumed and "tta" not in resumed
    # written in another folder: its paths follow the run dir
    assert resumed.paths.output_dir == str(previous) and resumed.callbacks.model_checkpoint.dirpath == str(previous / "checkpoints")


@pytest.mark.slow  # tests a checkpoint through trainer.fit and trainer.test
def test_a_run_written_before_the_model_node_held_the_module_continues_with_the_same_weights(
        cifar_root: Path, tmp_path: Path) -> None:
    """The fixture run (2 finished epochs) resumed by today's code: its config read in the current layout,
    its checkpoint (statistics as hyperparameters, no normalisation buffers) restored, and the test
    repeated on the same data gives the accuracy and loss its own test recorded."""
    import shutil

    from cifarlab.training.pipeline import train

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).resolve().parent / "fixtures" / "airbench_1fa7fc9", run_dir)
    recorded = json.loads((run_dir / "metrics.json").read_text())
    given = [f"resume={run_dir}", f"data.root={cifar_root}"]
    result = train(compose_train(given), overrides=given)
    assert result.resumed and result.global_step == recorded["global_step"] == 8
    assert result.test.acc == recorded["test"]["acc"]
    assert result.test.loss == pytest.approx(recorded["test"]["loss"], abs=1e-5)
