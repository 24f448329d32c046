"""Where a run's numbers came from: the code's git commit and dirty flag, the library versions, the
device and the command line. ``train.py`` writes it as ``metrics.json``'s ``provenance`` (airbench
logs its own source beside its accuracies for the same reason: a number without the code that made it
cannot be reproduced)."""
from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from cifarlab.training.precision import cpu_name

# metrics.json's provenance.versions: key -> the distribution it is read from
DISTRIBUTIONS = {"torch": "torch", "lightning": "lightning", "torchmetrics": "torchmetrics", "hydra": "hydra-core",
                 "omegaconf": "omegaconf", "albumentations": "albumentations", "numpy": "numpy"}
CODE_DIR = Path(__file__).resolve().parents[1]  # the package's folder: inside the checkout for an editable install


def git(repo: Path, *args: str) -> str | None:
    """``git -C repo args``'s stdout, or ``None`` when git is missing, ``repo`` is in no repository, or git fails."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(repo: Path = CODE_DIR) -> tuple[str | None, bool | None]:
    """(commit SHA of ``HEAD``, whether the work tree differs from it) of the repository holding ``repo``.

    Dirty means a tracked file is modified or staged, or an untracked file that ``.gitignore`` does not
    exclude exists (a new config under ``conf/`` changes what a run does as much as an edit).
    ``(None, None)`` outside a git repository or without git.
    """
    sha = git(repo, "rev-parse", "HEAD")
    if sha is None:
        return None, None
    status = git(repo, "status", "--porcelain")
    return sha.strip(), None if status is None else bool(status.strip())


def library_versions() -> dict[str, str | None]:
    """``{"python", "torch", "lightning", "torchmetrics", "hydra", "omegaconf", "albumentations", "numpy"}``:
    installed version strings (``None`` for a package that is not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, distribution in DISTRIBUTIONS.items():
        try:
            versions[key] = version(distribution)
        except PackageNotFoundError:
            versions[key] = None
    return versions


def device_name(on_cuda: bool) -> str:
    """The CUDA device's name (``torch.cuda.get_device_name``) when ``on_cuda``, else the CPU's
    (:func:`cifarlab.training.precision.cpu_name`: model, family, stepping and bf16 instructions)."""
    return torch.cuda.get_device_name() if on_cuda else cpu_name()


def command_line(argv: list[str], overrides: list[str] | None = None) -> str:
    """``argv`` as one shell-quoted line; when some of Hydra's job ``overrides`` are not among the arguments
    (a multirun job, whose ``seed=0,1,2`` became ``seed=1``), they all follow as a shell comment:
    ``train.py -m seed=0,1 # overrides: seed=1``."""
    line = shlex.join(argv)
    if overrides and not set(overrides) <= set(argv[1:]):
        line += f" # overrides: {shlex.join(overrides)}"
    return line


def collect(on_cuda: bool, overrides: list[str] | None = None, argv: list[str] | None = None,
            repo: Path = CODE_DIR, code: tuple[str | None, bool | None] | None = None) -> dict:
    """The ``provenance`` of ``metrics.json``: ``{"git_sha": str | None, "git_dirty": bool | None,
    "versions": {...}, "device_name": str, "command": str}`` (see :func:`git_state`,
    :func:`library_versions`, :func:`device_name`, :func:`command_line`; ``argv`` defaults to ``sys.argv``).
    ``code``: the :func:`git_state` read when the run started (the code it imported; a commit made while
    it trains is not its code); None reads it now."""
    sha, dirty = git_state(repo) if code is None else code
    return {"git_sha": sha, "git_dirty": dirty, "versions": library_versions(), "device_name": device_name(on_cuda),
            "command": command_line(sys.argv if argv is None else argv, overrides)}
