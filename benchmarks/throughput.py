"""Training throughput on this machine, in one run: for each model, the bare training step, the
device augmentation alone, and the whole ``train.py`` pipeline on each ``data.augment_on`` path.

Protocol (all figures images/s, higher is better):
- **bare step**: random (B, 3, 32, 32) inputs already on the device, forward + backward + SGD step in
  the run's precision and memory format (:class:`BareStep`), each ended by a device synchronisation;
  timed in the pipeline's second epoch, one after each of its steps (the first epoch warms up
  cuDNN's / oneDNN's kernel choice).
- **augment**: :class:`cifarlab.data.augment.DeviceAugment` on uint8 batches on the device (Page's
  list: pad, crop, flip, cutout; uint8 out), median of ``--steps`` synchronised calls.
- **pipeline**: ``train.py``'s ``train()`` on the real data, two epochs of ``--steps`` batches each; the
  second epoch's images/s (device-synchronised; data loading, augmentation, forward, backward,
  optimiser, Lightning's loop, callbacks and logging; no validation).
- **ratio**: pipeline / bare step, the share of the model's speed the pipeline keeps. The two are
  measured *paired*: after each pipeline step (on a GPU: after the epoch's steps),
  :class:`PairedBareStep` times as many bare steps of a private copy of the network, outside the
  pipeline's clock, and the ratio is the second epoch's bare-step seconds over its pipeline seconds.
  A shared host's speed drifts by minutes (airbench's bare step read 409 and 993 images/s five
  minutes apart on a 2-core VM), and unpaired figures taken a minute apart drift with it; paired
  ones see the same machine.

Run: ``make bench`` (CPU) or ``python benchmarks/throughput.py --data-root <data>`` on a GPU (``bash benchmarks/gpu_runs.sh bench``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from rich.console import Console
from rich.table import Table

import cifarlab  # noqa: F401  (registers the resolvers)
import cifarlab.conf
from cifarlab.training.precision import best_precision
from cifarlab.data.augment import BatchContext, DeviceAugment
from cifarlab.models import AirbenchNet, CustomResNet, ResNet18
from cifarlab.training.pipeline import train

CONF = Path(cifarlab.conf.__file__).parent  # the package's configs (src/cifarlab/conf/ in a checkout)
MODELS = {"custom_resnet": CustomResNet, "resnet18": ResNet18, "airbench": AirbenchNet}
PAGE_AUGMENT = [
    {"_target_": "albumentations.PadIfNeeded", "min_height": 40, "min_width": 40, "border_mode": 4},
    {"_target_": "albumentations.RandomCrop", "height": 32, "width": 32},
    {"_target_": "albumentations.HorizontalFlip", "p": 0.5},
    {"_target_": "albumentations.CoarseDropout", "num_holes_range": [1, 1], "hole_height_range": [8, 8],
     "hole_width_range": [8, 8], "fill": "dataset_mean", "p": 1.0},
]


def _sync(device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


class BareStep:
    """One training step of a network alone: forward + backward + SGD (Nesterov) step on fixed random
    inputs (``batch_size``, 3, 32, 32) float32, channels_last, on ``device``, under bf16 autocast when
    ``bf16``. Calling it returns the step's seconds, ended by a device synchronisation."""

    def __init__(self, model_name: str, batch_size: int, bf16: bool, device: str) -> None:
        torch.manual_seed(0)
        self.model = MODELS[model_name]().to(device=device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD([p for p in self.model.parameters() if p.requires_grad], lr=0.01,
                                         momentum=0.9, nesterov=True)
        self.x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
        self.y = torch.randint(0, 10, (batch_size,), device=device)
        self.bf16, self.device = bf16, device

    def __call__(self) -> float:
        start = _sync(self.device)
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.bf16):
            loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return _sync(self.device) - start


class PairedBareStep(L.Callback):
    """Times the pipeline's steps in blocks of ``every`` and, after each block, as many
    :class:`BareStep` calls outside the pipeline's clock.

    A block runs from the previous bare steps' end (or the epoch's start) to its last batch's
    ``on_train_batch_end``: loading, augmentation, forward, backward, optimiser and the callbacks
    around them. ``every=1`` pairs each step (a CPU, whose work is synchronous anyway); on a GPU a
    larger block keeps the pipeline's launches ahead of the device, as in training, and synchronises
    at its ends only. The last epoch's seconds are kept: ``pipeline_s`` and ``bare_s`` (one per block).
    """

    def __init__(self, bare: BareStep, device: str, every: int = 1) -> None:
        self.bare, self.device, self.every = bare, device, max(1, every)
        self.pipeline_s: list[float] = []
        self.bare_s: list[float] = []
        self._mark, self._pending = 0.0, 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.pipeline_s, self.bare_s, self._pending = [], [], 0
        self._mark = _sync(self.device)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._pending += 1
        if self._pending < self.every and batch_idx + 1 < trainer.num_training_batches:
            return
        self.pipeline_s.append(_sync(self.device) - self._mark)
        self.bare_s.append(sum(self.bare() for _ in range(self._pending)))
        self._pending = 0
        self._mark = _sync(self.device)


def augment_only(batch_size: int, steps: int, device: str) -> float:
    """Median images/s of the device augmentation (Page's list) on uint8 batches."""
    augment = DeviceAugment(PAGE_AUGMENT, [0.49, 0.48, 0.45])
    images = torch.randint(0, 256, (batch_size, 3, 32, 32), dtype=torch.uint8, device=device)
    ctx = BatchContext(torch.arange(batch_size, device=device), batch_size, 0, 0,
                       torch.Generator(device=device).manual_seed(0))
    times = []
    for step in range(3 + steps):
        start = _sync(device)
        augment.augment(images, ctx)
        if step >= 3:
            times.append(_sync(device) - start)
    return batch_size / statistics.median(times)


def pipeline(model_name: str, augment_on: str, batch_size: int, precision: str, steps: int, data_root: str,
             num_workers: int, device: str) -> tuple[float, float]:
    """Images/s of ``train.py``'s training and of the paired bare steps, in the second of two epochs of
    ``steps`` batches (the first warms both up); paired step by step on a CPU, by epoch on a GPU."""
    overrides = [
        f"model={model_name}", f"data.root={data_root}", "data.download=false", f"data.augment_on={augment_on}",
        f"data.batch_size={batch_size}", f"data.subset={steps * batch_size}", f"data.num_workers={num_workers}",
        "data/augmentation=page", "optimizer=sgd", "~scheduler", "trainer.max_epochs=2", "trainer.limit_val_batches=0",
        "trainer.limit_test_batches=1", f"trainer.precision={precision}", "model.channels_last=true", "logger=[]",
        "~callbacks.lr_monitor", "model.tta=none", "callbacks.progress_bar.refresh_rate=1000",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    bare = BareStep(model_name, batch_size, precision == "bf16-mixed", device)
    paired = PairedBareStep(bare, device, every=steps if device == "cuda" else 1)
    with tempfile.TemporaryDirectory() as out, open_dict(cfg):
        cfg.paths.output_dir = out
        train(cfg, callbacks=[paired])
    images = batch_size * steps
    return images / sum(paired.pipeline_s), images / sum(paired.bare_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=None, help="default: 512 on a GPU, 128 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="steps an epoch (two epochs, the second timed); "
                                                               "default: 50 on a GPU, 16 on a CPU")
    parser.add_argument("--data-root", default=os.environ.get("CIFARLAB_DATA", "data"),
                        help="folder holding cifar-10-batches-py/ (default: $CIFARLAB_DATA, else data)")
    parser.add_argument("--num-workers", type=int, default=None, help="workers path; default: 8 on a GPU, 0 on a CPU")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default=None,
                        help="default: bf16-mixed on a GPU, the faster one measured on a CPU")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    batch_size = args.batch_size or (512 if gpu else 128)
    steps = args.steps or (50 if gpu else 16)
    num_workers = args.num_workers if args.num_workers is not None else (8 if gpu else 0)
    precision = args.precision or best_precision()  # on a CPU: measured once, cached (cifarlab.training.precision)
    name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"training images/s on {name}, batch {batch_size}, {precision}, channels_last, "
                        f"torch {torch.__version__}; device augmentation alone: "
                        f"{augment_only(batch_size, steps, device):,.0f} images/s")
    for column in ("model", "data.augment_on", "bare step (paired)", "pipeline", "ratio"):
        table.add_column(column, justify="right")
    for model_name in args.models:
        for augment_on in ("device", "workers"):
            on_pipeline, bare = pipeline(model_name, augment_on, batch_size, precision, steps, args.data_root,
                                         num_workers, device)
            table.add_row(model_name, augment_on, f"{bare:,.0f}", f"{on_pipeline:,.0f}", f"{on_pipeline / bare:.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
