"""``metrics.json`` of a ``train.py`` run, typed: :class:`TrainResult` (schema ``cifarlab.train/1``) with its test and
held-out scores and the checkpoint tested, which :class:`cifarlab.runs.rundir.RunDir` reads and writes; and that of an
``evaluate.py`` report, :class:`EvalResult` (schema ``cifarlab.eval/3``), also a read-only mapping of its JSON, so code
that reads a saved report and code that holds the result read it the same way."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifarlab.errors import CifarlabError, DataError

TRAIN_SCHEMA = "cifarlab.train/1"
EVAL_SCHEMA = "cifarlab.eval/3"


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
    provenance: dict = field(default_factory=dict)  # cifarlab.runs.provenance.collect
    epoch_images_per_s: list[float] = field(default_factory=list)
    norm: str | None = None
    max_lr: float | None = None
    lr_find: dict | None = None  # suggested_lr, applied, steps_run
    budget: dict | None = None  # cifarlab.training.budget.Plan.to_dict: the candidates, their predictions, the chosen one
    schema: str = TRAIN_SCHEMA

    def to_dict(self) -> dict:
        """Plain dicts and lists, as ``metrics.json`` holds them (``schema`` first)."""
        payload = dataclasses.asdict(self)
        return {"schema": payload.pop("schema"), **payload}

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


@dataclass(frozen=True)
class EvaluatedCheckpoint:
    """The checkpoint the report is of: its absolute path and the sha256 (hex) of its bytes."""

    path: str
    sha256: str


@dataclass(frozen=True)
class TestAccuracy:
    """The test set, plain and with the report's TTA: accuracies as fractions in [0, 1], ``loss`` the mean
    cross-entropy (the run's own loss, label smoothing included)."""

    __test__ = False  # a result, not a pytest test class

    images: int
    acc: float
    loss: float
    tta: str  # none | flip | flip_translate
    acc_tta: float | None  # None with tta=none


@dataclass(frozen=True)
class Misclassified:
    """How many test images are misclassified, and the test-set indices of those shown (the first ones)."""

    count: int
    shown: list[int]


@dataclass(frozen=True)
class GradcamShown:
    """The layer and class GradCAM explained, and the image's weight in the overlay (0: the map only)."""

    target_layer: str
    target: str  # predicted | label
    image_weight: float


@dataclass(frozen=True, eq=False)
class EvalResult(Mapping):
    """What ``evaluate.py`` measured, as its ``metrics.json`` holds it (schema ``cifarlab.eval/3``).

    ``per_class``: class -> {"precision", "recall"} (fractions); ``confusion_matrix``: (C, C) counts, rows the
    true class; ``calibration``: :func:`cifarlab.reports.calibration.calibration_with_tta`'s report;
    ``robustness``: :func:`cifarlab.reports.robustness.write_robustness`'s, or None when it was not run.
    ``inference_s``: seconds to predict the test set plainly (no TTA), ``images_per_s`` its throughput;
    ``wall_time_s``: the whole report. As a mapping it is the JSON of ``metrics.json`` (``result["test"]["acc"]``),
    and equal to that JSON read back.
    """

    checkpoint: EvaluatedCheckpoint
    model: str
    data_root: str
    precision: str
    device: str
    test: TestAccuracy
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    misclassified: Misclassified
    gradcam: GradcamShown
    calibration: dict
    robustness: dict | None
    inference_s: float
    images_per_s: float
    wall_time_s: float
    schema: str = EVAL_SCHEMA

    def to_dict(self) -> dict:
        """Plain dicts and lists, as ``metrics.json`` holds them (``schema`` first)."""
        payload = dataclasses.asdict(self)
        return {"schema": payload.pop("schema"), **payload}

    @classmethod
    def from_dict(cls, payload: Mapping, source: str = "metrics.json") -> EvalResult:
        """A result from ``metrics.json``'s contents.

        Raises:
            DataError: another schema, or a field missing or unknown (``source`` names the file).
        """
        if payload.get("schema") != EVAL_SCHEMA:
            raise DataError(f"{source} has schema {payload.get('schema')!r}, not {EVAL_SCHEMA}: it was not written by "
                            "this release's evaluate.py; run evaluate.py again")
        values = dict(payload)
        nested = {"checkpoint": EvaluatedCheckpoint, "test": TestAccuracy, "misclassified": Misclassified,
                  "gradcam": GradcamShown}
        try:
            for key, kind in nested.items():
                values[key] = kind(**values[key])
            return cls(**values)
        except (KeyError, TypeError) as err:
            raise DataError(f"{source} does not hold an evaluate.py report ({err}): it was edited or cut short; "
                            "run evaluate.py again") from err

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(dataclasses.fields(self))
