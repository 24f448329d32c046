"""The design card's commands, as a user types them: ``python train.py model=resnet18 trainer.max_epochs=20``,
the ``model``, ``optimizer``, ``scheduler``, ``data`` and ``trainer`` groups, ``--help``; the records of the
earlier group layouts; and the package installed from its wheel, run from an empty folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hydra.utils import instantiate

from cifarlab.runs.legacy import current_choices
from conftest import ROOT, compose_train, run_script, tiny_overrides

CARD = ["model=resnet18", "trainer.max_epochs=20"]


def parameters(cfg) -> int:
    return sum(p.numel() for p in instantiate(cfg.model.net).parameters())


def test_the_card_command_composes_resnet18_for_20_epochs() -> None:
    cfg = compose_train(CARD)
    assert cfg.model.net._target_ == "cifarlab.models.ResNet18" and cfg.trainer.max_epochs == 20
    assert cfg.model._target_ == "cifarlab.module.ImageClassifier"
    assert parameters(cfg) == 11_173_962


@pytest.mark.parametrize("overrides,key,target", [
    (["optimizer=sgd"], "optimizer", "torch.optim.SGD"),
    (["optimizer=adam"], "optimizer", "torch.optim.Adam"),
    (["scheduler=time_budget"], "scheduler", "cifarlab.training.schedules.TimeBudgetOneCycle"),
    (["scheduler=onecycle"], "scheduler", "torch.optim.lr_scheduler.OneCycleLR"),
    (["model=airbench"], "net", "cifarlab.models.AirbenchNet"),
    (["data=cifar10", "trainer=cpu"], "net", "cifarlab.models.CustomResNet"),
])
def test_each_group_of_the_card_fills_its_part_of_the_module(overrides: list[str], key: str, target: str) -> None:
    assert compose_train(overrides).model[key]._target_ == target


def test_model_custom_resnet_is_pages_resnet9_with_its_parameter_count() -> None:
    assert parameters(compose_train(["model=custom_resnet", "optimizer=sgd"])) == 6_573_120


def test_the_nested_spelling_of_the_groups_is_refused_with_hydras_message() -> None:
    with pytest.raises(Exception, match="Could not override 'model/net'"):
        compose_train(["model/net=resnet18"])


def test_choices_of_both_earlier_layouts_read_in_the_card_spelling() -> None:
    nested = {"model": "classifier", "model/net": "airbench", "model/optimizer": "sgd", "model/scheduler": "time_budget",
              "data": "cifar10", "data/augmentation": "airbench"}
    oldest = {"model": "airbench", "optimizer": "sgd", "scheduler": "time_budget", "data": "cifar10",
              "data/augmentation": "airbench"}
    assert current_choices(nested) == current_choices(oldest) == oldest


@pytest.mark.slow  # starts a process
def test_help_lists_the_groups_and_their_options() -> None:
    proc = run_script("train.py", "--help")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "model: airbench, custom_resnet, resnet18" in lines and "optimizer: adam, sgd" in lines
    assert "scheduler: onecycle, time_budget" in lines and any(line.startswith("experiment: cpu_airbench") for line in lines)
    assert "cifarlab-train model=resnet18 trainer.max_epochs=20" in proc.stdout


@pytest.mark.slow  # trains resnet18 in a process
def test_the_card_command_trains_resnet18_end_to_end(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("train.py", *CARD, *tiny_overrides(cifar_root), "trainer.limit_train_batches=1",
                      "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["model"] == "ResNet18" and metrics["epochs"] == 20 and metrics["global_step"] == 20


@pytest.mark.slow  # builds a wheel and starts processes
def test_the_wheel_installs_commands_that_run_from_any_folder(tmp_path: Path) -> None:
    """The wheel, installed with no network into a new venv that sees this environment's dependencies (but not
    its editable cifarlab), gives ``cifarlab-train``, which composes the packaged configs from an empty folder."""
    source = tmp_path / "source"  # a copy: setuptools builds in the source tree's build/
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "NOTICE.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("cifarlab-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = subprocess.run([python, "-c", "import cifarlab; print(cifarlab.__file__)"], cwd=empty,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(site), where
    proc = subprocess.run([venv / "bin" / "cifarlab-train", "model=resnet18", "--cfg", "job"], cwd=empty,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "_target_: cifarlab.models.ResNet18" in proc.stdout and "warn" not in proc.stderr.lower()
    for command in ("evaluate", "predict", "export", "compare", "app", "data-figures"):
        assert (venv / "bin" / f"cifarlab-{command}").is_file()
    assert list(empty.iterdir()) == []
