"""Figures written as PNGs, with matplotlib's object API (no pyplot state): captioned image
grids, the confusion matrix (torchmetrics' plot) and the training curves."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torchmetrics.utilities.plot import plot_confusion_matrix


def upscale(images: np.ndarray, size: int = 128) -> np.ndarray:
    """Nearest-neighbour upscale so that a person can see 32 x 32 images:
    (N, H, W, 3) uint8 -> (N, size, size, 3) uint8."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(t, size=(size, size), mode="nearest-exact").permute(0, 2, 3, 1).numpy()


def save_grid(images: np.ndarray, captions: Sequence[str], path: Path, title: str = "", ncols: int = 5,
              cell_inches: float = 2.0, dpi: int = 100) -> None:
    """Save images (N, H, W, 3) uint8, each with a caption of up to three lines, as a grid PNG
    ``ncols * cell_inches * dpi`` pixels wide and ``(rows * (cell_inches + 0.6) + 0.4) * dpi``
    high (0.6 in per caption, 0.4 in for ``title``)."""
    ncols = max(1, min(ncols, len(images)))
    nrows = -(-len(images) // ncols)
    height = nrows * (cell_inches + 0.6) + 0.4
    fig = Figure(figsize=(ncols * cell_inches, height))
    for ax in fig.subplots(nrows, ncols, squeeze=False).ravel():
        ax.axis("off")
    for ax, image, caption in zip(fig.axes, images, captions):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height))
    fig.savefig(path, dpi=dpi)


MAX_GRID_CLASSES = 20  # above this, a C x C grid is unreadable: the top confusions are drawn instead
TOP_CONFUSIONS = 25


def top_confusions(matrix: Sequence[Sequence[int]], count: int = TOP_CONFUSIONS) -> list[tuple[int, int, int]]:
    """The ``count`` largest off-diagonal cells of a (C, C) confusion matrix as (images, true, predicted),
    largest first (ties by true class, then predicted), zero cells left out."""
    m = np.array(matrix)
    np.fill_diagonal(m, 0)
    true, pred = np.nonzero(m)
    cells = sorted(zip((-m[true, pred]).tolist(), true.tolist(), pred.tolist()))[:count]
    return [(-n, t, p) for n, t, p in cells]


def save_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path) -> None:
    """Confusion matrix (C, C) counts (rows: true class, columns: predicted) as an annotated 800 x 800 PNG;
    with more than :data:`MAX_GRID_CLASSES` classes, a bar chart of its :func:`top_confusions` instead."""
    fig = Figure(figsize=(8, 8))
    if len(class_names) <= MAX_GRID_CLASSES:
        plot_confusion_matrix(torch.tensor(matrix), ax=fig.subplots(), labels=list(class_names), cmap="Blues")
    else:
        cells = top_confusions(matrix)[::-1]  # largest at the top
        ax = fig.subplots()
        ax.barh(range(len(cells)), [n for n, _, _ in cells], color="tab:blue")
        ax.set_yticks(range(len(cells)), [f"{class_names[t]} \u2192 {class_names[p]}" for _, t, p in cells], fontsize=8)
        ax.set_xlabel("test images (true \u2192 predicted)")
        ax.set_title(f"The {len(cells)} largest confusions of {len(class_names)} classes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def save_curves(series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Training curves against step as a 1500 x 400 PNG of three panels: loss, accuracy, learning rate.

    ``series`` maps a logged name (``train/loss_step``, ``val/acc``, ``lr-Adam``, ...) to
    (steps, values); a name goes to the first panel whose key its last part contains.
    """
    fig = Figure(figsize=(15, 4))
    panels = dict(zip(("loss", "accuracy", "learning rate"), fig.subplots(1, 3)))
    for name, (steps, values) in sorted(series.items()):
        last = name.split("/")[-1]
        key = next((title for title, part in (("loss", "loss"), ("accuracy", "acc")) if part in last),
                   "learning rate" if last.startswith("lr") else None)
        if key:
            panels[key].plot(steps, values, label=name, marker="o" if len(steps) < 30 else None)
    for title, ax in panels.items():
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def log_images_to_tensorboard(log_dir: Path, images: dict[str, Path], step: int) -> None:
    """Add each PNG of ``images`` (tag -> file; missing files are skipped) to the TensorBoard event files in
    ``log_dir`` at ``step``, as RGB images (TensorBoard's Images tab, beside the run's curves)."""
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for tag, path in images.items():
            if Path(path).is_file():
                writer.add_image(tag, np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")
