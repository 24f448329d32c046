"""``train.py``'s job, as a list of logged steps: config -> data, model, trainer -> [LR range test] -> fit (or
resume) -> test once -> ``metrics.json`` (a :class:`~cifarlab.runs.result.TrainResult`), as lightning-hydra-template's
train.py. The builds are in :mod:`cifarlab.training.builds`, the scoring in :mod:`cifarlab.training.scores`. The
config (``cfg``) stays in the training package (its builds, trackers and resume), but for the range check of
:mod:`cifarlab.config.validation`; everything else gets plain arguments."""
from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from cifarlab.config.validation import check_ranges
from cifarlab.data import ImageDataModule
from cifarlab.runs import provenance
from cifarlab.runs.result import HeldOutScores, TestedCheckpoint, TestScores, TrainResult
from cifarlab.runs.rundir import RunDir
from cifarlab.training.budget import Plan
from cifarlab.training.builds import (apply_budget, build_datamodule, build_module, build_trainer,
                                      keep_selection_off_the_test_set, run_lr_find)
from cifarlab.training.callbacks import Throughput, WarmUp
from cifarlab.training.distributed import requeued_checkpoint
from cifarlab.training.resume import resumed_config
from cifarlab.training.scores import choose_test_weights, evaluate_held_out, run_test
from cifarlab.training.tracking import (check_logger_packages, hydra_record, log_final, log_params, tensorboard_hparams,
                                        tracker_params)

log = logging.getLogger(__name__)
# Lightning warns on a mid-epoch resume unless the loader has state_dict/load_state_dict. Ours resume
# the epoch from the trainer's own progress counters (cifarlab.data.sampling.batches_done_this_epoch).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


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
    not apply: :func:`cifarlab.training.resume.resumed_config`. ``overrides`` are also recorded in
    ``metrics.json``'s ``provenance.command``. ``callbacks`` join those of ``cfg.callbacks`` (objects a
    config cannot name, such as a benchmark's probe). ``started_at`` (seconds since the epoch): when a budget's
    wall time began (``train.py``: :func:`cifarlab.training.budget.job_start`); None: this call.

    Returns the :class:`~cifarlab.runs.result.TrainResult` written to ``metrics.json``: ``test`` is None
    with ``test=false``, ``val`` (the same weights on the held-out split) None with ``data.val_size=0``.

    Raises:
        cifarlab.errors.CifarlabError: bad data or config (entry points turn it into exit 2); a
            number out of range (:func:`cifarlab.config.validation.check_ranges`) before any data loads.
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
        run_dir.path.mkdir(parents=True, exist_ok=True)  # the LR range test writes its plot there
    first_start = ckpt_to_resume is None
    ckpt_to_resume = ckpt_to_resume or requeued_checkpoint(run_dir)  # a requeued SLURM job continues
    # a continued run keeps the max_lr its first start chose (config.yaml holds it)
    lr_find = run_lr_find(cfg, trainer, module, datamodule, run_dir.path) if cfg.get("lr_find") and not ckpt_to_resume else None
    if trainer.is_global_zero and first_start:  # the config, resolved once (LR range test included), written once
        run_dir.write_config(cfg)
    if lr_find is not None and cfg.lr_find.mode == "only":
        return None
    record = hydra_record(run_dir)
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
        run_dir.write_result(result)
        print_summary(result)
    return result


def check_config(cfg: DictConfig) -> None:
    """Everything about ``cfg`` that can fail before any data loads: ranges, the loggers' packages, and no
    selection on the test set (edits ``cfg.callbacks`` in place: :func:`keep_selection_off_the_test_set`).

    Raises:
        cifarlab.errors.ConfigError: see :func:`cifarlab.config.validation.check_ranges`,
            :func:`cifarlab.training.tracking.check_logger_packages` and :func:`keep_selection_off_the_test_set`.
    """
    check_ranges(cfg)
    check_logger_packages(cfg.get("logger"))
    keep_selection_off_the_test_set(cfg)
    if not cfg.get("test", True) and not cfg.data.val_size:
        log.warning("test=false with data.val_size=0: this run measures no accuracy (evaluate.py can test it later)")


def collect_result(cfg: DictConfig, trainer: L.Trainer, datamodule: ImageDataModule, *, test: TestScores | None,
                   held_out: HeldOutScores | None, tested: TestedCheckpoint, resumed: bool, lr_find: dict | None,
                   budget: Plan | None, throughput: Throughput, seconds: dict[str, float], provenance: dict) -> TrainResult:
    """The :class:`~cifarlab.runs.result.TrainResult` of a finished fit and its test: what ``metrics.json`` holds.
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


