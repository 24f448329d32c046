"""Accuracy under the CIFAR-10-C corruptions regenerated with make_cifar_c.py's functions on the
evaluated test images (:mod:`cifarlab.reports.corruptions`, the 15 standard corruptions at 5
severities): the ``robustness`` entry of ``metrics.json``, its table and figure, and relative mCE
against a baseline run scored on the same pixels. These are not the released CIFAR-10-C arrays: they
are made at evaluation time from the test images the report reads, so the report names them
:func:`suite_name` of its data (:func:`data_name`).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from rich.table import Table

from cifarlab.data.arrays import BASE_FOLDER, OFFICIAL_MD5
from cifarlab.errors import ConfigError
from cifarlab.reports.config import RobustnessSettings
from cifarlab.reports.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from cifarlab.reports.figures import save_grid
from cifarlab.runs.run import TrainedRun

log = logging.getLogger(__name__)

SUITE = "CIFAR-10-C corruptions regenerated with make_cifar_c.py's functions"
# md5 of test_batch in the JPEG q75 re-encode of CIFAR-10 that ../shared/data's build_pickles.py writes
JPEG_COPY_TEST_MD5 = "53875ae9d2638021ec99841f668f7bb2"


def suite_name(data: str) -> str:
    """How reports, docs and figures name the suite: ``"CIFAR-10-C corruptions regenerated with
    make_cifar_c.py's functions on <data>"``."""
    return f"{SUITE} on {data}"


def data_name(root: str | Path | None) -> str:
    """The test images at ``root`` (the folder holding ``cifar-10-batches-py/``) as the report names them:
    ``"CIFAR-10"`` when ``test_batch`` has the official md5, ``"CIFAR-10 (JPEG q75 copy)"`` when it has the
    md5 of this project's JPEG re-encode, else the folder's name."""
    if root is None:
        return "the test images"
    batch = Path(root).expanduser() / BASE_FOLDER / "test_batch"
    md5 = hashlib.md5(batch.read_bytes()).hexdigest() if batch.is_file() else None
    if md5 == OFFICIAL_MD5["test_batch"]:
        return "CIFAR-10"
    if md5 == JPEG_COPY_TEST_MD5:
        return "CIFAR-10 (JPEG q75 copy)"
    return Path(root).expanduser().resolve().name


def select_images(total: int, count: int, seed: int) -> np.ndarray:
    """Test-set indices of the corrupted images: ``min(count, total)`` drawn without replacement
    with ``seed``, in increasing order, (n,) int64."""
    return np.sort(np.random.default_rng(seed).choice(total, size=min(count, total), replace=False))


def corruption_accuracies(predictors: Sequence[Callable[[np.ndarray], torch.Tensor]], images: np.ndarray,
                          labels: np.ndarray, seed: int) -> list[tuple[float, dict[str, list[float]]]]:
    """For each predictor (uint8 images (N, 32, 32, 3) -> logits (N, C)): its accuracy on ``images``
    and on each corruption at severities 1..5, ``(clean_acc, {name: [acc_1, ..., acc_5]})``,
    fractions. Every predictor sees the same corrupted pixels, generated once."""
    def accuracy(predict: Callable[[np.ndarray], torch.Tensor], x: np.ndarray) -> float:
        return float((predict(x).argmax(1).numpy() == labels).mean())

    results = [(accuracy(predict, images), {}) for predict in predictors]
    for name in CORRUPTIONS:
        for severity in range(1, SEVERITIES + 1):
            corrupted = corrupt(images, name, severity, seed)
            for predict, (_, table) in zip(predictors, results):
                table.setdefault(name, []).append(accuracy(predict, corrupted))
    return results


def relative_mce(clean: float, corruptions: dict[str, list[float]], base_clean: float,
                 base_corruptions: dict[str, list[float]]) -> float | None:
    """Hendrycks & Dietterich's relative mCE of a model against a baseline: the mean over corruptions
    of sum_s (E_s - E_clean) / sum_s (E_s^base - E_clean^base), errors E = 1 - accuracy. Below 1: the
    model loses less accuracy to corruption than the baseline. A corruption that costs the baseline no
    accuracy has no ratio and is left out, with a warning; None when every one is.
    """
    ratios = {}
    for name, accs in corruptions.items():
        base_drop = sum(base_clean - acc for acc in base_corruptions[name])
        if base_drop > 0:
            ratios[name] = sum(clean - acc for acc in accs) / base_drop
    if len(ratios) < len(corruptions):
        log.warning("relative mCE leaves out %s: the baseline loses no accuracy to them",
                    ", ".join(sorted(set(corruptions) - set(ratios))))
    return float(np.mean(list(ratios.values()))) if ratios else None


def robustness_report(predict: Callable[[np.ndarray], torch.Tensor], images: np.ndarray, labels: np.ndarray,
                      seed: int, baseline: tuple[str, Callable[[np.ndarray], torch.Tensor]] | None = None, *,
                      data: str) -> dict:
    """The ``robustness`` entry of ``metrics.json`` for ``predict`` on ``images`` (N, 32, 32, 3) uint8
    with ``labels`` (N,) int64: the suite's name (:func:`suite_name` of ``data``, what the images are),
    accuracies as fractions, their mean over the 15 corruptions x 5 severities, and with a ``baseline``
    (its name, its predictor) :func:`relative_mce` against it on the same pixels.
    """
    predictors = [predict] + ([baseline[1]] if baseline else [])
    (clean, table), *base = corruption_accuracies(predictors, images, labels, seed)
    return {
        "suite": suite_name(data),
        "images": len(labels),
        "seed": seed,
        "severities": SEVERITIES,
        "clean_acc": clean,
        "corruptions": table,
        "mean_corruption_acc": float(np.mean(list(table.values()))),
        "baseline": baseline[0] if baseline else None,
        "relative_mce": relative_mce(clean, table, *base[0]) if baseline else None,
    }


def save_robustness_grid(image: np.ndarray, index: int, seed: int, path: Path, data: str) -> None:
    """One image (32, 32, 3) uint8, test-set ``index``, under every corruption (rows) at severities
    0 (clean) to 5 (columns), drawn as the report's first corrupted image, titled with :func:`suite_name`
    of ``data``, as a PNG of 1.2 x 1.2 in cells at 100 dpi: 720 pixels wide, ``(rows * 1.8 + 0.4) * 100``
    high (2,740 for the 15 corruptions)."""
    cells = [corrupt(image[None], name, severity, seed)[0]
             for name in CORRUPTIONS for severity in range(SEVERITIES + 1)]
    captions = [f"{name}\nclean" if severity == 0 else f"severity {severity}"
                for name in CORRUPTIONS for severity in range(SEVERITIES + 1)]
    save_grid(np.stack(cells), captions, path, ncols=SEVERITIES + 1, cell_inches=1.2,
              title=f"{SUITE}\non {data}: test image #{index}, seed {seed}")


def load_baseline(path: str, run: TrainedRun) -> TrainedRun:
    """The run ``eval.robustness.baseline`` names, on ``run``'s device, loaded before any file is written.

    Raises:
        CifarlabError: nothing at ``path``; not a cifarlab run (see :class:`TrainedRun`); other classes than ``run``'s.
    """
    if not Path(path).expanduser().exists():
        raise ConfigError(f"eval.robustness.baseline={path} does not exist: give a train.py run dir or .ckpt to "
                          "compare with, or leave it null")
    baseline = TrainedRun(path, precision=run.precision, device=run.device)
    if baseline.class_names != run.class_names:
        raise ConfigError(f"eval.robustness.baseline={path} classifies {baseline.class_names}, not this run's classes")
    return baseline


def write_robustness(run: TrainedRun, baseline: TrainedRun | None, images: np.ndarray, labels: np.ndarray,
                     settings: RobustnessSettings, batch_size: int, out: Path) -> dict:
    """:func:`robustness_report` of ``run`` (and ``baseline``, loaded from ``settings.baseline``, both
    through :meth:`TrainedRun.predict`) on ``settings.images`` of the test ``images`` (N, 32, 32, 3) uint8 with
    ``labels`` (N,) int64, drawn with ``settings.seed``, named after ``run.data_root`` (:func:`data_name`);
    ``out/robustness.png`` shows the first of them."""
    index = select_images(len(labels), settings.images, settings.seed)
    data = data_name(run.data_root)
    against = (settings.baseline, lambda x: baseline.predict(x, batch_size)) if baseline else None
    results = robustness_report(lambda x: run.predict(x, batch_size), images[index], labels[index], settings.seed,
                                against, data=data)
    save_robustness_grid(images[index[0]], int(index[0]), settings.seed, out / "robustness.png", data)
    return results


def robustness_table(results: dict) -> Table:
    """The ``robustness`` entry as a rich table titled with its suite: accuracy in % per corruption (rows) and
    severity (columns), its mean per corruption, and in the caption the mean over all and the relative mCE
    against a baseline."""
    relative = (f"; relative mCE {results['relative_mce']:.3f} against {results['baseline']}"
                if results["relative_mce"] is not None else "")
    table = Table(title=f"{results.get('suite', 'corruptions')}: accuracy in % at severity 1-{results['severities']} "
                        f"({results['images']} test images, seed {results['seed']}; clean "
                        f"{100 * results['clean_acc']:.1f} %)",
                  caption=f"mean corruption accuracy {100 * results['mean_corruption_acc']:.2f} %{relative}")
    table.add_column("corruption", no_wrap=True)
    for column in [str(s) for s in range(1, results["severities"] + 1)] + ["mean"]:
        table.add_column(column, justify="right")
    for name, accs in results["corruptions"].items():
        table.add_row(name, *(f"{100 * a:.1f}" for a in accs + [float(np.mean(accs))]))
    return table
