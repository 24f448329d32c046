"""The layout of a ``train.py`` run dir, stated once: :class:`RunDir` is the one reader and writer of its files.

A run dir (``outputs/<task>/runs/<date>_<time>_<id>/``, or a sweep's job dir ``.../multiruns/<time>/<n>/``)::

    config.yaml              the resolved config the run began with (a resume continues with it)
    .hydra/                  Hydra's record of the first start: overrides.yaml, hydra.yaml (the group choices)
    .hydra/resumed_<time>/   the same for each resumed start
    train.log                every start's log
    checkpoints/last.ckpt    what a resume continues, and (without a held-out split) the weights tested
    hpc_ckpt_<n>.ckpt        Lightning's checkpoint when SLURM pre-empts the job (a requeued job continues it)
    tensorboard/             TensorBoard events (evaluate.py adds its figures as images)
    eval/                    evaluate.py's report (predictions.npz, figures, metrics.json), unless it is told elsewhere
    MODEL_CARD.md            evaluate.py's model card of the run
    metrics.json             :class:`~cifarlab.runs.result.TrainResult`, written last and atomically: a dir without it is unfinished

Training, resume, requeue, sweeps and :class:`cifarlab.runs.run.TrainedRun` find these files through :class:`RunDir`,
and read a ``config.yaml`` or a record of group choices of an older layout through :mod:`cifarlab.runs.legacy`.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cifarlab.runs.legacy import current_choices, current_config
from cifarlab.runs.result import TrainResult

MODEL_CARD = "MODEL_CARD.md"  # evaluate.py's model card: in the run dir, or beside a report of a .ckpt outside one


@dataclass
class RunRecord:
    """What a ``train.py`` run dir records about how it was made, read by :meth:`RunDir.read_record` without its
    checkpoint; each part is None when its file is absent (a run made without Hydra, an unfinished run).

    Attributes:
        run_dir: the folder.
        config: ``config.yaml`` (:meth:`RunDir.read_config`).
        overrides: ``.hydra/overrides.yaml`` (:meth:`RunDir.read_overrides`).
        choices: ``hydra.runtime.choices`` (:meth:`RunDir.read_choices`).
        metrics: ``metrics.json``, a :class:`TrainResult`; None while the run is unfinished.
    """

    run_dir: Path
    config: dict | None
    overrides: list[str] | None
    choices: dict[str, str | None] | None
    metrics: TrainResult | None


@dataclass(frozen=True)
class RunDir:
    """The files of one run dir at ``path`` (they need not exist yet)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).expanduser())

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def hydra(self) -> Path:
        """Hydra's record of the first start (``overrides.yaml``, ``hydra.yaml``)."""
        return self.path / ".hydra"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def eval(self) -> Path:
        """Where ``evaluate.py`` writes the run's report by default, and where compare and the app look for it."""
        return self.path / "eval"

    @property
    def model_card(self) -> Path:
        return self.path / MODEL_CARD

    @property
    def held_out(self) -> Path:
        """``benchmarks/frontier.py``'s scores of the final weights on the held-out split."""
        return self.path / "held_out.json"

    def record_files(self) -> list[str]:
        """The files a committed record of this run keeps (``docs/runs/``), those that exist, relative to the run
        dir: ``metrics.json``, ``config.yaml``, ``.hydra/overrides.yaml``, ``held_out.json``, ``eval/metrics.json``."""
        files = (self.metrics, self.config, self.hydra / "overrides.yaml", self.held_out, self.eval / "metrics.json")
        return [p.relative_to(self.path).as_posix() for p in files if p.is_file()]

    @classmethod
    def jobs_under(cls, sweep_dir: Path) -> list[RunDir]:
        """The job dirs of a multirun under ``sweep_dir``: each folder holding ``.hydra/overrides.yaml``."""
        return [cls(p.parent.parent) for p in Path(sweep_dir).rglob(".hydra/overrides.yaml")]

    @staticmethod
    def hydra_subdir(resumed_at: str | None) -> str:
        """Where Hydra records a start (``hydra.output_subdir``): ``.hydra`` for the first, ``.hydra/resumed_<time>``
        for one resumed at ``resumed_at`` (``%Y-%m-%d_%H-%M-%S``), so that the first start's record stays whole."""
        return ".hydra" if resumed_at is None else f".hydra/resumed_{resumed_at}"

    @property
    def finished(self) -> bool:
        """Whether the run wrote its ``metrics.json`` (its last act)."""
        return self.metrics.is_file()

    def hpc_checkpoints(self) -> list[Path]:
        """The checkpoints Lightning's ``SLURMEnvironment`` wrote at pre-emption (``hpc_ckpt_<n>.ckpt``)."""
        return sorted(self.path.glob("hpc_ckpt_*.ckpt"))

    def requeue_checkpoint(self) -> Path | None:
        """The newest of ``hpc_ckpt_*.ckpt`` and ``checkpoints/last.ckpt``: what a requeued job continues;
        ``None`` when there is neither."""
        existing = [p for p in (*self.hpc_checkpoints(), self.last_checkpoint) if p.is_file()]
        return max(existing, key=lambda p: p.stat().st_mtime) if existing else None

    @classmethod
    def of_checkpoints_dir(cls, checkpoints: Path) -> RunDir:
        """The run dir whose ``checkpoints/`` folder is ``checkpoints``."""
        return cls(Path(checkpoints).parent)

    @classmethod
    def of_checkpoint(cls, ckpt: Path) -> RunDir | None:
        """The run dir a checkpoint file belongs to (the folder above ``checkpoints/``), or ``None``."""
        ckpt = Path(ckpt)
        return cls(ckpt.parent.parent) if ckpt.parent.name == "checkpoints" else None

    def read_result(self) -> TrainResult | None:
        """The run's :class:`TrainResult`, or ``None`` while it is unfinished.

        Raises:
            CifarlabError: see :meth:`TrainResult.from_json`.
        """
        return TrainResult.from_json(self.metrics) if self.finished else None

    def read_record(self) -> RunRecord:
        """The run's :class:`RunRecord`: its config, overrides, group choices and result.

        Raises:
            CifarlabError: a ``metrics.json`` that is damaged or of another schema.
        """
        return RunRecord(self.path, self.read_config(), self.read_overrides(), self.read_choices(), self.read_result())

    def write_result(self, result: TrainResult) -> None:
        """Write ``metrics.json``, atomically: the run's last act."""
        write_json_atomic(self.metrics, result.to_dict())

    def read_config(self) -> dict | None:
        """``config.yaml``, the resolved config, as plain dicts and lists in the current layout
        (:func:`cifarlab.runs.legacy.current_config`); None without the file."""
        return current_config(OmegaConf.to_container(OmegaConf.load(self.config))) if self.config.is_file() else None

    def write_config(self, cfg: DictConfig) -> None:
        """Write the config, resolved, as ``config.yaml`` (folders created)."""
        self.path.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, self.config, resolve=True)

    def read_overrides(self) -> list[str] | None:
        """``.hydra/overrides.yaml``: the command line's overrides of the first start (``["seed=1", ...]``);
        None without the file."""
        path = self.hydra / "overrides.yaml"
        return [str(o) for o in OmegaConf.load(path)] if path.is_file() else None

    def read_hydra(self) -> DictConfig | None:
        """The ``hydra`` node of ``.hydra/hydra.yaml`` (the first start's mode, choices, ...); None without it."""
        path = self.hydra / "hydra.yaml"
        return OmegaConf.load(path).hydra if path.is_file() else None

    def read_choices(self) -> dict[str, str | None] | None:
        """``hydra.runtime.choices`` of ``.hydra/hydra.yaml``, config group -> option (``{"model": "custom_resnet",
        "data/augmentation": "cutout8", ...}``), in the current layout (:func:`cifarlab.runs.legacy.current_choices`);
        None without the file."""
        hydra = self.read_hydra()
        return None if hydra is None else current_choices(OmegaConf.to_container(hydra.runtime.choices))

    def read_sweep(self) -> DictConfig | None:
        """The ``hydra`` node of the ``multirun.yaml`` of the sweep this run is a job of (the nearest folder above
        it that holds one); None for a single run."""
        sweep_file = next((d / "multirun.yaml" for d in self.path.parents if (d / "multirun.yaml").is_file()), None)
        return None if sweep_file is None else OmegaConf.load(sweep_file).hydra


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """The one atomic writer: ``write(tmp)`` writes a temporary file beside ``path`` (folders created), which is
    then renamed over ``path``, so a reader (or a job finishing at the same time under a parallel launcher) never
    sees half a file, and a crash leaves the old one whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` with :func:`write_atomically`."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=2) + "\n"))
