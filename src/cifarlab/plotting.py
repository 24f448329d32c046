"""Figures written as PNGs: image grids with captions, confusion matrix, training curves."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def upscale(images: np.ndarray, size: int = 128) -> np.ndarray:
    """Nearest-neighbour upscale so a person can see 32x32 images: (N, H, W, 3) uint8 or float in
    [0, 1] -> (N, size, size, 3) uint8."""
    if images.dtype != np.uint8:
        images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    out = torch.nn.functional.interpolate(t, size=(size, size), mode="nearest")
    return out.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()


def save_grid(images: np.ndarray, captions: Sequence[str], path: Path, title: str = "", ncols: int = 5,
              cell_inches: float = 2.0, dpi: int = 100) -> tuple[int, int]:
    """Save a grid of images (N, H, W, 3) uint8, each with a caption of up to three lines, as a PNG.

    Returns the PNG's (width, height) in pixels: ``ncols * cell_inches * dpi`` wide and
    ``(rows * (cell_inches + 0.6) + 0.4) * dpi`` high (0.6 in per caption, 0.4 in for ``title``).
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    width, height = ncols * cell_inches, nrows * (cell_inches + 0.6) + 0.4
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return int(round(width * dpi)), int(round(height * dpi))


def save_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: Path, dpi: int = 100) -> None:
    """Confusion matrix (C, C) counts (rows: true class, columns: predicted) as an annotated PNG (800x800 px)."""
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max() / 2
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def save_curves(series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, dpi: int = 100) -> None:
    """Training curves against step as a 1x3 PNG (1500x400 px): loss, accuracy, learning rate.

    ``series`` maps a logged name (``train/loss_step``, ``val/acc``, ``lr-Adam``...) to
    (steps, values); names are placed by whether they contain ``loss``, ``acc`` or ``lr``.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = {"loss": axes[0], "acc": axes[1], "lr": axes[2]}
    for name, (steps, values) in sorted(series.items()):
        for key, ax in panels.items():
            if key in name.split("/")[-1] or (key == "lr" and name.startswith("lr")):
                marker = "o" if len(steps) < 30 else None
                ax.plot(steps, values, label=name, marker=marker)
                break
    for key, ax in panels.items():
        ax.set_title({"loss": "loss", "acc": "accuracy", "lr": "learning rate"}[key])
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
