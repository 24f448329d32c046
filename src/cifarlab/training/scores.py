"""The tested weights, scored once after a fit: which checkpoint to test (never one chosen on the test set), the
held-out split and the test set with its TTA."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from cifarlab.data import ImageDataModule
from cifarlab.module import ImageClassifier
from cifarlab.runs.result import HeldOutScores, TestScores
from cifarlab.runs.rundir import RunDir


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
        resumed = RunDir.of_checkpoints_dir(Path(checkpoint.dirpath)).last_checkpoint if checkpoint.dirpath else None
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
