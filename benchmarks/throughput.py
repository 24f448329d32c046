"""Training throughput on this machine, in one run: for each model, the bare training step, the
device augmentation alone, and the whole ``train.py`` pipeline on each ``data.augment_on`` path.

Protocol (all figures images/s, median or last-epoch, higher is better):
- **bare step**: random (B, 3, 32, 32) inputs already on the device, forward + backward + SGD step in
  the run's precision and memory format; ``--warmup`` untimed steps (cuDNN / oneDNN pick kernels),
  then the median over ``--steps`` timed steps, each ended by a device synchronisation.
- **augment**: :class:`cifarlab.data.augment.DeviceAugment` on uint8 batches on the device (Page's
  list: pad, crop, flip, cutout; uint8 out), median of ``--steps`` synchronised calls.
- **pipeline**: ``train.py``'s ``train()`` on the real data, two epochs of ``--steps`` batches each; the
  second epoch's images/s from its Throughput callback (device-synchronised; data loading,
  augmentation, forward, backward, optimiser, logging; no validation).
- **ratio**: pipeline / bare step, the share of the model's speed the pipeline keeps.

Run: ``make bench`` (CPU) or ``python benchmarks/throughput.py --data-root /tmp/data`` on a GPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from rich.console import Console
from rich.table import Table

import cifarlab  # noqa: F401  (registers the resolvers)
from cifarlab.precision import best_precision
from cifarlab.data.augment import BatchContext, DeviceAugment
from cifarlab.models import AirbenchNet, CustomResNet, ResNet18
from cifarlab.training import train

CONF = Path(__file__).resolve().parents[1] / "conf"
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


def bare_step(model_name: str, batch_size: int, bf16: bool, warmup: int, steps: int, device: str) -> float:
    """Median images/s of forward + backward + SGD step on random inputs (channels_last)."""
    torch.manual_seed(0)
    model = MODELS[model_name]().to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=device)
    times = []
    for step in range(warmup + steps):
        start = _sync(device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            times.append(_sync(device) - start)
    return batch_size / statistics.median(times)


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
             num_workers: int) -> float:
    """The second epoch's training images/s of ``train.py`` (two epochs of ``steps`` batches)."""
    overrides = [
        f"model/net={model_name}", f"data.root={data_root}", "data.download=false", f"data.augment_on={augment_on}",
        f"data.batch_size={batch_size}", f"data.subset={steps * batch_size}", f"data.num_workers={num_workers}",
        "data/augmentation=page", "model/optimizer=sgd", "~model/scheduler", "trainer.max_epochs=2", "trainer.limit_val_batches=0",
        "trainer.limit_test_batches=1", f"trainer.precision={precision}", "model.channels_last=true", "logger=[]",
        "~callbacks.lr_monitor", "model.tta=none", "callbacks.progress_bar.refresh_rate=1000",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with tempfile.TemporaryDirectory() as out, open_dict(cfg):
        cfg.paths.output_dir = out
        return train(cfg).epoch_images_per_s[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=None, help="default: 512 on a GPU, 128 on a CPU")
    parser.add_argument("--warmup", type=int, default=None, help="default: 10 on a GPU, 2 on a CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps; default: 50 on a GPU, 4 on a CPU")
    parser.add_argument("--data-root", default=os.environ.get("CIFARLAB_DATA", "data"),
                        help="folder holding cifar-10-batches-py/ (default: $CIFARLAB_DATA, else data)")
    parser.add_argument("--num-workers", type=int, default=None, help="workers path; default: 8 on a GPU, 0 on a CPU")
    parser.add_argument("--precision", choices=["32-true", "bf16-mixed"], default=None,
                        help="default: bf16-mixed on a GPU, the faster one measured on a CPU")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    batch_size = args.batch_size or (512 if gpu else 128)
    warmup, steps = args.warmup or (10 if gpu else 2), args.steps or (50 if gpu else 4)
    num_workers = args.num_workers if args.num_workers is not None else (8 if gpu else 0)
    precision = args.precision or best_precision()  # on a CPU: measured once, cached (cifarlab.precision)
    bf16 = precision == "bf16-mixed"
    name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    rows = []
    for model_name in args.models:
        bare = bare_step(model_name, batch_size, bf16, warmup, steps, device)
        paths = {p: pipeline(model_name, p, batch_size, precision, steps, args.data_root, num_workers)
                 for p in ("device", "workers")}
        rows.append((model_name, bare, paths["device"], paths["workers"]))
    table = Table(title=f"training images/s on {name}, batch {batch_size}, {precision}, channels_last, "
                        f"torch {torch.__version__}; device augmentation alone: "
                        f"{augment_only(batch_size, steps, device):,.0f} images/s")
    for column in ("model", "bare step", "pipeline, augment_on=device", "ratio", "pipeline, augment_on=workers", "ratio"):
        table.add_column(column, justify="right")
    for model_name, bare, on_device, on_workers in rows:
        table.add_row(model_name, f"{bare:,.0f}", f"{on_device:,.0f}", f"{on_device / bare:.2f}",
                      f"{on_workers:,.0f}", f"{on_workers / bare:.2f}")
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
