"""The layout of a ``train.py`` run dir, stated once, and the run's typed result (``metrics.json``).

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
    metrics.json             :class:`TrainResult`, written last and atomically: a dir without it is unfinished

Training, resume, requeue, sweeps and :class:`cifarlab.run.TrainedRun` find these files through :class:`RunDir`,
and read a ``config.yaml`` or a record of group choices of an older layout through :mod:`cifarlab.legacy`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

from cifarlab.errors import CifarlabError

TRAIN_SCHEMA = "cifarlab.train/1"


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
        return self.path / "MODEL_CARD.md"

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


@dataclass
class TestScores:
    """The tested weights on the test set, once: accuracies as fractions in [0, 1]."""

    __test__ = False  # a result, not a pytest test class

    acc: float
    loss: float  # mean cross-entropy over the test images
    images: int
    tta: str = "none"  # none | flip | flip_translate
    acc_tta: float | None = None  # None with tta=none


@dataclass
class HeldOutScores:
    """The tested weights on the held-out validation split (``data.val_size`` training images)."""

    acc: float
    loss: float


@dataclass
class TestedCheckpoint:
    """Which weights were tested."""

    __test__ = False  # a result, not a pytest test class
    which: str  # last | best | in_memory
    path: str | None  # relative to the run dir; None for the weights in memory (fast_dev_run)


@dataclass
class TrainResult:
    """What ``train.py`` measured, as ``metrics.json`` holds it (schema ``cifarlab.train/1``; the
    README's "Outputs" lists every field). Seconds are wall-clock seconds, throughput images/s,
    accuracies fractions in [0, 1].

    ``train_seconds`` is the time-budgeted or step-counted training alone (Throughput callback: from the
    first training batch to the last, device synchronised, without compile or warm-up, which are
    ``compile_seconds``); ``fit_seconds`` all of ``trainer.fit``; ``test_seconds`` the held-out and test
    passes; ``wall_time_s`` the whole of ``train`` (data loading included).
    """

    model: str
    dataset: str
    seed: int | None
    test: TestScores | None
    val: HeldOutScores | None
    tested_checkpoint: TestedCheckpoint
    validation: str  # none | test_set | held_out: what per-epoch validation ran on
    val_size: int
    resumed: bool
    epochs: int
    global_step: int
    train_images: int
    world_size: int  # processes (devices x nodes); images_per_s counts all of them
    images_per_s: float
    train_seconds: float
    compile_seconds: float
    fit_seconds: float
    test_seconds: float
    wall_time_s: float
    augment_on: str
    precision: str
    accelerator: str
    output_dir: str
    data: dict = field(default_factory=dict)  # root, mean, std (pixel/255), checksum
    provenance: dict = field(default_factory=dict)  # cifarlab.provenance.collect
    epoch_images_per_s: list[float] = field(default_factory=list)
    norm: str | None = None
    max_lr: float | None = None
    lr_find: dict | None = None  # suggested_lr, applied, steps_run
    budget: dict | None = None  # cifarlab.budget.Plan.to_dict: the candidates, their predictions, the chosen one
    schema: str = TRAIN_SCHEMA

    def to_dict(self) -> dict:
        """Plain dicts and lists, as ``metrics.json`` holds them (``schema`` first)."""
        payload = dataclasses.asdict(self)
        return {"schema": payload.pop("schema"), **payload}

    def write(self, path: Path) -> None:
        """Write ``metrics.json`` to ``path``, atomically (:func:`write_json_atomic`)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, payload: dict, source: str = "metrics.json") -> TrainResult:
        """A result from ``metrics.json``'s contents; fields a run of an older release lacks take their
        defaults, fields this release does not know are ignored.

        Raises:
            CifarlabError: another schema, or a required field missing (``source`` names the file).
        """
        if payload.get("schema") != TRAIN_SCHEMA:
            raise CifarlabError(f"{source} has schema {payload.get('schema')!r}, not {TRAIN_SCHEMA}: it was not "
                                "written by this release's train.py")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in payload.items() if k in known}
        nested = {"test": TestScores, "val": HeldOutScores, "tested_checkpoint": TestedCheckpoint}
        for key, kind in nested.items():
            if values.get(key) is not None:
                values[key] = kind(**values[key])
        try:
            return cls(**values)
        except TypeError as err:  # a required field missing
            raise CifarlabError(f"{source} is incomplete ({err}): the run's metrics.json was edited or cut short") from err

    @classmethod
    def from_json(cls, path: Path) -> TrainResult:
        """Read ``metrics.json`` at ``path``.

        Raises:
            CifarlabError: not JSON, or see :meth:`from_dict`.
        """
        try:
            payload = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise CifarlabError(f"{path} is not JSON ({err}): the run's metrics.json is damaged") from err
        return cls.from_dict(payload, str(path))
