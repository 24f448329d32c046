"""A trained run, read once: a ``train.py`` run dir (its layout: :class:`cifarlab.runs.rundir.RunDir`)
and the checkpoint it tested. Its model is the training's own
:class:`~cifarlab.module.ImageClassifier`, and :meth:`TrainedRun.predict` calls the forward train.py's test
calls (uint8 in, logits out, the same TTA): ``evaluate.py``, ``compare.py``, ``predict.py`` and the app
go through it. What the run dir records without its checkpoint is :meth:`cifarlab.runs.rundir.RunDir.read_record`."""
from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from cifarlab.training.precision import best_precision, cpu_precision
from cifarlab.errors import CifarlabError, ConfigError, DataError
from cifarlab.module import ImageClassifier
from cifarlab.runs.result import TrainResult
from cifarlab.runs.rundir import RunDir
from cifarlab.tta import TTA_MODES

if TYPE_CHECKING:
    from cifarlab.data import ImageArrays

log = logging.getLogger(__name__)

PRECISIONS = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def inference_precision(trained: str | None, device: torch.device) -> str:
    """The precision to infer in on ``device``: on a GPU the one the run trained in (else the GPU's best); on a CPU
    the one this CPU runs fast (:func:`cifarlab.training.precision.cpu_precision`, measured once and cached), whatever the
    run trained in: a run trained in bf16 on a CPU with AMX runs 17x slower under bf16 autocast on one without
    bf16 (AMD Zen 3), and fp32 is 3-4x slower than bf16 where AMX is."""
    if device.type == "cpu":
        return cpu_precision()
    return trained or best_precision()


class TrainedRun:
    """A ``train.py`` run dir (the checkpoint it tested) or a ``.ckpt`` file, read once.

    Args:
        path: a run dir, or a ``.ckpt`` file (its run dir: the folder above ``checkpoints/``).
        data_root: the data folder (``data.root``: the one holding ``cifar-10-batches-py/``, ``cifar-100-python/``
            or an image folder's ``train/`` and ``test/``); None: the one training used.
        precision: ``32-true`` | ``bf16-mixed`` | ``16-mixed``, pinned (give train.py's own, from its
            ``metrics.json``, for bit-exact agreement with its numbers); None: the one this machine runs fast
            (:func:`inference_precision`), which is logged when it differs from train.py's.
        device: where the model runs; None: CUDA when available, else the CPU.

    Attributes: ``run_dir`` (None for a .ckpt outside a run), ``ckpt_path``, ``sha256`` of the
    checkpoint file, ``hparams`` (the LightningModule's), ``data_hparams`` (the data module's:
    ``root``, ``source``, ``image_size``, ``val_size``, ``subset``, ``seed``...; empty when not recorded),
    ``source`` and ``image_size`` (the data's: ``cifar10`` and 32 for runs that record none), ``net_target``, ``class_names``,
    ``record`` (the run dir's :class:`~cifarlab.runs.rundir.RunRecord`, None for a .ckpt outside a run), ``train_metrics``
    (train's ``metrics.json``, a :class:`~cifarlab.runs.result.TrainResult`, or None), ``precision`` (the one used here),
    ``trained_precision`` (train.py's, or None), ``data_root``, ``device``,
    ``model`` (the :class:`~cifarlab.module.ImageClassifier` training built, with the checkpoint's
    weights, fp32, eval mode: uint8 images in, logits out) and ``net`` (the network in it).

    The tested checkpoint is ``tested_checkpoint.path`` of ``metrics.json``, relative to the
    run dir; an absolute one (older runs) outside the run dir, a run without ``metrics.json``
    (unfinished) and any other fallback to ``checkpoints/last.ckpt`` are logged as warnings.

    Raises:
        CifarlabError: nothing at ``path``; no checkpoint; not a readable cifarlab checkpoint;
            weights that do not fit the network its hyperparameters describe.
        ConfigError: an unsupported precision.
    """

    def __init__(self, path: str | Path, data_root: str | Path | None = None, precision: str | None = None,
                 device: str | torch.device | None = None) -> None:
        path = Path(path).expanduser()
        if not path.exists():
            raise CifarlabError(f"ckpt_path={path} does not exist: give a .ckpt file or a run dir of train.py "
                                "(outputs/<task>/runs/<time>_<id>)")
        layout = RunDir(path) if path.is_dir() else RunDir.of_checkpoint(path)
        self.run_dir = layout.path if layout else None
        self.record = layout.read_record() if layout else None
        self.train_metrics: TrainResult | None = self.record.metrics if self.record else None
        if path.is_dir() and self.train_metrics is None:
            log.warning("%s has no metrics.json: the run did not finish (or is still running); "
                        "using its last checkpoint, which train.py did not test", path)
        self.ckpt_path = path if path.is_file() else self._tested_checkpoint()
        data = self.ckpt_path.read_bytes()  # once: hashed (it identifies the weights of a report), then loaded
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError...
            raise CifarlabError(f"{self.ckpt_path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                                "pick another .ckpt from the run's checkpoints/ folder") from err
        self.hparams: dict = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if not {"net", "class_names"} <= set(self.hparams):
            raise CifarlabError(f"{self.ckpt_path} was not written by cifarlab's train.py (no network spec and "
                                "class names in its hyperparameters)")
        self.net_target: str = self.hparams["net"]["_target_"]
        self.class_names: list[str] = list(self.hparams["class_names"])
        self.data_hparams: dict = dict(ckpt.get("datamodule_hyper_parameters") or {})
        self.source: str = self.data_hparams.get("source", "cifar10")
        self.image_size: int = int(self.data_hparams.get("image_size", 32))
        root = data_root or self.data_hparams.get("root")
        self.data_root = Path(root).expanduser() if root else None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.trained_precision = self.train_metrics.precision if self.train_metrics else None
        self.precision = precision or inference_precision(self.trained_precision, self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is not supported here: use one of {', '.join(PRECISIONS)}")
        if precision is None and self.trained_precision not in (None, self.precision):
            log.warning("inferring in %s, the precision this machine runs fast; the run trained in %s "
                        "(precision=%s reproduces train.py's numbers exactly)", self.precision, self.trained_precision,
                        self.trained_precision)
        self.model = ImageClassifier(**self.hparams)
        try:
            self.model.load_state_dict(ckpt["state_dict"])
        except RuntimeError as err:  # missing keys / size mismatch
            raise CifarlabError(f"the weights in {self.ckpt_path} do not fit the {self.net_name} its hyperparameters "
                                f"describe ({str(err).splitlines()[0]}); the checkpoint is damaged or edited") from err
        self.model = self.model.float().eval().to(self.device)
        self.net = self.model.net

    def _tested_checkpoint(self) -> Path:
        layout = RunDir(self.run_dir)
        last = layout.last_checkpoint
        recorded = self.train_metrics.tested_checkpoint.path if self.train_metrics else None
        if recorded:
            recorded = Path(recorded)
            local = self.run_dir / recorded if not recorded.is_absolute() else layout.checkpoints / recorded.name
            if local.is_file():
                if recorded.is_absolute() and local.resolve() != recorded.resolve():
                    log.warning("metrics.json names the tested checkpoint %s, outside this run dir (a moved or "
                                "copied run): using %s", recorded, local)
                return local
            log.warning("the tested checkpoint %s that metrics.json names is not in %s: using %s",
                        recorded, self.run_dir, last)
        elif self.train_metrics is not None:
            log.warning("metrics.json of %s names no tested checkpoint: using %s", self.run_dir, last)
        if not last.is_file():
            raise CifarlabError(f"{self.run_dir} holds no checkpoint (no checkpoints/last.ckpt): was the run stopped "
                                "before its first epoch ended, or run with trainer.fast_dev_run?")
        return last

    @property
    def net_name(self) -> str:
        """The network's class name, e.g. ``CustomResNet``."""
        return self.net_target.rsplit(".", 1)[-1]

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500, tta: str = "none") -> torch.Tensor:
        """Logits (N, C) float32 on the CPU of images (N, 3, S, S) or (N, S, S, 3) uint8 (numpy
        or torch), in batches, in the run's precision (autocast for ``*-mixed``), under test-time
        augmentation ``tta`` (``none`` | ``flip`` | ``flip_translate``): the model's forward, as
        train.py's test runs it.

        Raises:
            ValueError: images that are not a uint8 batch, or an unknown ``tta``.
        """
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or tta not in TTA_MODES:
            raise ValueError(f"predict takes a (N, 3, H, W) or (N, H, W, 3) uint8 batch and tta "
                             f"{' | '.join(TTA_MODES)}, got {images.dtype} {tuple(images.shape)}, tta={tta!r}")
        images = images if images.shape[1] == 3 else images.permute(0, 3, 1, 2)
        dtype = PRECISIONS[self.precision]
        chunks = [torch.zeros(0, len(self.class_names))]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            for batch in images.split(batch_size):
                batch = batch.to(self.device)
                chunks.append(self.model(batch, tta).float().cpu())
        return torch.cat(chunks)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The test set of the run's data source at ``data_root``: images (N, S, S, 3) uint8 (S: ``image_size``),
        labels (N,) int64 indexing ``class_names``.

        Raises:
            DataError: no data root known, or no data there (the message says to pass ``data.root=``);
                malformed files (see :func:`cifarlab.data.load_arrays`).
        """
        arrays = self._arrays()
        return arrays.test_images, arrays.test_labels

    def held_out_set(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The validation split training held out: with ``data.val_size=N > 0`` the last N of the
        training images (as :class:`~cifarlab.data.ImageDataModule` splits them), with an image folder's
        ``val/`` its images; images (N, S, S, 3) uint8 and labels (N,) int64 from ``data_root``; None when
        the run validated on the test set (``val_size=0`` without ``val/``, or a checkpoint that records no
        data module).

        Raises:
            DataError: as :meth:`test_set`.
        """
        n = int(self.data_hparams.get("val_size") or 0)
        if n == 0 and self.source != "imagefolder":
            return None
        arrays = self._arrays()
        if arrays.val_images is not None:
            return arrays.val_images, arrays.val_labels
        return (arrays.train_images[-n:], arrays.train_labels[-n:]) if n else None

    def _arrays(self) -> ImageArrays:
        """All of the run's data at ``data_root`` (see :meth:`test_set`), checked against its classes.

        Raises:
            DataError: as :meth:`test_set`; data whose classes are not the run's.
        """
        from cifarlab.data import load_arrays

        if self.data_root is None:
            raise DataError("the checkpoint records no data root: pass data.root=<the folder training read>")
        try:
            arrays = load_arrays(self.data_root, self.source, self.image_size,
                                 self.data_hparams.get("on_bad_image", "error"))
        except DataError as err:
            name = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}.get(self.source, "image-folder")
            raise DataError(f"no {name} test set at {self.data_root} (data={self.source}, as the run trained): "
                            f"pass data.root=<the folder training read>. {err}") from err
        if arrays.class_names != self.class_names:
            raise DataError(f"the classes at {self.data_root} ({', '.join(arrays.class_names[:12])}...) are not the "
                            f"run's ({', '.join(self.class_names[:12])}...): pass data.root=<the folder training read>")
        return arrays

    def scalars(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every scalar of the run's TensorBoard events: name -> (steps, values); empty without events."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for events in sorted(RunDir(self.run_dir).tensorboard.glob("**/events.out.tfevents.*")) if self.run_dir else []:
            acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                points = acc.Scalars(tag)
                series[tag] = (np.array([p.step for p in points]), np.array([p.value for p in points]))
        return series
