"""The data sources beside CIFAR-10 (:mod:`.arrays`), all ending in the same :class:`~.arrays.ImageArrays`:
CIFAR-100 in torchvision's ``cifar-100-python`` layout (its 100 fine labels), and an ImageFolder tree
(``train/<class>/*``, ``test/<class>/*``, optional ``val/<class>/*``) decoded once into a cache.

An image folder is decoded as the app decodes an upload (:mod:`cifarlab.data.decode`: upright RGB, the
central square box-filtered to ``image_size``) and cached as an ``.npz`` under
``cifarlab.training.precision.cache_dir()/imagefolder/``, named by :func:`folder_fingerprint`: a file added,
removed, rewritten or touched gives a new fingerprint, hence a new cache. Nothing is written into the
data folder.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import CIFAR100

from cifarlab.data.decode import to_cifar, to_rgb
from cifarlab.data.arrays import (ChecksumReport, ImageArrays, check_balance, ensure_pickles, fingerprint,
                                  load_cifar10, read_batch, unpickle, verify_checksums)
from cifarlab.errors import ConfigError, DataError
from cifarlab.training.precision import cache_dir

log = logging.getLogger(__name__)

SOURCES = ("cifar10", "cifar100", "imagefolder")
ON_BAD_IMAGE = ("error", "skip")
SPLITS = ("train", "val", "test")  # val/ is optional
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CIFAR100_CLASSES = 100
CIFAR100_MD5 = dict(CIFAR100.train_list + CIFAR100.test_list + [[CIFAR100.meta["filename"], CIFAR100.meta["md5"]]])
BAD_FILES_SHOWN = 10  # files an error message lists
TRAIN_ORDER_SEED = 0  # the fixed shuffle of an image folder's training images (load_image_folder)


def ensure_cifar100(root: str | Path, download: bool = False) -> Path:
    """Return ``root/cifar-100-python``, downloading it through torchvision's ``CIFAR100`` as
    :func:`~.arrays.ensure_cifar10` does CIFAR-10.

    Raises:
        DataError: see :func:`~.arrays.ensure_pickles`.
    """
    return ensure_pickles(root, CIFAR100, "CIFAR-100", download)


def load_cifar100(root: str | Path, strict_checksum: bool = False, download: bool = False) -> ImageArrays:
    """All of CIFAR-100 under ``root/cifar-100-python`` (``train``, ``test``, ``meta``): images (N, 32, 32, 3)
    uint8, the fine labels (N,) int64 in 0..99 and the 100 ``fine_label_names``.

    Raises:
        DataError: missing, truncated or malformed files; an md5 mismatch with ``strict_checksum``.
    """
    folder = ensure_cifar100(root, download)
    mismatched = verify_checksums(folder, strict_checksum, CIFAR100_MD5, "CIFAR-100")
    train_images, train_labels = read_batch(folder / "train", CIFAR100_CLASSES)
    test_images, test_labels = read_batch(folder / "test", CIFAR100_CLASSES)
    check_balance(train_labels, "training", folder, CIFAR100_CLASSES, "CIFAR-100")
    check_balance(test_labels, "test", folder, CIFAR100_CLASSES, "CIFAR-100")
    meta = unpickle(folder / "meta")
    names = meta.get("fine_label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != CIFAR100_CLASSES:
        raise DataError(f"{folder / 'meta'} has no list of {CIFAR100_CLASSES} fine_label_names. Rebuild the folder.")
    report = ChecksumReport(status="mismatch" if mismatched else "official", mismatched=mismatched,
                            fingerprint=fingerprint(train_images, train_labels, test_images, test_labels))
    return ImageArrays(train_images, train_labels, test_images, test_labels, [str(n) for n in names], report)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path, split: str) -> dict[str, list[Path]]:
    """``root/split``'s class folders -> their image files (sorted), checked.

    Raises:
        DataError: a class folder without images; fewer than 2 classes.
    """
    folder = root / split
    classes = {d.name: _image_files(d) for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DataError(f"{folder} has class folders without images ({', '.join(empty)}): add images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folders")
    if len(classes) < 2:
        raise DataError(f"{folder} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}): "
                        "a classifier needs at least 2, as <split>/<class>/<image files>")
    return classes


def image_folder_listing(root: str | Path) -> dict[str, dict[str, list[Path]]]:
    """The splits of an ImageFolder tree: ``{"train": {class: [files]}, "test": {...}[, "val": {...}]}``,
    classes and files sorted.

    Raises:
        DataError: a missing or empty root, a missing ``train/`` or ``test/``, a class folder without
            images, fewer than 2 classes, class sets that differ between the splits.
    """
    root = Path(root).expanduser()
    layout = "train/<class>/<images> and test/<class>/<images> (optional val/<class>/<images>)"
    if not root.is_dir() or not any(root.iterdir()):
        raise DataError(f"data.root={root} is {'empty' if root.is_dir() else 'not a folder'}: "
                        f"data=imagefolder reads {layout} from it")
    missing = [split for split in ("train", "test") if not (root / split).is_dir()]
    if missing:
        raise DataError(f"{root} has no {' or '.join(s + '/' for s in missing)} folder: data=imagefolder reads {layout}")
    listing = {split: _class_folders(root, split) for split in SPLITS if (root / split).is_dir()}
    classes = list(listing["train"])
    for split, folders in listing.items():
        if list(folders) != classes:
            only_train = sorted(set(classes) - set(folders))
            only_here = sorted(set(folders) - set(classes))
            raise DataError(f"the classes of {root / split} differ from those of {root / 'train'}: "
                            f"only in train/: {only_train or 'none'}; only in {split}/: {only_here or 'none'}. "
                            "Every split needs the same class folders")
    return listing


def folder_fingerprint(root: str | Path, listing: dict[str, dict[str, list[Path]]], image_size: int) -> str:
    """SHA-256 (hex) of the sorted (relative path, size in bytes, mtime in ns) of every listed file, and
    ``image_size``: the name of the tree's cache, which any added, removed, rewritten or touched file changes."""
    root = Path(root).expanduser()
    digest = hashlib.sha256(f"image_size={image_size}\n".encode())
    files = sorted(p for folders in listing.values() for paths in folders.values() for p in paths)
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(root).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def decode_image(path: Path, image_size: int) -> np.ndarray:
    """An image file -> (image_size, image_size, 3) uint8, decoded as an upload is
    (:func:`cifarlab.data.decode.to_rgb`, :func:`~cifarlab.data.decode.to_cifar`).

    Raises:
        OSError, SyntaxError, ValueError, UnidentifiedImageError: an unreadable or truncated file.
    """
    with Image.open(path) as image:
        image.draft(None, (image_size * 2, image_size * 2))  # as open_image: JPEG decoded at a reduced scale
        image.load()
        return to_cifar(to_rgb(image), image_size)


def _decode_split(root: Path, folders: dict[str, list[Path]], image_size: int,
                  bad: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, files in enumerate(folders.values()):
        for path in files:
            try:
                images.append(decode_image(path, image_size))
                labels.append(label)
            except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as err:
                bad.append((path.relative_to(root).as_posix(), f"{type(err).__name__}: {err}"))
    stacked = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    return stacked, np.asarray(labels, dtype=np.int64)


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``path`` atomically (a temporary file renamed), so concurrent ranks never read half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as f:
        np.savez(f, **arrays)
    os.replace(f.name, path)


def cache_path(fingerprint_hex: str) -> Path:
    """Where the arrays of an image folder with this :func:`folder_fingerprint` are cached."""
    return cache_dir() / "imagefolder" / f"{fingerprint_hex}.npz"


def load_image_folder(root: str | Path, image_size: int = 32, on_bad_image: str = "error") -> ImageArrays:
    """An ImageFolder tree (see :func:`image_folder_listing`) as arrays: images (N, image_size, image_size, 3)
    uint8, labels (N,) int64 indexing the class folders' sorted names; ``val/`` (if any) as the
    validation split. Decoded once, then read from :func:`cache_path`. The training images come in one fixed
    shuffled order (:data:`TRAIN_ORDER_SEED`), as CIFAR-10's batches do, so that ``data.val_size`` (the last N)
    and ``data.subset`` (the first N) hold every class, not the last or the first folders.

    ``on_bad_image``: ``error`` raises on files that cannot be decoded, ``skip`` leaves them out, logs them
    and lists them in the report's ``skipped``.

    Raises:
        DataError: see :func:`image_folder_listing`; unreadable or truncated files with ``on_bad_image=error``
            (the message lists them); a split left without images.
    """
    root = Path(root).expanduser()
    listing = image_folder_listing(root)
    class_names = list(listing["train"])
    path = cache_path(folder_fingerprint(root, listing, image_size))
    if path.is_file():
        with np.load(path) as cached:
            arrays = {key: cached[key] for key in cached.files}
        log.info("image folder %s read from its cache %s", root, path)
    else:
        bad: list[tuple[str, str]] = []
        arrays = {}
        for split, folders in listing.items():
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = _decode_split(root, folders, image_size, bad)
        arrays["skipped"] = np.asarray([name for name, _ in bad], dtype=str)
        if bad and on_bad_image == "error":
            shown = "; ".join(f"{name} ({why})" for name, why in bad[:BAD_FILES_SHOWN])
            more = f" and {len(bad) - BAD_FILES_SHOWN} more" if len(bad) > BAD_FILES_SHOWN else ""
            raise DataError(f"{len(bad)} file(s) under {root} cannot be read as images: {shown}{more}. "
                            "Replace or remove them, or set data.on_bad_image=skip to train without them")
        _write_cache(path, arrays)
        log.info("image folder %s decoded to %d x %d and cached in %s", root, image_size, image_size, path)
    skipped = [str(name) for name in arrays["skipped"]]
    if skipped and on_bad_image == "error":
        raise DataError(f"{len(skipped)} file(s) under {root} cannot be read as images: "
                        f"{', '.join(skipped[:BAD_FILES_SHOWN])}. Replace or remove them, or set data.on_bad_image=skip")
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s: %s", len(skipped), root, ", ".join(skipped))
    for split in listing:
        if not len(arrays[f"{split}_labels"]):
            raise DataError(f"{root / split} has no readable image: every file was skipped")
    has_val = "val_images" in arrays
    order = np.random.default_rng(TRAIN_ORDER_SEED).permutation(len(arrays["train_labels"]))
    arrays["train_images"], arrays["train_labels"] = arrays["train_images"][order], arrays["train_labels"][order]
    report = ChecksumReport(status="unchecked", skipped=skipped, fingerprint=fingerprint(
        *(arrays[f"{split}_{kind}"] for split in listing for kind in ("images", "labels"))))
    return ImageArrays(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"],
                       class_names, report, arrays["val_images"] if has_val else None,
                       arrays["val_labels"] if has_val else None)


def prepare(root: str | Path, source: str, download: bool = False) -> None:
    """What a DataModule's ``prepare_data`` does: fetch CIFAR-10 or CIFAR-100 when missing (``download``);
    nothing for an image folder (it is read, and cached, by :func:`load_arrays`).

    Raises:
        DataError: see :func:`~.arrays.ensure_pickles`.
    """
    if source == "cifar10":
        ensure_pickles(root, download=download)
    elif source == "cifar100":
        ensure_cifar100(root, download)


def load_arrays(root: str | Path, source: str = "cifar10", image_size: int = 32, on_bad_image: str = "error",
                strict_checksum: bool = False, download: bool = False) -> ImageArrays:
    """The arrays of ``source`` at ``root``: ``cifar10`` (:func:`~.arrays.load_cifar10`), ``cifar100``
    (:func:`load_cifar100`) or ``imagefolder`` (:func:`load_image_folder`, the only one that takes
    ``image_size`` and ``on_bad_image``; the CIFARs are 32 x 32).

    Raises:
        ConfigError: an unknown ``source`` or ``on_bad_image``, or a CIFAR with ``image_size`` other than 32.
        DataError: see the loader of ``source``.
    """
    check_source(source, image_size, on_bad_image)
    if source == "cifar10":
        return load_cifar10(root, strict_checksum, download)
    if source == "cifar100":
        return load_cifar100(root, strict_checksum, download)
    return load_image_folder(root, image_size, on_bad_image)


def check_source(source: str, image_size: int, on_bad_image: str) -> None:
    """Check the data source's arguments before anything is read.

    Raises:
        ConfigError: an unknown ``source`` or ``on_bad_image``; a non-positive ``image_size``, or one other
            than 32 for CIFAR-10/100.
    """
    if source not in SOURCES:
        raise ConfigError(f"data.source={source!r} is not one of {', '.join(SOURCES)}")
    if on_bad_image not in ON_BAD_IMAGE:
        raise ConfigError(f"data.on_bad_image={on_bad_image!r} is not one of {', '.join(ON_BAD_IMAGE)}")
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ConfigError(f"data.image_size must be a positive integer, got {image_size!r}")
    if source != "imagefolder" and image_size != 32:
        raise ConfigError(f"data.image_size={image_size}: {source}'s images are 32 x 32 (only data=imagefolder resizes)")
