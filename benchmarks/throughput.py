"""Training throughput of the model zoo on this machine: images/s of forward + backward + Adam step.

Protocol: random (N, 3, 32, 32) float32 batches (data loading excluded), ``--warmup`` untimed
steps (oneDNN / cuDNN pick their kernels there), then the median over ``--steps`` timed steps;
one process, all threads torch uses by default. Run: ``make bench`` or
``python benchmarks/throughput.py --models custom_resnet --batch-size 128``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from cifarlab.models import CustomResNet, ResNet18

MODELS = {"custom_resnet": CustomResNet, "resnet18": ResNet18}


def images_per_s(model_name: str, batch_size: int, bf16: bool, channels_last: bool, warmup: int, steps: int,
                 device: str) -> float:
    """Median training images/s of one configuration."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = MODELS[model_name]().to(device=device, memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,), device=device)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"training images/s on {name} (median of {args.steps} steps after {args.warmup} warm-up)")
    for column in ("model", "batch", "fp32", "fp32 + channels_last", "bf16", "bf16 + channels_last"):
        table.add_column(column, justify="right")
    for model_name in args.models:
        for batch_size in args.batch_size:
            cells = [f"{images_per_s(model_name, batch_size, bf16, cl, args.warmup, args.steps, device):.0f}"
                     for bf16 in (False, True) for cl in (False, True)]
            table.add_row(model_name, str(batch_size), *cells)
    Console().print(table)


if __name__ == "__main__":
    main()
