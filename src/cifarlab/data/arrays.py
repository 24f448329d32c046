"""CIFAR-10 in torchvision's ``cifar-10-batches-py`` layout, read into memory once; the arrays every
data source ends in (:class:`ImageArrays`), and the pickle reading CIFAR-100 shares (:mod:`.sources`).

Batches are read with a restricted unpickler (:class:`BatchUnpickler`) that admits only what a
CIFAR batch holds, because evaluate.py and the app read a data folder that a checkpoint names.

The five training batches and the test batch are unpickled into uint8 arrays of shape
(N, 32, 32, 3) (HWC, as albumentations expects) with int64 labels (N,). Files are checked
against torchvision's official md5s: a mismatch with well-formed batches is a warning (the
copy in ``../shared/data`` is a JPEG re-encode and mismatches), recorded in the run's
``metrics.json`` together with a fingerprint of the arrays; ``strict_checksum=True`` makes
it an error. Malformed or truncated batches are always an error.
"""
from __future__ import annotations

import hashlib
import logging
import pickle
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from cifarlab.errors import DataError

log = logging.getLogger(__name__)

BASE_FOLDER = CIFAR10.base_folder  # "cifar-10-batches-py"
TRAIN_FILES = [name for name, _ in CIFAR10.train_list]
TEST_FILES = [name for name, _ in CIFAR10.test_list]
META_FILE = CIFAR10.meta["filename"]
OFFICIAL_MD5 = dict(CIFAR10.train_list + CIFAR10.test_list + [[META_FILE, CIFAR10.meta["md5"]]])
DOWNLOAD_HOST = ("www.cs.toronto.edu", 443)  # where torchvision downloads CIFAR-10 from
IMAGE_BYTES = 3 * 32 * 32
DATASET_OF_FOLDER = {BASE_FOLDER: "CIFAR-10", "cifar-100-python": "CIFAR-100"}


@dataclass
class ChecksumReport:
    """What identifies the data a run saw: ``status`` is ``"official"`` or ``"mismatch"`` (the md5 check of
    CIFAR-10 and CIFAR-100) or ``"unchecked"`` (an image folder, which has no official md5s);
    ``fingerprint`` is :func:`fingerprint` of the arrays; ``skipped`` lists the image files that could not be
    read and were left out (``data.on_bad_image=skip``), relative to the data root."""

    status: str
    mismatched: list[str] = field(default_factory=list)
    fingerprint: str = ""
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageArrays:
    """The whole dataset in memory: images (N, S, S, 3) uint8 (S = 32 for CIFAR), labels (N,) int64 in
    ``0 .. len(class_names) - 1``. ``val_images``/``val_labels``: a validation split of its own (an image
    folder's ``val/``), else None."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: list[str]
    checksum: ChecksumReport
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None


CIFAR10Arrays = ImageArrays  # the name older code imports


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only what a CIFAR batch holds: dicts, lists, str, bytes, numbers
    and numpy arrays. Any other global (``os.system``, ``builtins.eval``, ...) raises
    ``pickle.UnpicklingError`` before anything runs."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR batch holds no such object")
        return super().find_class(module, name)


def unpickle(path: Path) -> dict:
    """A CIFAR pickle, read with :class:`BatchUnpickler`.

    Raises:
        DataError: a truncated file or one that is no CIFAR pickle (names the file and what to do).
    """
    try:
        with path.open("rb") as f:
            return BatchUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, UnicodeDecodeError, AttributeError, IndexError) as err:
        raise DataError(
            f"{path} is truncated or not a {DATASET_OF_FOLDER.get(path.parent.name, 'CIFAR')} pickle "
            f"({type(err).__name__}: {err}). "
            f"Delete the {path.parent.name} folder and download it again (data.download=true), or rebuild it from your copy."
        ) from err


def read_batch(path: Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images (n, 32, 32, 3) uint8, labels (n,) int64 (``labels``, or CIFAR-100's
    ``fine_labels``), checked for shape and for labels in 0 .. num_classes - 1.

    Raises:
        DataError: a malformed batch (names the file).
    """
    entry = unpickle(path)
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) else None
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"{path} has no 'data' array and 'labels' list: not a CIFAR batch. Rebuild the folder.")
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != IMAGE_BYTES or len(data) != len(labels):
        raise DataError(
            f"{path} is malformed: data {data.dtype}{list(data.shape)} with {len(labels)} labels, expected "
            f"uint8[n, {IMAGE_BYTES}] with n labels. Rebuild the folder."
        )
    if len(labels) and (labels.min() < 0 or labels.max() > num_classes - 1):
        raise DataError(f"{path} has labels outside 0..{num_classes - 1} ({labels.min()}..{labels.max()}). "
                        "Rebuild the folder.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def check_balance(labels: np.ndarray, split: str, folder: Path, num_classes: int = 10, name: str = "CIFAR-10") -> None:
    """Every one of ``num_classes`` classes present in ``labels`` (n,) int64, equally often.

    Raises:
        DataError: otherwise (names the split, the folder and the counts).
    """
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() == 0 or counts.min() != counts.max():
        raise DataError(
            f"the {split} split in {folder} is not {name}: per-class counts {counts.tolist()} "
            f"(expected {num_classes} classes of equal size). Rebuild the folder."
        )


def fingerprint(*arrays: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of the arrays' bytes: identifies the pixels and labels a run saw."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _network_reachable(timeout_s: float = 3.0) -> bool:
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=timeout_s).close()
        return True
    except OSError:
        return False


def ensure_pickles(root: str | Path, dataset: type[CIFAR10] = CIFAR10, name: str = "CIFAR-10",
                   download: bool = False) -> Path:
    """Return ``root/<dataset.base_folder>``; with ``download``, fetch it through torchvision's ``dataset``
    (``CIFAR10`` or ``CIFAR100``) when files are missing and the download host is reachable.

    Raises:
        DataError: files are missing and downloading is off, no network is reachable, or the
            download failed; the message names the path and how to provide the data.
    """
    folder = Path(root).expanduser() / dataset.base_folder
    official = dict(dataset.train_list + dataset.test_list + [[dataset.meta["filename"], dataset.meta["md5"]]])
    missing = [file for file in official if not (folder / file).is_file()]
    if not missing:
        return folder
    how = (
        f"Put {dataset.base_folder}/ under data/ in the checkout, or set CIFARLAB_DATA to the folder that holds it "
        "(conf/local/README.md; data.root=... for one run); or run once with data.download=true where "
        "https://www.cs.toronto.edu is reachable."
    )
    if not download:
        raise DataError(f"{name} not found: {folder} lacks {', '.join(missing)}. {how}")
    if not _network_reachable():
        raise DataError(f"{name} not found: {folder} lacks {', '.join(missing)} and no network is reachable. {how}")
    log.info("%s missing under %s: downloading through torchvision", name, folder)
    try:
        dataset(str(Path(root).expanduser()), train=True, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError (bad md5) or OSError
        raise DataError(f"downloading {name} into {folder} failed: {err}. {how}") from err
    return folder


def ensure_cifar10(root: str | Path, download: bool = False) -> Path:
    """Return ``root/cifar-10-batches-py``: :func:`ensure_pickles` of CIFAR-10.

    Raises:
        DataError: see :func:`ensure_pickles`.
    """
    return ensure_pickles(root, CIFAR10, "CIFAR-10", download)


def verify_checksums(folder: Path, strict: bool, official: dict[str, str] = OFFICIAL_MD5,
                     name: str = "CIFAR-10") -> list[str]:
    """Names of the files whose md5 differs from the ``official`` ones (file name -> md5; torchvision's).

    Raises:
        DataError: with ``strict`` and any mismatch.
    """
    mismatched = [file for file, md5 in official.items() if _md5(folder / file) != md5]
    if mismatched and strict:
        raise DataError(
            f"md5 of {', '.join(mismatched)} in {folder} differs from the official {name} release "
            "and data.strict_checksum=true. Use the official files, or set data.strict_checksum=false "
            "to train on this copy (the mismatch is then recorded in metrics.json)."
        )
    if mismatched:
        log.warning(
            "md5 of %s in %s differs from the official %s release (a re-encoded or modified copy); "
            "training on it and recording the mismatch in metrics.json", ", ".join(mismatched), folder, name,
        )
    return mismatched


def load_cifar10(root: str | Path, strict_checksum: bool = False, download: bool = False) -> ImageArrays:
    """Read all of CIFAR-10 under ``root`` into memory (about 180 MB, ~1 s); ``download`` as in
    :func:`ensure_cifar10`.

    Raises:
        DataError: missing, truncated or malformed files; an md5 mismatch with ``strict_checksum``.
    """
    folder = ensure_cifar10(root, download)
    mismatched = verify_checksums(folder, strict_checksum)
    train = [read_batch(folder / name) for name in TRAIN_FILES]
    test_images, test_labels = read_batch(folder / TEST_FILES[0])
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    check_balance(train_labels, "training", folder)
    check_balance(test_labels, "test", folder)
    meta = unpickle(folder / META_FILE)
    report = ChecksumReport(
        status="mismatch" if mismatched else "official",
        mismatched=mismatched,
        fingerprint=fingerprint(train_images, train_labels, test_images, test_labels),
    )
    return ImageArrays(train_images, train_labels, test_images, test_labels, list(meta["label_names"]), report)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images (N, H, W, 3), in pixel/255 units.

    Exact: computed from each channel's 256-bin histogram, so no float copy of the data is made.
    """
    means, stds = [], []
    levels = np.arange(256, dtype=np.float64)
    for c in range(images.shape[-1]):
        hist = np.bincount(images[..., c].ravel(), minlength=256).astype(np.float64)
        mean = (hist * levels).sum() / hist.sum()
        var = (hist * (levels - mean) ** 2).sum() / hist.sum()
        means.append(float(mean / 255.0))
        stds.append(float(np.sqrt(var) / 255.0))
    return means, stds


