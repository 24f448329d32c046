"""What a run tells its loggers besides the curves: the params of the experiment trackers (the
resolved config and the config-group choices), the row of TensorBoard's HParams tab (a few columns,
with the final accuracies), and the checks that keep the optional trackers (MLflow, Weights &
Biases; ``logger=mlflow|wandb``) installed and on this machine.

Lightning's own hyperparameter logging is off (``save_hyperparameters(logger=False)`` in the module
and the data module): this module is the one place that decides what a tracker records.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

import lightning as L
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from cifarlab.errors import ConfigError
from cifarlab.config.validation import lookup
from cifarlab.runs.rundir import RunDir

# Lightning loggers whose package is an optional extra of pyproject.toml: logger class -> package (= extra name).
OPTIONAL_LOGGERS = {
    "lightning.pytorch.loggers.MLFlowLogger": "mlflow",
    "lightning.pytorch.loggers.WandbLogger": "wandb",
}
# MLflow 3 sends usage telemetry unless told not to; a local store has no reason to reach out (set before import).
LOCAL_ONLY_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true"}

# The HParams columns of a single run: the choices of these config groups, the learning rate (the first of
# LR_KEYS present: a OneCycle schedule overwrites model.optimizer.lr from model.scheduler.max_lr) and KEY_HPARAMS.
CHOICE_GROUPS = ("model", "optimizer", "scheduler", "data/augmentation", "experiment")
LR_KEYS = ("model.scheduler.max_lr", "model.optimizer.lr")
KEY_HPARAMS = ("model.optimizer.weight_decay", "model.loss.label_smoothing", "data.batch_size", "trainer.max_epochs",
               "model.scheduler.budget_s", "seed")


@dataclass
class HydraRecord:
    """What Hydra recorded about a run: ``choices``, the option of each config group (``"null"``
    for none; Hydra's own ``hydra/*`` groups left out), and ``swept``, the config keys and groups
    that its multirun varies (empty for a single run)."""

    choices: dict[str, str] = field(default_factory=dict)
    swept: list[str] = field(default_factory=list)


def check_logger_packages(loggers: DictConfig | None) -> None:
    """Make sure the package of every optional logger in ``cfg.logger`` is installed, and keep
    trackers local (:data:`LOCAL_ONLY_ENV`, unless the environment already sets those variables).

    Raises:
        ConfigError: a logger whose package is missing, with the ``pip install`` that adds it.
    """
    for name, spec in (loggers or {}).items():
        package = OPTIONAL_LOGGERS.get(spec.get("_target_"))
        if package is not None and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger.{name} ({spec._target_}) needs the {package} package, which is not "
                              f"installed: pip install -e '.[{package}]' (or choose another logger, e.g. logger=tensorboard)")
    for variable, value in LOCAL_ONLY_ENV.items():
        os.environ.setdefault(variable, value)


def hydra_record(run_dir: RunDir) -> HydraRecord:
    """The run's group choices (``.hydra/hydra.yaml``; a resumed run keeps its first start's) and, for the job
    of a multirun, what its sweep varies: the sweep overrides (``seed=0,1``, ``model=airbench,custom_resnet``) and
    the sweeper's ``params`` (Optuna's search space) of its ``multirun.yaml``. An empty record without
    ``hydra.yaml``: a config composed outside ``train.py``, or a DDP rank other than 0."""
    hydra = run_dir.read_hydra()
    if hydra is None:
        return HydraRecord()
    choices = {group: "null" if choice is None else choice
               for group, choice in OmegaConf.to_container(hydra.runtime.choices).items() if not group.startswith("hydra/")}
    sweep = run_dir.read_sweep()
    if hydra.get("mode") != "MULTIRUN" or sweep is None:
        return HydraRecord(choices)
    parsed = OverridesParser.create().parse_overrides([str(o) for o in sweep.overrides.task])
    swept = [o.key_or_group for o in parsed if o.is_sweep_override()] + list(sweep.sweeper.get("params") or {})
    return HydraRecord(choices, list(dict.fromkeys(swept)))


def tracker_params(cfg: DictConfig, record: HydraRecord) -> dict[str, Any]:
    """The params a tracker records: the resolved config as nested dicts, and the config-group
    choices under ``choices``. Each logger flattens them its own way (MLflow: ``model/net/_target_``,
    ``choices/model``)."""
    return OmegaConf.to_container(cfg, resolve=True) | {"choices": record.choices}


def tensorboard_hparams(cfg: DictConfig, record: HydraRecord) -> dict[str, Any]:
    """The run's row in TensorBoard's HParams tab, its columns named as on the command line. The job
    of a multirun: the keys and groups its sweep varies (``record.swept``), so that the columns that
    never vary are left out. A single run: the choices of :data:`CHOICE_GROUPS` (``model: airbench``),
    the learning rate and :data:`KEY_HPARAMS`. Values are int, float, str or bool; a list becomes its text."""
    if record.swept:
        keys = record.swept
    else:
        keys = [g for g in CHOICE_GROUPS if g in record.choices]
        keys += [next((k for k in LR_KEYS if OmegaConf.select(cfg, k) is not None), LR_KEYS[-1]), *KEY_HPARAMS]
    row: dict[str, Any] = {}
    for key in keys:
        value = record.choices[key] if key in record.choices else lookup(cfg, key)
        if isinstance(value, (int, float, str, bool)):
            row[key] = value
        elif isinstance(value, list):
            row[key] = str(value)
    return row


def log_params(trainer: L.Trainer, params: dict[str, Any]) -> None:
    """Give ``params`` (:func:`tracker_params`) to every logger but TensorBoard, whose HParams row
    (:func:`log_final`) is written once, with the final metrics. Call it once per run, before
    ``fit``: MLflow refuses a param logged again with another value."""
    for logger in trainer.loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params)


def log_final(trainer: L.Trainer, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """The final ``metrics`` (``hp/test_acc``, ``hp/val_acc`` as fractions) to every logger, with
    ``hparams`` (:func:`tensorboard_hparams`) as TensorBoard's HParams row; then close each logger
    (MLflow logs the checkpoints then, with ``log_model: true``), and end the W&B run: the next job of a multirun,
    in the same process, then starts a W&B run of its own instead of Lightning's reusing this one."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, metrics)
        else:
            logger.log_metrics(metrics, step=trainer.global_step)
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()
