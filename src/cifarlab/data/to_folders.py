"""CIFAR-10 as an ImageFolder tree of PNGs, the layout ``data=imagefolder`` reads::

    python -m cifarlab.data.to_folders <folder holding cifar-10-batches-py> <out>

writes ``<out>/train/<class>/<index>.png`` and ``<out>/test/<class>/<index>.png`` (``index``: the image's
position in its split, zero-padded to 5 digits so that the files sort in the split's order).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from cifarlab.data.arrays import load_cifar10
from cifarlab.errors import DataError, exit_on_user_error


def write_split(images: np.ndarray, labels: np.ndarray, class_names: list[str], folder: Path) -> None:
    """Write images (N, H, W, 3) uint8 with labels (N,) int64 as ``folder/<class>/<index>.png``."""
    for name in class_names:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / class_names[label] / f"{index:05d}.png")


def to_folders(root: str | Path, out: str | Path) -> Path:
    """Write CIFAR-10 at ``root`` (see :func:`~cifarlab.data.arrays.load_cifar10`) as PNGs under ``out``;
    returns ``out``.

    Raises:
        DataError: ``out`` exists and is not an empty folder; see :func:`~cifarlab.data.arrays.load_cifar10`.
    """
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not an empty folder: give a new or empty output folder")
    arrays = load_cifar10(root)
    write_split(arrays.train_images, arrays.train_labels, arrays.class_names, out / "train")
    write_split(arrays.test_images, arrays.test_labels, arrays.class_names, out / "test")
    return out


def main(argv: list[str] | None = None) -> None:
    """The command line: ``python -m cifarlab.data.to_folders <cifar10 root> <out>``; a user error exits 2."""
    parser = argparse.ArgumentParser(prog="python -m cifarlab.data.to_folders", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the folder holding cifar-10-batches-py/")
    parser.add_argument("out", help="a new or empty folder for train/<class>/*.png and test/<class>/*.png")
    args = parser.parse_args(argv)
    with exit_on_user_error():
        out = to_folders(args.root, args.out)
    print(f"wrote {out}/train and {out}/test (data=imagefolder data.root={out})")


if __name__ == "__main__":
    main()
