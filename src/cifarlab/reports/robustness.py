"""Accuracy under common corruptions generated on the fly from uint8 test images, in the spirit of
CIFAR-10-C (Hendrycks & Dietterich 2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR; parameters from their ``make_cifar_c.py``): nine of its
corruptions at five severities, each severity a fixed albumentations transform, seeded, so a report
is reproducible and two runs are scored on the same corrupted pixels."""
from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from rich.table import Table

from cifarlab.errors import ConfigError
from cifarlab.reports.config import RobustnessSettings
from cifarlab.reports.figures import save_grid
from cifarlab.run import TrainedRun

log = logging.getLogger(__name__)

SEVERITIES = 5


def _defocus(spec: tuple[float, float]) -> list[A.BasicTransform]:
    """CIFAR-10-C's defocus blur: a disk of radius r (pixels) smoothed by a 3x3 Gaussian of sigma s.
    ``A.Defocus`` (the same kernel) takes whole radii only: below r = 1 the disk is the centre pixel,
    so the kernel is that 3x3 Gaussian; at r = 1.5 it is the 3x3 square, whose smoothing by sigma 0.1
    weighs a neighbour by e^-50: a 3x3 box blur."""
    radius, sigma = spec
    if radius < 1:
        return [A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(sigma, sigma), p=1)]
    if radius == 1:
        return [A.Defocus(radius=(1, 1), alias_blur=(sigma, sigma), p=1)]
    return [A.Blur(blur_limit=(3, 3), p=1)]


def _fog(spec: tuple[float, float]) -> list[A.BasicTransform]:
    """CIFAR-10-C's fog: (x + t * plasma) / (1 + t), a diamond-square plasma fractal (values in [0, 1])
    whose noise shrinks by ``decay`` per octave added at strength t to an image that reaches white
    (CIFAR-10-C divides by (max(x) + t) / max(x)). Scaled first, so nothing clips."""
    strength, decay = spec
    scale = 1 / (1 + strength)
    return [A.RandomBrightnessContrast(brightness_limit=(0, 0), contrast_limit=(scale - 1, scale - 1), p=1),
            A.PlasmaBrightnessContrast(brightness_range=(strength * scale, strength * scale), contrast_range=(0, 0),
                                       roughness=1 / decay, p=1)]


# name -> (the transforms of one severity from its parameter, CIFAR-10-C's parameter at severities 1..5)
CORRUPTIONS: dict[str, tuple[Callable[..., list[A.BasicTransform]], tuple]] = {
    # std of per-pixel, per-channel noise as a fraction of 255
    "gaussian_noise": (lambda std: [A.GaussNoise(std_range=(std, std), p=1)], (0.04, 0.06, 0.08, 0.09, 0.10)),
    # Poisson noise of c photons at full intensity (albumentations draws it in linear, un-gamma'd light)
    "shot_noise": (lambda c: [A.ShotNoise(scale_range=(1 / c, 1 / c), p=1)], (500, 250, 100, 75, 50)),
    # sigma in pixels; kernel side int(3.5 sigma) * 2 + 1
    "gaussian_blur": (lambda sigma: [A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1)],
                      (0.4, 0.6, 0.7, 0.8, 1.0)),
    # (disk radius, sigma of its smoothing) in pixels
    "defocus_blur": (_defocus, ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))),
    # JPEG quality
    "jpeg": (lambda quality: [A.ImageCompression(quality_range=(quality, quality), p=1)], (80, 65, 58, 50, 40)),
    # c: (x - mean) * c + mean, as c * x + (1 - c) * mean (albumentations' mean is over all channels)
    "contrast": (lambda c: [A.RandomBrightnessContrast(brightness_limit=(1 - c, 1 - c), contrast_limit=(c - 1, c - 1),
                                                       brightness_by_max=False, p=1)], (0.75, 0.5, 0.4, 0.3, 0.15)),
    # added to HSV value, as a fraction of 255
    "brightness": (lambda v: [A.HueSaturationValue(hue_shift_limit=(0, 0), sat_shift_limit=(0, 0),
                                                   val_shift_limit=(255 * v, 255 * v), p=1)], (0.05, 0.1, 0.15, 0.2, 0.3)),
    # side in pixels it is shrunk to (CIFAR-10-C: int(32 c)) and grown back from, nearest neighbour both ways: at
    # these factors PIL's BOX filter there mostly drops and repeats rows and columns, and so does this
    "pixelate": (lambda side: [A.Downscale(scale_range=(side / 32, side / 32), p=1, interpolation_pair={
        "downscale": cv2.INTER_NEAREST_EXACT, "upscale": cv2.INTER_NEAREST_EXACT})], (30, 28, 27, 24, 20)),
    # (strength t, decay of the plasma's noise per octave)
    "fog": (_fog, ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))),
}


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """The 32-bit seed of one corruption at one severity: a function of ``seed`` and of both, so
    adding or reordering corruptions leaves each one's pixels unchanged."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode()), severity]).generate_state(1)[0])


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8 under corruption ``name`` (a key of :data:`CORRUPTIONS`) at
    ``severity`` 1..5, as (N, H, W, 3) uint8; severity 0 returns a copy. The same seed gives the same
    pixels; image i's draws depend on the images before it (one seeded stream per corruption and severity).

    Raises:
        ValueError: an unknown corruption or a severity outside 0..5.
    """
    if name not in CORRUPTIONS or not 0 <= severity <= SEVERITIES:
        raise ValueError(f"no corruption {name!r} at severity {severity}: corruptions are {', '.join(CORRUPTIONS)}, "
                         f"severities 0..{SEVERITIES}")
    if severity == 0:
        return images.copy()
    factory, params = CORRUPTIONS[name]
    transform = A.Compose(factory(params[severity - 1]), seed=corruption_seed(seed, name, severity))
    return np.stack([transform(image=image)["image"] for image in images])


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
                      seed: int, baseline: tuple[str, Callable[[np.ndarray], torch.Tensor]] | None = None) -> dict:
    """The ``robustness`` entry of ``metrics.json`` for ``predict`` on ``images`` (N, 32, 32, 3) uint8
    with ``labels`` (N,) int64: accuracies as fractions, the mean over all corruptions and severities,
    and with a ``baseline`` (its name, its predictor) :func:`relative_mce` against it on the same pixels.
    """
    predictors = [predict] + ([baseline[1]] if baseline else [])
    (clean, table), *base = corruption_accuracies(predictors, images, labels, seed)
    return {
        "images": len(labels),
        "seed": seed,
        "severities": SEVERITIES,
        "clean_acc": clean,
        "corruptions": table,
        "mean_corruption_acc": float(np.mean(list(table.values()))),
        "baseline": baseline[0] if baseline else None,
        "relative_mce": relative_mce(clean, table, *base[0]) if baseline else None,
    }


def save_robustness_grid(image: np.ndarray, index: int, seed: int, path: Path) -> None:
    """One image (32, 32, 3) uint8, test-set ``index``, under every corruption (rows) at severities
    0 (clean) to 5 (columns), drawn as the report's first corrupted image, as a PNG of 1.2 x 1.2 in cells
    at 100 dpi: 720 pixels wide, ``(rows * 1.8 + 0.4) * 100`` high (1,660 for nine corruptions)."""
    cells = [corrupt(image[None], name, severity, seed)[0]
             for name in CORRUPTIONS for severity in range(SEVERITIES + 1)]
    captions = [f"{name}\nclean" if severity == 0 else f"severity {severity}"
                for name in CORRUPTIONS for severity in range(SEVERITIES + 1)]
    save_grid(np.stack(cells), captions, path, ncols=SEVERITIES + 1, cell_inches=1.2,
              title=f"Test image #{index} under each corruption (seed {seed})")


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
    ``labels`` (N,) int64, drawn with ``settings.seed``; ``out/robustness.png`` shows the first of them."""
    index = select_images(len(labels), settings.images, settings.seed)
    against = (settings.baseline, lambda x: baseline.predict(x, batch_size)) if baseline else None
    results = robustness_report(lambda x: run.predict(x, batch_size), images[index], labels[index], settings.seed,
                                against)
    save_robustness_grid(images[index[0]], int(index[0]), settings.seed, out / "robustness.png")
    return results


def robustness_table(results: dict) -> Table:
    """The ``robustness`` entry as a rich table: accuracy in % per corruption and severity, its mean
    per corruption, and in the caption the mean over all and the relative mCE against a baseline."""
    relative = (f"; relative mCE {results['relative_mce']:.3f} against {results['baseline']}"
                if results["relative_mce"] is not None else "")
    table = Table(title=f"accuracy in % at corruption severity 1-{results['severities']} ({results['images']} test "
                        f"images, seed {results['seed']}; clean {100 * results['clean_acc']:.1f} %)",
                  caption=f"mean corruption accuracy {100 * results['mean_corruption_acc']:.2f} %{relative}")
    table.add_column("corruption", no_wrap=True)
    for column in [str(s) for s in range(1, results["severities"] + 1)] + ["mean"]:
        table.add_column(column, justify="right")
    for name, accs in results["corruptions"].items():
        table.add_row(name, *(f"{100 * a:.1f}" for a in accs + [float(np.mean(accs))]))
    return table
