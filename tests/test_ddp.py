"""DDP on CPU (gloo, 2 processes), multirun + DDP, and the SLURM launcher's sbatch script.

The end-to-end tests run ``train.py`` as a user would, because Lightning starts the second rank by
running the script again. ``ddp_probe.RankProbe`` (test-only, added with ``+callbacks.probe``) records
what each rank saw. Their training data is arranged so that both ranks' first batches hold the same
images (:func:`paired_cifar`): any difference between them is augmentation.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from omegaconf import OmegaConf, open_dict

from cifarlab.config.resolvers import devices_per_node
from cifarlab.data import CIFAR10DataModule
from cifarlab.data.sampling import EpochOrder
from cifarlab.training.distributed import LAUNCHER_ENV, ddp_job, rank_command, requeued_checkpoint
from cifarlab.runs.rundir import RunDir
from cifarlab.errors import ConfigError
from cifarlab.runs.run import TrainedRun
from conftest import CONF, ROOT, compose_train, make_images, run_script, tiny_overrides, write_cifar

SEED = 7
TRAIN_IMAGES = 200
PROBE = "+callbacks.probe._target_=ddp_probe.RankProbe"


def paired_cifar(folder: Path) -> Path:
    """The fixture's layout with 200 training images (20 per class) and 100 test images, the training
    images arranged so that position 2k + 1 of epoch 0's order (``seed=SEED``) repeats position 2k
    (image and label): under 2-process DDP, rank 1's share of that epoch holds the same images as
    rank 0's, in the same order."""
    write_cifar(folder)
    order = EpochOrder(TRAIN_IMAGES, shuffle=True, seed=SEED).indices(torch.device("cpu")).numpy()
    pair_labels = np.arange(TRAIN_IMAGES // 2) % 10
    pair_images = make_images(pair_labels, np.random.default_rng(1))
    data = np.empty((TRAIN_IMAGES, pair_images.shape[1]), np.uint8)
    labels = np.empty(TRAIN_IMAGES, np.int64)
    for positions in (order[0::2], order[1::2]):
        data[positions], labels[positions] = pair_images, pair_labels
    batches, per_batch = folder / "cifar-10-batches-py", TRAIN_IMAGES // 5
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        entry = {"batch_label": f"data_batch_{i + 1}", "labels": labels[part].tolist(), "data": data[part],
                 "filenames": [f"{j}.png" for j in range(per_batch)]}
        (batches / f"data_batch_{i + 1}").write_bytes(pickle.dumps(entry))
    return folder


@pytest.fixture(scope="module")
def paired_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return paired_cifar(tmp_path_factory.mktemp("paired_cifar"))


def ddp_overrides(root: Path) -> list[str]:
    """tiny_overrides on 2 CPU processes through the ddp preset."""
    return [o for o in tiny_overrides(root) if o != "trainer=cpu"] + [
        "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data/augmentation=flip_crop", "model.tta=none", PROBE]


@pytest.fixture
def probe_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tests/`` (ddp_probe) and ``src/`` on the PYTHONPATH of the processes a test starts."""
    paths = [str(ROOT / "tests"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def probes(run_dir: Path) -> list[dict]:
    return [json.loads((run_dir / "probe" / f"rank{r}.json").read_text()) for r in range(2)]


def assert_complete_run(run_dir: Path) -> dict:
    """One job's run dir, written by rank 0 (and rank 1's log): the metrics of 100 test images."""
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [".hydra", "checkpoints", "config.yaml", "metrics.json", "probe", "tensorboard", "train.log",
                     "train_rank1.log"], names
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["output_dir"] == str(run_dir)
    assert metrics["test"]["images"] == 100
    ranks = probes(run_dir)
    assert [p["world_size"] for p in ranks] == [2, 2]
    assert sum(p["test_images"] for p in ranks) == 100 and all(p["test_images"] == 50 for p in ranks)
    return metrics


def assert_ranks_augmented_differently(run_dir: Path) -> None:
    first = [p["first_batch"] for p in probes(run_dir)]
    assert first[0]["labels"] == first[1]["labels"], "the paired data should give both ranks the same images"
    assert first[0]["pixels_sha256"] != first[1]["pixels_sha256"], "both ranks drew the same augmentations"


# ---------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_ddp_on_two_processes_writes_one_run_and_counts_each_test_image_once(
        paired_root: Path, tmp_path: Path, probe_on_path: None) -> None:
    result = run_script("train.py", *ddp_overrides(paired_root), f"seed={SEED}", "trainer.max_epochs=2",
                        "model.scheduler.max_lr=0.005", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs  # rank 1 wrote into rank 0's run dir, not a new one
    run_dir = runs[0]
    metrics = assert_complete_run(run_dir)
    assert metrics["global_step"] == 2 * TRAIN_IMAGES // (2 * 20)  # each rank a half share, in steps of 20
    assert_ranks_augmented_differently(run_dir)
    assert not (tmp_path / "outputs" / "train" / "multiruns").exists()

    tested = TrainedRun(run_dir, precision="32-true", device="cpu")  # evaluate.py's path, one process, train's tested checkpoint
    images, labels = tested.test_set()
    accuracy = (tested.predict(images, batch_size=100).argmax(1).numpy() == labels).mean()
    assert accuracy == pytest.approx(metrics["test"]["acc"], abs=1e-6)
    assert 0.0 < accuracy < 1.0, accuracy


@pytest.mark.slow
def test_multirun_with_ddp_gives_each_job_its_own_complete_run(paired_root: Path, tmp_path: Path,
                                                               probe_on_path: None) -> None:
    """The basic launcher runs both jobs in one process: the second job must start its own rank 1
    (lightning-hydra-template #393: ranks that re-run the whole sweep into dirs of their own)."""
    result = run_script("train.py", "-m", *ddp_overrides(paired_root), f"seed={SEED}", "trainer.max_epochs=1",
                        "data.augment_on=device", "trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null",
                        "model.loss.label_smoothing=0.0,0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    assert sorted(p.name for p in sweeps[0].iterdir()) == ["0", "1", "multirun.yaml", "summary.csv", "summary.md",
                                                          "summary.png"]
    smoothing = []
    for job in ("0", "1"):
        metrics = assert_complete_run(sweeps[0] / job)
        assert metrics["augment_on"] == "device"
        assert_ranks_augmented_differently(sweeps[0] / job)
        smoothing.append(OmegaConf.load(sweeps[0] / job / "config.yaml").model.loss.label_smoothing)
    assert smoothing == [0.0, 0.1]
    assert not (tmp_path / "outputs" / "train" / "runs").exists()


@pytest.mark.slow
def test_multirun_with_ddp_through_the_local_submitit_launcher(paired_root: Path, tmp_path: Path,
                                                               probe_on_path: None) -> None:
    result = run_script("train.py", "-m", "hydra/launcher=local", *ddp_overrides(paired_root), "trainer.max_epochs=1",
                        "data.subset=80", "trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null",
                        f"seed={SEED},{SEED + 1}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "outputs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    sweep = sweeps[0]
    assert {"0", "1", "multirun.yaml", ".submitit"} <= {p.name for p in sweep.iterdir()}
    seeds = [assert_complete_run(sweep / job)["seed"] for job in ("0", "1")]
    assert seeds == [SEED, SEED + 1]
    assert len(list((sweep / ".submitit").glob("*/*_0_log.out"))) == 2  # one submitit job per sweep job


# ------------------------------------------------------------------------------------------- SLURM
def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="train"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def test_slurm_launcher_renders_the_sbatch_script_lightning_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sbatch script hydra-submitit-launcher would submit, rendered by submitit itself (its
    executor refuses to start without an ``srun`` on the PATH; a stub stands in, never run)."""
    import submitit

    lightning_slurm = SLURMEnvironment()  # before the stub srun is on the PATH (Lightning would warn about it)
    srun = tmp_path / "bin" / "srun"
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}{os.pathsep}{os.environ['PATH']}")
    scripts: list[str] = []

    def render_instead_of_submitting(executor, fn, *iterables):
        slurm = executor._executor
        slurm.parameters["map_count"] = len(iterables[0])
        scripts.append(slurm._make_submission_file_text(slurm._submitit_command_str, "test"))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", render_instead_of_submitting)
    cfg = compose_with_hydra(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                              "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=main_stub, config=cfg)
    launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)

    lines = set(scripts[0].splitlines())
    expected = ["#SBATCH --nodes=2", "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --partition=gpu",
                "#SBATCH --signal=USR1@90", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --time=240", "#SBATCH --job-name=train",
                "#SBATCH --array=0-1%2"]
    assert [line for line in expected if line not in lines] == [], scripts[0]
    assert sum(line.startswith("#SBATCH --signal") for line in lines) == 1
    assert any(line.startswith("srun ") and "submitit.core._submit" in line for line in lines)
    # the signal SLURM sends is the one Lightning's SLURMEnvironment (auto-detected, so with its defaults) requeues on
    assert lightning_slurm.auto_requeue and lightning_slurm.requeue_signal == signal.SIGUSR1
    assert cfg.trainer.sync_batchnorm is True


def main_stub(cfg) -> None:  # the task function a launcher needs; never called here
    raise AssertionError("not submitted")


def test_launchers_need_a_number_of_devices() -> None:
    assert devices_per_node(4) == 4 and devices_per_node([0, 1]) == 2
    for value in ("auto", -1, 0):
        with pytest.raises(ConfigError, match="trainer.devices=4"):
            devices_per_node(value)
    cfg = compose_with_hydra(["hydra/launcher=local", "trainer=ddp"])  # devices: auto
    with pytest.raises(Exception, match="does not say how many devices"):
        OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    local = compose_with_hydra(["hydra/launcher=local", "trainer=ddp", "trainer.devices=2"]).hydra.launcher
    assert (local.gpus_per_node, local.tasks_per_node) == (2, 1)  # Lightning starts the other rank itself


def test_sync_batchnorm_only_on_gpus() -> None:
    assert compose_train(["trainer=ddp", "trainer.accelerator=cpu"]).trainer.sync_batchnorm is False
    assert compose_train(["trainer=ddp"]).trainer.sync_batchnorm is True
    assert compose_train(["trainer=ddp", "trainer.accelerator=cpu"]).trainer.use_distributed_sampler is False


def test_a_requeued_job_continues_from_its_newest_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(b"")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert requeued_checkpoint(RunDir(tmp_path)) is None  # a first start never resumes
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert requeued_checkpoint(RunDir(tmp_path)) == str(last)
    hpc = tmp_path / "hpc_ckpt_1.ckpt"  # Lightning's, written on the preemption signal
    hpc.write_bytes(b"")
    os.utime(last, (1, 1))
    assert requeued_checkpoint(RunDir(tmp_path)) == str(hpc)
    assert requeued_checkpoint(RunDir(tmp_path / "elsewhere")) is None


@pytest.mark.slow
def test_requeued_run_resumes_in_its_run_dir(cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddp_probe import Preempted

    from cifarlab.training.pipeline import train

    overrides = tiny_overrides(cifar_root) + ["data.subset=60", "data/augmentation=none", "trainer.max_epochs=2", "model.tta=none",
                                              "trainer.limit_val_batches=0", "callbacks.model_checkpoint.monitor=null"]
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    with pytest.raises(Preempted):
        train(compose_train(overrides + ["+callbacks.preempt._target_=ddp_probe.PreemptAt", "+callbacks.preempt.epoch=1"],
                          tmp_path))
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "metrics.json").exists()
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # the same job again, in the same run dir
    results = train(compose_train(overrides, tmp_path))
    assert results.global_step == 6 and len(results.epoch_images_per_s) == 1  # only the second epoch ran


# --------------------------------------------------------------------------------- units of the above
def test_training_shares_are_equal_and_evaluation_shares_partition_the_split() -> None:
    for size in (10, 11, 13):
        train = [EpochOrder(size, True, seed=3, rank=r, world_size=3, equal_shares=True) for r in range(3)]
        drawn = [list(order) for order in train]
        assert {len(d) for d in drawn} == {size // 3} and len(set(sum(drawn, []))) == 3 * (size // 3)
        evaluation = [list(EpochOrder(size, False, seed=0, rank=r, world_size=3)) for r in range(3)]
        assert sorted(sum(evaluation, [])) == list(range(size))  # each image once, no padding


class FakeTrainer:
    """What the data module reads of a trainer under DDP."""

    training = False  # not inside trainer.fit: no batches of the epoch done

    def __init__(self, rank: int, world_size: int = 2) -> None:
        self.global_rank, self.world_size = rank, world_size
        self.strategy = type("Strategy", (), {"root_device": torch.device("cpu")})()


@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_each_rank_augments_from_its_own_stream(cifar_root: Path, augment_on: str) -> None:
    def first_batch(rank: int) -> torch.Tensor:
        dm = CIFAR10DataModule(root=str(cifar_root), batch_size=8, num_workers=0, download=False, seed=0,
                               augment_on=augment_on, train_transforms=[
                                   {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
                                   {"_target_": "albumentations.CoarseDropout", "num_holes_range": [1, 1],
                                    "hole_height_range": [8, 8], "hole_width_range": [8, 8], "fill": 0, "p": 1.0}])
        dm.setup("fit")  # before the trainer is attached: every rank looks like rank 0 here
        dm.trainer = FakeTrainer(rank)
        dm.train_set.images[:] = dm.train_set.images[0]  # one image everywhere: differences are augmentation
        return next(iter(dm.train_dataloader()))[0]

    assert not torch.equal(first_batch(0), first_batch(1))
    assert torch.equal(first_batch(1), first_batch(1))


def test_ddp_job_leaves_no_launcher_state_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    with ddp_job(ROOT / "train.py"):
        os.environ.update(LOCAL_RANK="0", WORLD_SIZE="2", MASTER_PORT="12345", OMP_NUM_THREADS="1")
        torch.set_num_threads(1)
    assert not any(name in os.environ for name in LAUNCHER_ENV)
    assert torch.get_num_threads() == threads


def test_rank_command_reruns_one_job_not_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_with_hydra(["seed=1", "trainer=ddp"])
    with open_dict(cfg):
        cfg.hydra.overrides.hydra = ["hydra.mode=MULTIRUN", "hydra/launcher=local", "hydra.sweep.dir=/sweeps/x",
                                     "hydra.verbose=true"]
        cfg.hydra.runtime.output_dir = str(tmp_path / "sweep" / "3")
        cfg.hydra.runtime.cwd = str(tmp_path)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", cfg)
    command, cwd = rank_command(ROOT / "train.py", 1)
    assert command[1:] == [str(ROOT / "train.py"), "--config-name=train", "hydra.verbose=true", "seed=1", "trainer=ddp",
                           f'hydra.run.dir="{tmp_path / "sweep" / "3"}"', "hydra.output_subdir=null",
                           "hydra.job.name=train_rank1"]
    assert cwd == str(tmp_path)
