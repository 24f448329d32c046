"""Top-k classes of the user's own image files (``predict.py``): each file decoded as the app decodes
an upload (:func:`cifarlab.data.decode.read_upload`), all predicted in batches through
:meth:`cifarlab.runs.run.TrainedRun.predict`; files that cannot be read are listed with the reason, not fatal."""
from __future__ import annotations

import csv
import glob
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from cifarlab.data.decode import SIZE, read_upload
from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.reports.gradcam import check_layer, default_target_layer, gradcam, overlay
from cifarlab.runs.run import TrainedRun
from cifarlab.serving.config import PredictConfig

log = logging.getLogger(__name__)

Failure = tuple[str, str]  # (a file, or an input entry that named none; the reason)
SHOWN = 20  # rows of the console table; predictions.csv holds them all


def find_files(inputs: Sequence[str]) -> tuple[list[Path], list[Failure]]:
    """The files ``inputs`` name, in order, each once: a folder gives the files directly in it
    (sorted), a file itself, anything else is a glob pattern (``**`` recursive; sorted matches).
    Entries that name no file come back as failures."""
    files: dict[Path, Path] = {}  # resolved -> as found, so one file named twice is read once
    failures: list[Failure] = []
    for entry in inputs:
        path = Path(os.path.expanduser(entry))
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file())
            reason = "the folder holds no files"
        elif path.is_file():
            found = [path]
        else:
            found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True)) if Path(p).is_file()]
            reason = "no file matches this path or pattern"
        if not found:
            failures.append((entry, reason))
        for file in found:
            files.setdefault(file.resolve(), file)
    return list(files.values()), failures


def read_images(files: Sequence[Path], max_megapixels: float, size: int = SIZE) -> tuple[np.ndarray, list[Path],
                                                                                         list[Failure]]:
    """Decode ``files`` as the app decodes uploads: images (N, size, size, 3) uint8 of the N files that
    could be read (``size``: the run's ``image_size``), those files, and a failure (file, reason) for each of
    the others."""
    images, read, failures = [], [], []
    for file in files:
        try:
            images.append(read_upload(file, max_megapixels, size))
            read.append(file)
        except CifarlabError as err:
            failures.append((str(file), str(err)))
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8), read, failures


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """``header`` then ``rows`` as a CSV file."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def save_gradcams(run: TrainedRun, images: np.ndarray, classes: np.ndarray, layer: str, folder: Path, names: Sequence[str],
                  size: int) -> None:
    """GradCAM of class ``classes[i]`` over ``images[i]`` (N, 32, 32, 3) uint8, as ``folder/names[i]``:
    (size, size) RGB PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for image, cam, name in zip(images, gradcam(run.model, images, layer, classes), names):
        Image.fromarray(overlay(image, cam, 0.5, size)).save(folder / name)


DEFAULT_TOP_K = 3  # classes per image when top_k is not given


def top_k_of(requested: int | None, classes: int) -> int:
    """How many classes each row of ``predictions.csv`` lists: ``requested``, or without it :data:`DEFAULT_TOP_K`
    (every class of a model with fewer, such as a two-class image folder).

    Raises:
        ConfigError: ``requested`` is more than the model's ``classes``.
    """
    if requested is None:
        return min(DEFAULT_TOP_K, classes)
    if requested > classes:
        raise ConfigError(f"top_k={requested} is more than the model's {classes} classes: use top_k=1..{classes}")
    return requested


def predict(cfg: PredictConfig) -> dict:
    """``predict.py``: the top ``cfg.top_k`` classes of each file of ``cfg.inputs``.

    Writes into ``cfg.paths.output_dir``: ``predictions.csv`` (columns ``file, class_1, prob_1, ...,
    class_k, prob_k``; probabilities are softmax fractions, most probable first), ``failures.csv``
    (``file, reason`` of each file that could not be read and each input that named no file;
    header only when none) and with ``cfg.gradcam`` ``gradcam/<row>_<file stem>.png``: GradCAM of
    the top class, ``cfg.image_size`` pixels square, ``<row>`` the file's 0-based row in predictions.csv.

    Returns ``{"predicted": N, "failures": [(file, reason), ...], "output_dir": str}``.

    Raises:
        CifarlabError: no input file at all, or none that could be read; a bad checkpoint (see
            :class:`TrainedRun`); ``top_k`` above the number of classes; an unknown ``target_layer``.
    """
    files, failures = find_files(cfg.inputs)
    if not files:
        raise CifarlabError(f"no input files: {'; '.join(f'{entry}: {reason}' for entry, reason in failures)}. "
                            "Pass inputs=<folder, glob or image file>")
    run = TrainedRun(cfg.ckpt_path, precision=cfg.precision)
    top_k = top_k_of(cfg.top_k, len(run.class_names))
    layer = check_layer(run.net, cfg.target_layer or default_target_layer(run.net)) if cfg.gradcam else None
    images, read, unreadable = read_images(files, cfg.max_megapixels, run.image_size)
    failures += unreadable
    for entry, reason in failures:
        log.warning("skipped %s: %s", entry, reason)
    if not read:
        raise CifarlabError(f"none of the {len(files)} input files could be read as an image (reasons above)")

    probs = torch.softmax(run.predict(images, cfg.batch_size, cfg.tta.value), dim=1)
    top = probs.topk(top_k, dim=1)
    labels = [[run.class_names[i] for i in row] for row in top.indices.tolist()]
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = ["file"] + [f"{key}_{rank}" for rank in range(1, top_k + 1) for key in ("class", "prob")]
    rows = [[str(file)] + [cell for name, prob in zip(names, probs) for cell in (name, f"{prob:.6g}")]
            for file, names, probs in zip(read, labels, top.values.tolist())]
    write_csv(out / "predictions.csv", header, rows)
    write_csv(out / "failures.csv", ["file", "reason"], failures)
    if layer:
        digits = len(str(len(read) - 1))
        names = [f"{i:0{digits}d}_{file.stem}.png" for i, file in enumerate(read)]
        save_gradcams(run, images, top.indices[:, 0].numpy(), layer, out / "gradcam", names, cfg.image_size)
    print_predictions(rows, len(failures), out)
    Console().print(f"inferred in {run.precision} on {run.device}", highlight=False)
    return {"predicted": len(read), "failures": failures, "output_dir": str(out)}


def print_predictions(rows: Sequence[Sequence[str]], failures: int, out: Path) -> None:
    """The first rows of predictions.csv as a table, then where the files are."""
    table = Table(title=f"top {(len(rows[0]) - 1) // 2} classes" + (f" (first {SHOWN})" if len(rows) > SHOWN else ""))
    table.add_column("file")
    table.add_column("classes")
    for row in rows[:SHOWN]:
        table.add_row(row[0], ", ".join(f"{c} {100 * float(p):.1f} %" for c, p in zip(row[1::2], row[2::2])))
    console = Console()
    console.print(table)
    skipped = f"; {failures} skipped, listed in failures.csv" if failures else ""
    console.print(f"{len(rows)} image{'s' if len(rows) != 1 else ''} predicted{skipped}: {out / 'predictions.csv'}",
                  highlight=False, soft_wrap=True)
