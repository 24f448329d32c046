"""A trained run, read once: the one place that knows the layout of a ``train.py`` run dir.

```
<run dir>/metrics.json       train's results; ``tested_checkpoint.path`` names the weights it tested
<run dir>/checkpoints/*.ckpt last.ckpt, epochNNN-val_accX.XXXX.ckpt
<run dir>/tensorboard/       the logged scalars
```

:class:`Run` reads the checkpoint file once (``torch.load(weights_only=True)``), rebuilds the
network from its hyperparameters and wraps it with the normalisation it was trained with, so
that callers pass uint8 images. :meth:`Run.predict` is the one path from weights to logits:
``evaluate.py``, flip TTA and the app go through it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from torch import nn

from cifarlab.config import best_precision
from cifarlab.errors import CifarlabError, ConfigError, DataError

log = logging.getLogger(__name__)

PRECISIONS = {"32-true": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class NormalisedClassifier(nn.Module):
    """``net`` behind the normalisation it was trained with: uint8 images in, logits out.

    Args:
        net: a network taking (N, 3, 32, 32) float32 normalised images.
        mean, std: per-channel training statistics in pixel/255 units.
        channels_last: run ``net`` in NHWC memory format, as it was trained.

    ``forward``: (N, 3, H, W) or (N, H, W, 3) uint8 -> (N, C) logits.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], channels_last: bool) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.channels_last = channels_last
        # The arithmetic of albumentations' Normalize (training's): (x - 255 mean) * (1 / (255 std)) in float32.
        self.register_buffer("shift", (torch.tensor(mean, dtype=torch.float32) * 255).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.reciprocal(torch.tensor(std, dtype=torch.float32) * 255).view(1, 3, 1, 1))

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) or (N, H, W, 3) uint8 -> (N, 3, H, W) float32, as the network saw in training."""
        if images.shape[1] != 3 and images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        x = (images.float() - self.shift) * self.scale
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(images))


class Run:
    """A ``train.py`` run dir (its tested checkpoint) or a ``.ckpt`` file, read once.

    Args:
        path: a run dir, or a ``.ckpt`` file (its run dir is the folder above ``checkpoints/``).
        data_root: folder holding ``cifar-10-batches-py/``; None: the ``data.root`` training used.
        precision: ``32-true`` | ``bf16-mixed`` | ``16-mixed``; None: the one train.py tested with
            (its ``metrics.json``), else this machine's best.
        device: where the model runs; None: CUDA when available, else the CPU.

    Attributes: ``run_dir`` (Path or None), ``ckpt_path``, ``sha256`` (of the checkpoint file),
    ``hparams`` (the LightningModule's saved hyperparameters), ``net_target`` (the network's
    ``_target_``), ``class_names``, ``train_metrics`` (train's ``metrics.json``, or None),
    ``precision``, ``data_root`` (Path or None), ``device``, ``model`` (a
    :class:`NormalisedClassifier` in eval mode, fp32) and ``net`` (the network inside it).

    A run dir without ``metrics.json`` (unfinished, or still running) and a tested checkpoint
    that is not where ``metrics.json`` says are logged as warnings, with the file used instead.

    Raises:
        CifarlabError: nothing at ``path``; no checkpoint; a file that is not a readable cifarlab
            checkpoint; weights that do not fit the network its hyperparameters describe.
        ConfigError: an unsupported precision.
    """

    def __init__(self, path: str | Path, data_root: str | Path | None = None, precision: str | None = None,
                 device: str | torch.device | None = None) -> None:
        path = Path(path).expanduser()
        if path.is_dir():
            self.run_dir: Path | None = path
            self.train_metrics = self._read_metrics(path)
            self.ckpt_path = self._tested_checkpoint(path, self.train_metrics)
        elif path.is_file():
            self.run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
            metrics = self.run_dir / "metrics.json" if self.run_dir else None
            self.train_metrics = json.loads(metrics.read_text()) if metrics and metrics.is_file() else None
            self.ckpt_path = path
        else:
            raise CifarlabError(f"ckpt_path={path} does not exist: give a .ckpt file or a run dir of train.py "
                                "(outputs/<task>/runs/<time>_<id>)")
        ckpt = self._read_checkpoint(self.ckpt_path)
        self.hparams: dict = ckpt["hyper_parameters"]
        self.net_target: str = self.hparams["net"]["_target_"]
        self.class_names: list[str] = list(self.hparams["class_names"])
        root = data_root or ckpt.get("datamodule_hyper_parameters", {}).get("root") or \
            (self.train_metrics or {}).get("data", {}).get("root")
        self.data_root = Path(root).expanduser() if root else None
        self.precision = precision or (self.train_metrics or {}).get("precision") or best_precision()
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} is not supported here: use one of {', '.join(PRECISIONS)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = self._build_model(ckpt["state_dict"])
        self.net = self.model.net

    @staticmethod
    def _read_metrics(run_dir: Path) -> dict | None:
        metrics = run_dir / "metrics.json"
        if metrics.is_file():
            return json.loads(metrics.read_text())
        log.warning("%s has no metrics.json: the run did not finish (or is still running); "
                    "using its last checkpoint, which train.py did not test", run_dir)
        return None

    @staticmethod
    def _tested_checkpoint(run_dir: Path, metrics: dict | None) -> Path:
        """``tested_checkpoint.path`` of ``metrics.json`` relative to the run dir; an absolute one
        (older runs) that is not inside the run dir falls back to the same file name in its
        ``checkpoints/``; no metrics or no path: ``checkpoints/last.ckpt``."""
        last = run_dir / "checkpoints" / "last.ckpt"
        recorded = ((metrics or {}).get("tested_checkpoint") or {}).get("path")
        if recorded:
            recorded = Path(recorded)
            local = run_dir / recorded if not recorded.is_absolute() else run_dir / "checkpoints" / recorded.name
            if local.is_file():
                if recorded.is_absolute() and local.resolve() != recorded.resolve():
                    log.warning("metrics.json names the tested checkpoint %s, outside this run dir (a moved or "
                                "copied run): using %s", recorded, local)
                return local
            log.warning("metrics.json names the tested checkpoint %s, which is not in %s: using %s",
                        recorded, run_dir, last)
        elif metrics is not None:
            log.warning("metrics.json of %s names no tested checkpoint: using %s", run_dir, last)
        if last.is_file():
            return last
        raise CifarlabError(f"{run_dir} holds no checkpoint (no checkpoints/last.ckpt): was the run stopped before "
                            "its first epoch ended, or run with trainer.fast_dev_run?")

    def _read_checkpoint(self, path: Path) -> dict:
        data = path.read_bytes()  # once: hashed (identifies the weights of a report) and loaded
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError...
            raise CifarlabError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                                "pick another .ckpt from the run's checkpoints/ folder") from err
        hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
        if not {"net", "mean", "std", "class_names"} <= set(hparams):
            raise CifarlabError(f"{path} was not written by cifarlab's train.py (no network spec, normalisation "
                                "and class names in its hyperparameters)")
        return ckpt

    def _build_model(self, state_dict: dict) -> NormalisedClassifier:
        net = instantiate(self.hparams["net"])
        weights = {k.removeprefix("net."): v for k, v in state_dict.items() if k.startswith("net.")}
        try:
            net.load_state_dict(weights)
        except RuntimeError as err:  # missing keys / size mismatch
            raise CifarlabError(f"the weights in {self.ckpt_path} do not fit the {self.net_name} its hyperparameters "
                                f"describe ({str(err).splitlines()[0]}); the checkpoint is damaged or was edited") from err
        model = NormalisedClassifier(net, self.hparams["mean"], self.hparams["std"],
                                     bool(self.hparams.get("channels_last", False)))
        return model.float().eval().to(self.device)

    @property
    def net_name(self) -> str:
        """The network's class name, e.g. ``CustomResNet``."""
        return self.net_target.rsplit(".", 1)[-1]

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context that runs the model in the run's precision (autocast for ``*-mixed``)."""
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500, tta: str = "none") -> torch.Tensor:
        """Logits of ``images`` in the run's precision, in batches of ``batch_size``.

        Args:
            images: (N, 3, 32, 32) or (N, 32, 32, 3) uint8, numpy or torch, on any device.
            tta: ``none``, or ``flip``: the mean of the logits of each image and its mirror
                image (airbench's ``infer``, tta_level 1).

        Returns:
            (N, C) float32 logits on the CPU.

        Raises:
            ValueError: images that are not uint8, or an unknown ``tta``.
        """
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"predict takes (N, 3, H, W) or (N, H, W, 3) uint8 images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if tta not in ("none", "flip"):
            raise ValueError(f"tta={tta!r} must be 'none' or 'flip'")
        if images.shape[1] != 3:
            images = images.permute(0, 3, 1, 2)
        chunks = []
        with torch.inference_mode(), self.autocast():
            for batch in images.split(batch_size):
                batch = batch.to(self.device)
                logits = self.model(batch).float()
                if tta == "flip":
                    logits = (logits + self.model(batch.flip(-1)).float()) / 2
                chunks.append(logits.cpu())
        return torch.cat(chunks) if chunks else torch.zeros(0, len(self.class_names))

    def criterion(self, logits: torch.Tensor, labels: torch.Tensor) -> float:
        """Training's loss (its ``loss`` spec, label smoothing included) of (N, C) logits and (N,) labels."""
        loss = instantiate(self.hparams["loss"]) if "loss" in self.hparams else nn.CrossEntropyLoss()
        return float(loss(logits.float(), labels))

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The CIFAR-10 test set at ``data_root``: images (N, 32, 32, 3) uint8, labels (N,) int64.

        Raises:
            DataError: no data root known or no test set there (the message says to pass
                ``data_root=``); malformed files (see :func:`cifarlab.data.load_cifar10`).
        """
        from cifarlab.data import BASE_FOLDER, load_cifar10

        folder = self.data_root / BASE_FOLDER if self.data_root else None
        if folder is None or not (folder / "test_batch").is_file():
            where = f"at {folder}" if folder else "recorded in the checkpoint"
            raise DataError(f"no CIFAR-10 test set {where}: pass data_root=<the folder holding {BASE_FOLDER}/>")
        arrays = load_cifar10(self.data_root)
        return arrays.test_images, arrays.test_labels

    def scalars(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Every scalar of the run's TensorBoard events: name -> (steps, values); empty without events."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for events in sorted(self.run_dir.glob("tensorboard/**/events.out.tfevents.*")) if self.run_dir else []:
            acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
            acc.Reload()
            for tag in acc.Tags()["scalars"]:
                points = acc.Scalars(tag)
                series[tag] = (np.array([p.step for p in points]), np.array([p.value for p in points]))
        return series
