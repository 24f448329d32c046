"""metrics.json's provenance: git commit and dirty flag, library versions, device, command line."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cifarlab.runs import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
KEYS = {"git_sha", "git_dirty", "versions", "device_name", "command"}
VERSIONS = {"python", "torch", "lightning", "torchmetrics", "hydra", "omegaconf", "albumentations", "numpy"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one commit of ``code.py``."""
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_every_field_is_present_with_its_type() -> None:
    record = provenance.collect(on_cuda=False, overrides=["seed=1"], argv=["train.py", "seed=1"])
    assert set(record) == KEYS
    assert set(record["versions"]) == VERSIONS and all(isinstance(v, str) for v in record["versions"].values())
    assert record["versions"]["torch"].split("+")[0] == __import__("torch").__version__.split("+")[0]
    assert isinstance(record["device_name"], str) and record["device_name"]
    assert record["command"] == "train.py seed=1"
    json.dumps(record)  # metrics.json can hold it


def test_the_command_is_shell_quoted_and_a_sweep_job_adds_its_own_overrides() -> None:
    assert provenance.command_line(["train.py", "model.note=a b"]) == "train.py 'model.note=a b'"
    assert provenance.command_line(["train.py", "-m", "seed=0,1"], ["seed=1"]) == "train.py -m seed=0,1 # overrides: seed=1"
    assert provenance.command_line(["train.py", "seed=1", "hydra.run.dir=x"], ["seed=1"]) == "train.py seed=1 hydra.run.dir=x"


@pytest.mark.slow  # starts git
@needs_git
def test_a_clean_tree_is_clean_and_an_edit_makes_it_dirty(repo: Path) -> None:
    sha, dirty = provenance.git_state(repo)
    assert len(sha) == 40 and dirty is False
    (repo / "code.py").write_text("x = 2\n")
    assert provenance.git_state(repo) == (sha, True)


@pytest.mark.slow  # starts git
@needs_git
def test_an_untracked_file_makes_the_tree_dirty(repo: Path) -> None:
    (repo / "new_experiment.yaml").write_text("seed: 1\n")
    assert provenance.git_state(repo)[1] is True


def test_outside_a_git_repository_both_are_null(tmp_path: Path) -> None:
    assert provenance.git_state(tmp_path) == (None, None)


def test_trained_run_records_its_provenance(trained_run: Path) -> None:
    record = json.loads((trained_run / "metrics.json").read_text())["provenance"]
    assert set(record) == KEYS and set(record["versions"]) == VERSIONS
    assert record["device_name"] == provenance.device_name(on_cuda=False)


@pytest.mark.slow  # starts git
@needs_git
def test_the_commit_is_the_one_read_at_the_start_not_one_made_while_the_run_trains(repo: Path) -> None:
    at_start = provenance.git_state(repo)
    (repo / "code.py").write_text("x = 3\n")
    git(repo, "commit", "-q", "-am", "second, while training")
    record = provenance.collect(on_cuda=False, argv=["train.py"], repo=repo, code=at_start)
    assert (record["git_sha"], record["git_dirty"]) == at_start != provenance.git_state(repo)
