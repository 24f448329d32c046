"""Experiment wiring for ``train.py``: config -> data, model, trainer -> [LR range test] -> fit
(or resume) -> test once -> ``metrics.json`` (a :class:`~cifarlab.rundir.TrainResult`). It is one module because
:func:`train` and the builds and steps it calls read top to bottom in one place, as lightning-hydra-template's train.py."""
from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from hydra.utils import get_object, instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from cifarlab import provenance
from cifarlab.budget import Plan, choose, cpu_candidate_precisions
from cifarlab.callbacks import AirbenchWhitening, RandomStates, Throughput, WarmUp
from cifarlab.data import ImageDataModule
from cifarlab.distributed import requeued_checkpoint
from cifarlab.errors import ConfigError
from cifarlab.lr_finder import find_lr
from cifarlab.models.base import Whitened
from cifarlab.module import ImageClassifier
from cifarlab.tracking import (check_logger_packages, hydra_record, log_final, log_params, tensorboard_hparams,
                               tracker_params)
from cifarlab.validation import check_ranges
from cifarlab.resume import resumed_config
from cifarlab.rundir import HeldOutScores, RunDir, TestedCheckpoint, TestScores, TrainResult

log = logging.getLogger(__name__)
# Lightning warns on a mid-epoch resume unless the loader has state_dict/load_state_dict. Ours resume
# the epoch from the trainer's own progress counters (cifarlab.data.sampling.batches_done_this_epoch).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def apply_budget(cfg: DictConfig, test_images: int, held_out_images: int, started_at: float | None = None) -> Plan | None:
    """For a preset with a ``budget`` node (``experiment=cpu_airbench``): probe the candidates, choose the width
    and precision with the best predicted held-out accuracy in the budget (:mod:`cifarlab.budget`), print the
    table, and write the choice into ``cfg`` (``model.net.widths``, ``trainer.precision``, ``budget.train_s``,
    which ``model.scheduler.budget_s`` reads). ``test_images`` are predicted after training with the run's TTA,
    ``held_out_images`` once each; the seconds spent since ``started_at`` (:func:`cifarlab.budget.job_start`)
    count. A value given on the command line pins its part. ``None`` without
    a budget, or with ``model.scheduler.budget_s=null`` (a fixed step count: nothing to choose).

    Raises:
        ConfigError: no width to train; a budget too small for any candidate (:func:`cifarlab.budget.plan`).
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
    ``cfg.logger``. Every fit also gets :class:`~cifarlab.callbacks.RandomStates` (exact resume); a network with
    airbench's whitening layer gets :class:`~cifarlab.callbacks.AirbenchWhitening` (initialisation only) where
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


def choose_test_weights(trainer: L.Trainer, val_size: int) -> tuple[str | None, str]:
    """Which weights to test, once: (ckpt_path for ``trainer.test``, ``"last"`` | ``"best"`` | ``"in_memory"``).

    With the test set as validation (``val_size == 0``) the final weights (``last.ckpt``): a
    checkpoint chosen by its test accuracy would be selection on the test set. With a held-out
    validation split, the best-on-validation checkpoint. A resumed run that wrote no checkpoint in this
    process, and whose callback forgot the paths (its run dir was moved), tests the ``last.ckpt`` it resumed.
    """
    checkpoint = trainer.checkpoint_callback
    if trainer.fast_dev_run or not isinstance(checkpoint, ModelCheckpoint):
        return None, "in_memory"
    if checkpoint.monitor is None or val_size == 0 or not checkpoint.best_model_path:
        resumed = Path(checkpoint.dirpath) / "last.ckpt" if checkpoint.dirpath else None
        return checkpoint.last_model_path or checkpoint.best_model_path or (
            str(resumed) if resumed and resumed.is_file() else None), "last"
    return checkpoint.best_model_path, "best"


def evaluate_held_out(trainer: L.Trainer, module: ImageClassifier, datamodule: ImageDataModule,
                      ckpt_path: str | None) -> HeldOutScores | None:
    """The tested weights (``ckpt_path``, or those in memory) on the held-out validation split;
    ``None`` with ``data.val_size=0``, where validation is the test set and no score may be chosen on it.

    ``trainer.limit_val_batches=0`` switches off per-epoch validation, not this measurement:
    the whole split is then used.
    """
    if datamodule.hparams.val_size == 0:
        return None
    if trainer.limit_val_batches == 0:
        trainer.limit_val_batches = 1.0
    scores = trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0]
    return HeldOutScores(acc=float(scores["val/acc"]), loss=float(scores["val/loss"]))


def run_test(trainer: L.Trainer, module: ImageClassifier, datamodule: ImageDataModule, ckpt_path: str | None,
             tta: str) -> TestScores:
    """The tested weights on the test images, once."""
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0]
    acc_tta = tested.get("test/acc_tta")
    return TestScores(acc=float(tested["test/acc"]), loss=float(tested["test/loss"]), images=len(datamodule.test_set),
                      tta=tta, acc_tta=None if acc_tta is None else float(acc_tta))


def print_summary(result: TrainResult) -> None:
    """The run's results as a rich table on the console."""
    table = Table(title=f"cifarlab: {result.model} on {result.dataset}", show_header=False)
    test, tested = result.test, result.tested_checkpoint
    rows = []
    if result.val:
        rows.append(("held-out validation accuracy", f"{100 * result.val.acc:.2f} %"))
    if test is None:
        rows.append(("test accuracy", "not measured (test=false)"))
    else:
        rows.append(("test accuracy", f"{100 * test.acc:.2f} %"))
        if test.acc_tta is not None:
            rows.append((f"test accuracy, TTA {test.tta}", f"{100 * test.acc_tta:.2f} %"))
        rows.append(("test loss", f"{test.loss:.4f}"))
    rows += [
        ("tested" if test else "final weights", f"{tested.which} ({tested.path})"),
        ("epochs / steps", f"{result.epochs} / {result.global_step}"),
        ("training throughput", f"{result.images_per_s:.0f} images/s"),
        ("training time", f"{result.train_seconds:.1f} s (+ {result.compile_seconds:.1f} s compiling)"),
        ("fit + test time", f"{result.fit_seconds + result.test_seconds:.1f} s"),
        ("wall time", f"{result.wall_time_s:.1f} s"),
        ("output dir", result.output_dir),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def train(cfg: DictConfig, overrides: list[str] | None = None, callbacks: Sequence[L.Callback] = (),
          started_at: float | None = None) -> TrainResult | None:
    """Train ``cfg.model`` on ``cfg.data`` (CIFAR-10, CIFAR-100 or an image folder), test it once and write
    ``metrics.json`` to ``cfg.paths.output_dir``.

    ``lr_find=only`` runs the LR range test alone (``lr_finder.png`` and ``.json``) and returns None; ``lr_find=apply``
    runs it, then trains with ``model.scheduler.max_lr`` set to its suggestion. ``resume=<run dir>`` (or
    ``last``) continues that run from its ``last.ckpt`` into the same dir, refusing ``overrides``
    (the command line's, ``HydraConfig.get().overrides.task``; ``None`` without one) that it would
    not apply: :func:`cifarlab.resume.resumed_config`. ``overrides`` are also recorded in
    ``metrics.json``'s ``provenance.command``. ``callbacks`` join those of ``cfg.callbacks`` (objects a
    config cannot name, such as a benchmark's probe). ``started_at`` (seconds since the epoch): when a budget's
    wall time began (``train.py``: :func:`cifarlab.budget.job_start`); None: this call.

    Returns the :class:`~cifarlab.rundir.TrainResult` written to ``metrics.json``: ``test`` is None
    with ``test=false``, ``val`` (the same weights on the held-out split) None with ``data.val_size=0``.

    Raises:
        cifarlab.errors.CifarlabError: bad data or config (entry points turn it into exit 2); a
            number out of range (:func:`cifarlab.validation.check_ranges`) before any data loads.
    """
    start, start_epoch = time.perf_counter(), time.time()
    code = provenance.git_state()  # the code this process imported, not a commit made while it trains
    cfg, ckpt_to_resume = resumed_config(cfg, overrides) if cfg.get("resume") else (cfg, None)
    check_config(cfg)
    run_dir = RunDir(Path(cfg.paths.output_dir))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    held_out_images = len(datamodule.val_set) if datamodule.hparams.val_size or datamodule.arrays.val_images is not None else 0
    budget = None if ckpt_to_resume else apply_budget(cfg, len(datamodule.test_set) if cfg.get("test", True) else 0,
                                                      held_out_images, started_at or start_epoch)
    module = build_module(cfg, datamodule)
    throughput, warm_up = Throughput(), WarmUp()
    trainer = build_trainer(cfg, module, [throughput, warm_up, *callbacks])
    if trainer.is_global_zero:
        run_dir.path.mkdir(parents=True, exist_ok=True)
    first_start = ckpt_to_resume is None
    ckpt_to_resume = ckpt_to_resume or requeued_checkpoint(run_dir)  # a requeued SLURM job continues
    # a continued run keeps the max_lr its first start chose (config.yaml holds it)
    lr_find = run_lr_find(cfg, trainer, module, datamodule, run_dir.path) if cfg.get("lr_find") and not ckpt_to_resume else None
    if trainer.is_global_zero and first_start:  # the config, resolved once (LR range test included), written once
        OmegaConf.save(cfg, run_dir.config, resolve=True)
    if lr_find is not None and cfg.lr_find.mode == "only":
        return None
    record = hydra_record(run_dir.path)
    log_params(trainer, tracker_params(cfg, record))  # after lr_find=apply has set model.scheduler.max_lr
    fit_start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_to_resume)
    fit_seconds = time.perf_counter() - fit_start
    ckpt_path, which = choose_test_weights(trainer, datamodule.hparams.val_size)
    held_out = evaluate_held_out(trainer, module, datamodule, ckpt_path)
    test_start = time.perf_counter()
    test = run_test(trainer, module, datamodule, ckpt_path, cfg.model.tta) if cfg.get("test", True) else None
    result = collect_result(
        cfg, trainer, datamodule, test=test, held_out=held_out, tested=TestedCheckpoint(
            which, None if ckpt_path is None else os.path.relpath(ckpt_path, run_dir.path)),
        resumed=ckpt_to_resume is not None, lr_find=lr_find, budget=budget, throughput=throughput,
        seconds={"compile_seconds": warm_up.seconds, "fit_seconds": fit_seconds,
                 "test_seconds": time.perf_counter() - test_start, "wall_time_s": time.perf_counter() - start},
        provenance=provenance.collect(on_cuda=trainer.strategy.root_device.type == "cuda", overrides=overrides, code=code))
    if trainer.is_global_zero:
        scores = {"test": result.test, "val": result.val}
        log_final(trainer, tensorboard_hparams(cfg, record),
                  {f"hp/{split}_acc": score.acc for split, score in scores.items() if score is not None})
        result.write(run_dir.metrics)
        print_summary(result)
    return result


def check_config(cfg: DictConfig) -> None:
    """Everything about ``cfg`` that can fail before any data loads: ranges, the loggers' packages, and no
    selection on the test set (edits ``cfg.callbacks`` in place: :func:`keep_selection_off_the_test_set`).

    Raises:
        cifarlab.errors.ConfigError: see :func:`cifarlab.validation.check_ranges`,
            :func:`cifarlab.tracking.check_logger_packages` and :func:`keep_selection_off_the_test_set`.
    """
    check_ranges(cfg)
    check_logger_packages(cfg.get("logger"))
    keep_selection_off_the_test_set(cfg)
    if not cfg.get("test", True) and not cfg.data.val_size:
        log.warning("test=false with data.val_size=0: this run measures no accuracy (evaluate.py can test it later)")


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    """The data module of ``cfg.data``, set up for a fit; a download runs once per machine (local rank 0;
    Lightning's other ranks start after it, in fit)."""
    datamodule: ImageDataModule = instantiate(cfg.data, _convert_="all", _recursive_=False)
    if int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0))) == 0:
        datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def collect_result(cfg: DictConfig, trainer: L.Trainer, datamodule: ImageDataModule, *, test: TestScores | None,
                   held_out: HeldOutScores | None, tested: TestedCheckpoint, resumed: bool, lr_find: dict | None,
                   budget: Plan | None, throughput: Throughput, seconds: dict[str, float], provenance: dict) -> TrainResult:
    """The :class:`~cifarlab.rundir.TrainResult` of a finished fit and its test: what ``metrics.json`` holds.
    ``seconds``: ``compile_seconds``, ``fit_seconds``, ``test_seconds`` and ``wall_time_s``."""
    hp = datamodule.hparams
    return TrainResult(
        model=cfg.model.net._target_.rsplit(".", 1)[-1], norm=cfg.model.net.get("norm"), dataset=datamodule.dataset_name,
        seed=cfg.seed, test=test, val=held_out, tested_checkpoint=tested,
        validation="none" if trainer.limit_val_batches == 0 else ("test_set" if hp.val_size == 0 else "held_out"),
        val_size=hp.val_size, resumed=resumed, lr_find=lr_find, budget=None if budget is None else budget.to_dict(),
        max_lr=(cfg.model.get("scheduler") or {}).get("max_lr"), epochs=trainer.current_epoch,
        global_step=trainer.global_step, train_images=len(datamodule.train_set), world_size=trainer.world_size,
        images_per_s=throughput.images_per_s, epoch_images_per_s=throughput.epoch_images_per_s,
        train_seconds=throughput.seconds, **seconds, augment_on=hp.augment_on, precision=str(trainer.precision),
        accelerator=type(trainer.accelerator).__name__, output_dir=str(Path(cfg.paths.output_dir)),
        data={"root": str(hp.root), "mean": datamodule.mean, "std": datamodule.std,
              "checksum": datamodule.checksum.to_dict()},
        provenance=provenance,
    )


def run_lr_find(cfg: DictConfig, trainer: L.Trainer, module: ImageClassifier, datamodule: ImageDataModule,
                output_dir: Path) -> dict:
    """The LR range test of ``cfg.lr_find``; with ``mode: apply`` the suggestion becomes OneCycle's
    ``model.scheduler.max_lr`` (in the module and in ``cfg``, so ``config.yaml`` and ``metrics.json`` record it).

    Raises:
        ConfigError: ``apply`` without a scheduler that takes ``max_lr``; see :func:`cifarlab.lr_finder.find_lr`.
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
