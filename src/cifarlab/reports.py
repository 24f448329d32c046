"""Wiring for ``evaluate.py``: config -> :mod:`cifarlab.evaluation` -> PNGs and metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from cifarlab.checkpoints import resolve_checkpoint
from cifarlab.config import best_precision
from cifarlab.errors import ConfigError
from cifarlab.evaluation import evaluate_checkpoint, write_data_figures


def training_precision(ckpt_path: str) -> str:
    """The precision the run was tested with (its ``metrics.json``), else this machine's best."""
    metrics = resolve_checkpoint(ckpt_path).parent.parent / "metrics.json"
    if metrics.is_file():
        return json.loads(metrics.read_text()).get("precision", best_precision())
    return best_precision()


def print_report(results: dict) -> None:
    table = Table(title=f"cifarlab evaluation: {results['checkpoint']}")
    table.add_column("class")
    for column in ("precision", "recall", "accuracy"):
        table.add_column(column, justify="right")
    for name, row in results["per_class"].items():
        table.add_row(name, *(f"{100 * row[k]:.1f} %" for k in ("precision", "recall", "accuracy")))
    console = Console()
    console.print(table)
    test = results["test"]
    tta = f", with flip TTA {100 * test['acc_tta_flip']:.2f} %" if "acc_tta_flip" in test else ""
    console.print(f"test accuracy {100 * test['acc']:.2f} % ({test['images']} images{tta}), "
                  f"{results['num_misclassified']} misclassified, {results['images_per_s']:.0f} images/s")


def run(cfg: DictConfig, out: Path) -> dict | None:
    """``mode=checkpoint``: the test report of ``cfg.ckpt_path``; ``mode=data``: the data figures.

    Raises:
        ConfigError: unknown mode, no ckpt_path; see :func:`cifarlab.evaluation.evaluate_checkpoint`.
    """
    e = cfg.eval
    if cfg.mode == "data":
        datamodule = instantiate(cfg.data, _convert_="all", _recursive_=False)
        datamodule.setup("fit")
        out.mkdir(parents=True, exist_ok=True)
        write_data_figures(out, datamodule, e.num_samples, e.image_size)
        Console().print(f"wrote samples.png and augmentations.png to {out}")
        return None
    if cfg.mode != "checkpoint":
        raise ConfigError(f"mode={cfg.mode!r} must be 'checkpoint' or 'data'")
    if not cfg.ckpt_path:
        raise ConfigError("no checkpoint given: pass ckpt_path=<.ckpt file or train.py run dir>, "
                          "or mode=data for the data figures")
    results = evaluate_checkpoint(
        cfg.ckpt_path, out, data_root=cfg.data_root, batch_size=cfg.batch_size,
        precision=cfg.precision or training_precision(cfg.ckpt_path), num_misclassified=e.num_misclassified,
        target_layer=e.gradcam.target_layer, image_weight=e.gradcam.image_weight, target=e.gradcam.target,
        tta=e.tta, size=e.image_size, expected_target=cfg.model._target_ if cfg.get("model") else None,
    )
    print_report(results)
    Console().print(f"report written to {out}")
    return results
