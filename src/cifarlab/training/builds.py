"""The builds of a training run, from its config: the data module, the budget's choice, the LightningModule, the
Trainer with its callbacks and loggers, and the LR range test; each small, and :func:`cifarlab.training.pipeline.train`
calls them in order."""
from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from cifarlab.data import ImageDataModule
from cifarlab.errors import ConfigError
from cifarlab.models.base import Whitened
from cifarlab.module import ImageClassifier
from cifarlab.training.budget import Plan, choose, cpu_candidate_precisions
from cifarlab.training.callbacks import AirbenchWhitening, RandomStates
from cifarlab.training.lr_finder import find_lr


def apply_budget(cfg: DictConfig, test_images: int, held_out_images: int, started_at: float | None = None) -> Plan | None:
    """For a preset with a ``budget`` node (``experiment=cpu_airbench``): probe the candidates, choose the width
    and precision with the best predicted held-out accuracy in the budget (:mod:`cifarlab.training.budget`), print the
    table, and write the choice into ``cfg`` (``model.net.widths``, ``trainer.precision``, ``budget.train_s``,
    which ``model.scheduler.budget_s`` reads). ``test_images`` are predicted after training with the run's TTA,
    ``held_out_images`` once each; the seconds spent since ``started_at`` (:func:`cifarlab.training.budget.job_start`)
    count. A value given on the command line pins its part. ``None`` without
    a budget, or with ``model.scheduler.budget_s=null`` (a fixed step count: nothing to choose).

    Raises:
        ConfigError: no width to train; a budget too small for any candidate (:func:`cifarlab.training.budget.plan`).
    """
    spec, scheduler = cfg.get("budget"), cfg.model.get("scheduler")
    raw = OmegaConf.to_container(scheduler, resolve=False) if isinstance(scheduler, DictConfig) else {}
    if not spec or scheduler is None or raw.get("budget_s", "") is None:
        if cfg.model.net.get("widths", ()) is None:
            raise ConfigError("model.net.widths=null is chosen by the budget, which a fixed step count "
                              "(model.scheduler.budget_s=null) switches off: give the widths, e.g. model.net.widths=[32,128,128]")
        return None
    pinned_s = None if OmegaConf.is_interpolation(cfg.model.scheduler, "budget_s") else float(cfg.model.scheduler.budget_s)
    widths = [cfg.model.net.widths] if cfg.model.net.get("widths") is not None else list(spec.widths)
    precisions = (cpu_candidate_precisions(cfg.trainer.accelerator) if OmegaConf.is_interpolation(cfg.trainer, "precision")
                  else [cfg.trainer.precision])
    chosen_plan = choose([tuple(w) for w in widths], precisions, cfg.data.batch_size, spec.wall_s, spec.reserve_s,
                         test_images, cfg.model.tta, pinned_s, held_out_images, started_at)
    with open_dict(cfg):
        cfg.model.net.widths = list(chosen_plan.chosen.widths)
        cfg.trainer.precision = chosen_plan.chosen.precision
        cfg.budget.train_s = round(chosen_plan.chosen.train_s, 1)
    return chosen_plan


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    """The data module of ``cfg.data``, set up for a fit; a download runs once per machine (local rank 0;
    Lightning's other ranks start after it, in fit)."""
    datamodule: ImageDataModule = instantiate(cfg.data, _convert_="all", _recursive_=False)
    if int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0))) == 0:
        datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_module(cfg: DictConfig, datamodule: ImageDataModule) -> ImageClassifier:
    """The LightningModule of ``cfg.model`` (its network, optimiser, scheduler and loss stay specs that it instantiates
    itself, and saves as hyperparameters), with ``model.net.num_classes`` (set in ``cfg``, so config.yaml records it),
    class names and normalisation of the set-up ``datamodule`` (a fit copies the latter again)."""
    with open_dict(cfg):
        cfg.model.net.num_classes = len(datamodule.class_names)
    module = instantiate(cfg.model, class_names=list(datamodule.class_names), _recursive_=False)
    module.set_normalisation(datamodule.mean, datamodule.std)
    return module


def build_trainer(cfg: DictConfig, module: ImageClassifier, extra_callbacks: list[L.Callback]) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the callbacks of ``cfg.callbacks``, ``extra_callbacks`` and loggers of
    ``cfg.logger``. Every fit also gets :class:`~cifarlab.training.callbacks.RandomStates` (exact resume); a network with
    airbench's whitening layer gets :class:`~cifarlab.training.callbacks.AirbenchWhitening` (initialisation only) where
    ``cfg.callbacks`` has none."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + extra_callbacks + [RandomStates()]
    if isinstance(module.net, Whitened) and not any(isinstance(c, AirbenchWhitening) for c in callbacks):
        callbacks.append(AirbenchWhitening(fraction=None))
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")


def keep_selection_off_the_test_set(cfg: DictConfig) -> None:
    """With ``data.val_size=0`` the validation set *is* the test set, so nothing may be chosen on it:
    checkpoints that monitor a metric keep ``last.ckpt`` only (no best-on-test file), and early
    stopping is refused. Edits ``cfg.callbacks`` in place.

    Raises:
        ConfigError: an ``EarlyStopping`` callback with ``data.val_size=0``.
    """
    if cfg.data.val_size:
        return
    for name, spec in (cfg.get("callbacks") or {}).items():
        target = get_object(spec._target_)
        target = target if isinstance(target, type) else None
        if target is not None and issubclass(target, EarlyStopping):
            raise ConfigError(
                f"callbacks.{name} stops early on {spec.get('monitor')} while data.val_size=0 makes the validation set "
                "the test set: that would select the stopping epoch on the test set. Hold out training images "
                "(data.val_size=5000) or drop early stopping (callbacks=default)."
            )
        if target is not None and issubclass(target, ModelCheckpoint) and spec.get("monitor"):
            with open_dict(spec):
                spec.monitor, spec.save_top_k = None, 0


def run_lr_find(cfg: DictConfig, trainer: L.Trainer, module: ImageClassifier, datamodule: ImageDataModule,
                output_dir: Path) -> dict:
    """The LR range test of ``cfg.lr_find``; with ``mode: apply`` the suggestion becomes OneCycle's
    ``model.scheduler.max_lr`` (in the module and in ``cfg``, so ``config.yaml`` and ``metrics.json`` record it).

    Raises:
        ConfigError: ``apply`` without a scheduler that takes ``max_lr``; see :func:`cifarlab.training.lr_finder.find_lr`.
    """
    spec = cfg.lr_find
    if spec.mode == "apply" and "max_lr" not in (cfg.model.get("scheduler") or {}):
        raise ConfigError("lr_find=apply sets model.scheduler.max_lr, but this run's scheduler has none: "
                          "use scheduler=onecycle")
    found = find_lr(trainer, module, datamodule, output_dir, spec.min_lr, spec.max_lr, spec.num_steps,
                    spec.early_stop_threshold)
    Console().print(f"LR range test: suggested learning rate {found.suggested_lr:.3g} "
                    f"({found.steps_run} steps; {output_dir / 'lr_finder.png'})", highlight=False)
    if spec.mode == "apply":  # the module's copy of the spec and the config (written once, after this)
        module.hparams.scheduler["max_lr"] = found.suggested_lr
        with open_dict(cfg):
            cfg.model.scheduler.max_lr = found.suggested_lr
    return {"suggested_lr": found.suggested_lr, "applied": spec.mode == "apply", "steps_run": found.steps_run}
