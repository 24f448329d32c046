"""Experiment wiring for ``train.py``: config -> data, model, trainer -> fit, test, results."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from cifarlab.callbacks import Throughput
from cifarlab.data import CIFAR10DataModule
from cifarlab.distributed import requeued_checkpoint
from cifarlab.module import ImageClassifier

def plain(cfg: DictConfig | None) -> Any:
    """A config node as plain dicts and lists (what checkpoints can store under ``weights_only``)."""
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else None


def build_module(cfg: DictConfig, datamodule: CIFAR10DataModule) -> ImageClassifier:
    """The LightningModule for ``cfg.model`` / ``cfg.optimizer`` / ``cfg.scheduler`` / ``cfg.loss``,
    normalised like ``datamodule``."""
    return ImageClassifier(
        net=plain(cfg.model), optimizer=plain(cfg.optimizer), scheduler=plain(cfg.get("scheduler")),
        loss=plain(cfg.loss), mean=datamodule.mean, std=datamodule.std, class_names=datamodule.class_names,
        channels_last=cfg.channels_last, compile=cfg.compile, tta=cfg.tta,
    )


def build_trainer(cfg: DictConfig, extra_callbacks: list[L.Callback]) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the callbacks of ``cfg.callbacks`` and loggers of ``cfg.logger``."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + extra_callbacks
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, _convert_="all")


def choose_test_weights(trainer: L.Trainer, val_size: int) -> tuple[str | None, str]:
    """Which weights to test: (ckpt_path for ``trainer.test``, description).

    With the test set as validation (``val_size == 0``) the final weights (``last.ckpt``):
    a checkpoint chosen by its test accuracy would be selection on the test set. With a
    held-out validation split, the best-on-val checkpoint.
    """
    checkpoint = trainer.checkpoint_callback
    if trainer.fast_dev_run or not isinstance(checkpoint, ModelCheckpoint):
        return None, "final weights (in memory; no checkpoint written)"
    if checkpoint.monitor is None or val_size == 0 or not checkpoint.best_model_path:
        return checkpoint.last_model_path or checkpoint.best_model_path or None, "final weights (last.ckpt)"
    return checkpoint.best_model_path, f"best {checkpoint.monitor} on the held-out validation split"


def validation_description(trainer: L.Trainer, val_size: int, test_images: int) -> str:
    """What the run validated on, in words, for ``metrics.json``."""
    if trainer.limit_val_batches == 0:
        return "none (trainer.limit_val_batches=0)"
    return f"the {test_images:,} test images (data.val_size=0)" if val_size == 0 else f"{val_size:,} held-out training images"


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def print_summary(results: dict) -> None:
    """The run's results as a rich table on the console."""
    table = Table(title=f"cifarlab: {results['model']} on {results['dataset']}", show_header=False)
    test = results["test"]
    rows = [("test accuracy", f"{100 * test['acc']:.2f} %")]
    if test.get("acc_tta") is not None:
        rows.append((f"test accuracy, TTA {test['tta']}", f"{100 * test['acc_tta']:.2f} %"))
    rows += [
        ("test loss", f"{test['loss']:.4f}"),
        ("tested", results["tested_checkpoint"]["which"]),
        ("epochs / steps", f"{results['epochs']} / {results['global_step']}"),
        ("training throughput", f"{results['images_per_s']:.0f} images/s"),
        ("training time", f"{results['train_seconds']:.1f} s (+ {results['compile_seconds']:.1f} s compiling)"),
        ("fit + test time", f"{results['fit_seconds'] + results['test_seconds']:.1f} s"),
        ("wall time", f"{results['wall_time_s']:.1f} s"),
        ("output dir", results["output_dir"]),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def run(cfg: DictConfig) -> dict:
    """Train ``cfg.model`` on CIFAR-10, test it and write ``metrics.json`` to ``cfg.paths.output_dir``.

    Returns the results written to ``metrics.json`` (``test.acc`` as a fraction in [0, 1],
    ``wall_time_s`` in seconds, ``images_per_s`` training images per second).

    Raises:
        cifarlab.errors.CifarlabError: bad data or config (entry points turn it into exit 2).
    """
    start = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    datamodule: CIFAR10DataModule = instantiate(cfg.data, _convert_="all", _recursive_=False)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule)
    throughput = Throughput()
    trainer = build_trainer(cfg, [throughput])
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    fit_start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=requeued_checkpoint(output_dir))  # None unless a requeued SLURM job
    fit_seconds = time.perf_counter() - fit_start
    ckpt_path, which = choose_test_weights(trainer, datamodule.hparams.val_size)
    test_start = time.perf_counter()
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)[0]
    test_seconds = time.perf_counter() - test_start
    acc_tta = tested.get("test/acc_tta")
    results = {
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "norm": cfg.model.get("norm"),
        "dataset": "CIFAR-10" if datamodule.checksum.status == "official" else "CIFAR-10 (JPEG q75 copy / md5 differs from the official release)",
        "seed": cfg.seed,
        "test": {"acc": float(tested["test/acc"]), "loss": float(tested["test/loss"]), "images": len(datamodule.test_set),
                 "tta": cfg.tta, "acc_tta": None if acc_tta is None else float(acc_tta)},
        "tested_checkpoint": {"which": which, "path": ckpt_path},
        "validation": validation_description(trainer, datamodule.hparams.val_size, len(datamodule.test_set)),
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "train_images": len(datamodule.train_set),
        "world_size": trainer.world_size,  # processes (devices x nodes); images_per_s counts all of them
        "images_per_s": throughput.images_per_s,
        "epoch_images_per_s": throughput.epoch_images_per_s,
        "train_seconds": throughput.seconds,
        "compile_seconds": module.compile_seconds,
        "fit_seconds": fit_seconds,
        "test_seconds": test_seconds,
        "wall_time_s": time.perf_counter() - start,
        "augment_on": datamodule.hparams.augment_on,
        "precision": str(trainer.precision),
        "accelerator": type(trainer.accelerator).__name__,
        "data": {"root": str(datamodule.hparams.root), "mean": datamodule.mean, "std": datamodule.std,
                 "checksum": datamodule.checksum.to_dict()},
        "output_dir": str(output_dir),
    }
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", results)
        print_summary(results)
    return results
