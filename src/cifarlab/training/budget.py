"""Budget-first recipe: the width of airbench's network and the precision that this machine trains best in a
wall-time budget (``make train``: 600 s from the command to the results table).

- **Probe** (:func:`probe_speeds`): a few bare training steps and one inference batch of each candidate, the
  width variants of airbench's network x the precisions this CPU runs well (fp32, and bf16 autocast where the
  precision probe found it faster); cached per CPU, torch version, thread count and batch size in
  ``cache_dir()/budget.json``, as ``precision.json`` is.
- **Frontier** (:func:`load_frontier`, ``frontier.csv`` beside this module): held-out accuracy (5,000 training
  images held out, the test set never read) against training images, per width, measured at fixed image counts
  by ``benchmarks/frontier.py``; an image count is a property of the recipe, so any machine measures the same
  frontier.
- **Budget** (:func:`plan`): training seconds = wall budget - seconds already spent (start-up, the probe) -
  ``reserve_s`` (data loading, checkpoint and results writing) - the predicted seconds of the test and held-out
  passes with their TTA (from the probe's inference speed). Each candidate sees ``images/s x training seconds``
  images; the frontier predicts its held-out accuracy; the best prediction is chosen.

A width, a precision or the training seconds given on the command line (``model.net.widths=...``,
``trainer.precision=...``, ``model.scheduler.budget_s=...``) pins that part: only the rest is chosen.
"""
from __future__ import annotations

import csv
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from cifarlab.errors import ConfigError
from cifarlab.training.precision import cache_dir, cache_key, cpu_precision, on_gpu, on_mps
from cifarlab.runs.rundir import write_json_atomic

FRONTIER_CSV = Path(__file__).with_name("frontier.csv")
# Forward passes of the test under each TTA mode, the plain pass included (cifarlab.tta.tta_logits).
TTA_PASSES = {"none": 1, "flip": 2, "flip_translate": 6}
_IMPORTED_AT = time.time()
_jobs_started = 0  # jobs of this process that asked job_start()

Widths = tuple[int, ...]


@dataclass(frozen=True)
class Speed:
    """Bare-step speeds of one candidate on this machine (images/s): training (forward, backward and SGD
    step at the training batch size) and inference (``eval()``, no gradient)."""

    train_images_per_s: float
    infer_images_per_s: float


@dataclass(frozen=True)
class Choice:
    """One candidate's row of the plan: its speeds, predicted seconds and images, predicted held-out accuracy."""

    widths: Widths
    precision: str
    train_images_per_s: float
    infer_images_per_s: float
    test_s: float
    train_s: float
    images: int
    predicted_acc: float | None  # held-out, with the run's TTA; None: no frontier for this width


@dataclass(frozen=True)
class Plan:
    """What the budget chose (``chosen``) among ``rows``, and the seconds it counted (all in seconds)."""

    wall_s: float | None
    spent_s: float
    reserve_s: float
    rows: list[Choice]
    chosen: Choice

    def to_dict(self) -> dict:
        """For ``metrics.json`` (``budget``)."""
        return {"wall_s": self.wall_s, "spent_s": self.spent_s, "reserve_s": self.reserve_s,
                "chosen": asdict(self.chosen), "candidates": [asdict(r) for r in self.rows]}


def process_start() -> float:
    """When this process started (seconds since the epoch; Linux: ``/proc``), else when this module was imported."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


def job_start() -> float:
    """When the job now starting began (seconds since the epoch): for the first job of a process its start, so
    that the interpreter's start-up and imports count against the budget; for each later job of a multirun in the
    same process, now."""
    global _jobs_started
    _jobs_started += 1
    return process_start() if _jobs_started == 1 else time.time()


def measure_speed(widths: Widths, precision: str, batch_size: int = 512, steps: int = 2,
                  infer_batch: int = 1000) -> Speed:
    """:class:`Speed` of ``AirbenchNet(widths)`` (channels_last, random inputs, SGD with Nesterov momentum):
    the median of ``steps`` training steps after one warm-up, and one inference batch after one warm-up."""
    from cifarlab.models import AirbenchNet

    torch.manual_seed(0)
    net = AirbenchNet(widths=list(widths)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.85, nesterov=True)
    autocast = {"device_type": "cpu", "dtype": torch.bfloat16, "enabled": precision == "bf16-mixed"}
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    seconds = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(**autocast):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    net.eval()
    images = torch.randn(infer_batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast(**autocast):
        net(images[:infer_batch // 4])
        start = time.perf_counter()
        net(images)
        infer = time.perf_counter() - start
    return Speed(batch_size / statistics.median(seconds[1:]), infer_batch / infer)


def probe_speeds(widths: list[Widths], precisions: list[str], batch_size: int = 512,
                 measure=measure_speed) -> dict[tuple[Widths, str], Speed]:
    """The :class:`Speed` of each width x precision, measured once per CPU and cached in
    ``cache_dir()/budget.json`` (keyed by CPU, torch version, threads and batch size); only the missing
    candidates are measured."""
    key = f"{cache_key()} | batch {batch_size}"
    path = cache_dir() / "budget.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    known = cache.setdefault(key, {})
    speeds = {}
    for w in widths:
        for precision in precisions:
            name = f"{','.join(map(str, w))} {precision}"
            if name not in known:
                known[name] = asdict(measure(tuple(w), precision, batch_size))
                write_json_atomic(path, cache)
            speeds[(tuple(w), precision)] = Speed(**known[name])
    return speeds


def load_frontier(path: Path = FRONTIER_CSV, tta: bool = True) -> dict[Widths, list[tuple[int, float]]]:
    """``frontier.csv`` as ``{widths: [(images, held-out accuracy), ...]}`` sorted by images, the accuracy with
    the preset's TTA (``val_acc_tta``) or plain (``val_acc``); a mean where a point has several seeds."""
    points: dict[Widths, dict[int, list[float]]] = {}
    if not path.is_file():
        return {}
    for row in csv.DictReader(path.open()):
        widths = tuple(int(w) for w in row["widths"].split(","))
        points.setdefault(widths, {}).setdefault(int(row["images"]), []).append(float(row["val_acc_tta" if tta else "val_acc"]))
    return {w: sorted((n, statistics.fmean(a)) for n, a in by_images.items()) for w, by_images in points.items()}


def predict_accuracy(points: list[tuple[int, float]], images: float) -> float:
    """Held-out accuracy at ``images`` training images: linear in log(images) between the measured points;
    below the first, the first segment's slope continued; above the last, the last point's accuracy (no gain
    is claimed beyond what was measured).

    Raises:
        ValueError: fewer than two points.
    """
    if len(points) < 2:
        raise ValueError("the frontier needs at least two image counts per width")
    if images >= points[-1][0]:
        return points[-1][1]
    (n0, a0), (n1, a1) = next(((p, q) for p, q in zip(points, points[1:]) if images < q[0]), points[:2])
    return a0 + (a1 - a0) * (math.log(max(images, 1)) - math.log(n0)) / (math.log(n1) - math.log(n0))


def plan(speeds: dict[tuple[Widths, str], Speed], frontier: dict[Widths, list[tuple[int, float]]],
         wall_s: float | None, spent_s: float, reserve_s: float, eval_images: int, tta: str,
         train_s: float | None = None, plain_images: int = 0) -> Plan:
    """Choose the candidate of ``speeds`` with the best predicted held-out accuracy.

    Args:
        speeds: candidates (widths, precision) and their :class:`Speed`.
        frontier: :func:`load_frontier`'s points per width; a width without them can win only alone.
        wall_s: the whole budget in seconds (``None`` with ``train_s`` given).
        spent_s: seconds already gone (process start-up, the probe).
        reserve_s: seconds kept for data loading and writing checkpoints and results.
        eval_images: images the run predicts after training with ``tta`` (the test set).
        tta: the run's TTA mode (:data:`TTA_PASSES`).
        train_s: training seconds given by the user (``model.scheduler.budget_s``): then the wall budget is not used.
        plain_images: images predicted once each after training (the held-out split).

    Raises:
        ConfigError: no candidate has any training seconds left.
    """
    rows = []
    for (widths, precision), speed in speeds.items():
        test_s = (eval_images * TTA_PASSES[tta] + plain_images) / speed.infer_images_per_s
        seconds = train_s if train_s is not None else wall_s - spent_s - reserve_s - test_s
        if seconds <= 0:
            continue
        images = int(speed.train_images_per_s * seconds)
        points = frontier.get(widths)
        rows.append(Choice(widths, precision, speed.train_images_per_s, speed.infer_images_per_s, test_s, seconds, images,
                           predict_accuracy(points, images) if points and len(points) > 1 else None))
    if not rows:
        slowest = max((eval_images * TTA_PASSES[tta] + plain_images) / s.infer_images_per_s for s in speeds.values())
        raise ConfigError(
            f"budget.wall_s={wall_s} leaves no training time: {spent_s:.0f} s were spent starting up and probing, "
            f"{reserve_s:.0f} s are kept for loading and writing, and the test with TTA {tta} takes up to {slowest:.0f} s. "
            f"Raise budget.wall_s, or give the training seconds with model.scheduler.budget_s=...")
    known = [r for r in rows if r.predicted_acc is not None]
    chosen = max(known, key=lambda r: r.predicted_acc) if known else max(rows, key=lambda r: r.images)
    return Plan(wall_s, spent_s, reserve_s, rows, chosen)


def cpu_candidate_precisions(accelerator: str) -> list[str]:
    """The precisions this CPU runs well: fp32, and bf16 autocast where the precision probe found it faster
    (:func:`cifarlab.training.precision.cpu_precision`; on AMD Zen 3 bf16 is 17x slower and is not probed).

    Raises:
        ConfigError: ``accelerator`` is a GPU or MPS, whose speeds this probe does not measure.
    """
    if accelerator not in ("cpu", "auto") or on_gpu(accelerator) or on_mps(accelerator):
        raise ConfigError(f"the budget probes CPU candidates, not trainer.accelerator={accelerator}: on a GPU use "
                          "experiment=speedrun, or pin trainer.precision, model.net.widths and model.scheduler.budget_s")
    return sorted({"32-true", cpu_precision()})


def choose(widths: list[Widths], precisions: list[str], batch_size: int, wall_s: float | None, reserve_s: float,
           eval_images: int, tta: str, train_s: float | None = None, plain_images: int = 0,
           started_at: float | None = None) -> Plan:
    """Probe the candidates (:func:`probe_speeds`), :func:`plan` with the committed frontier and the seconds spent
    since ``started_at`` (seconds since the epoch, :func:`job_start`; None: now), and print the table. Arguments as
    :func:`plan`'s; ``batch_size``: the training batch.

    Raises:
        ConfigError: see :func:`plan`.
    """
    speeds = probe_speeds(widths, precisions, batch_size)
    spent = time.time() - (started_at or time.time())
    chosen = plan(speeds, load_frontier(), wall_s, spent, reserve_s, eval_images, tta, train_s, plain_images)
    Console(width=None if sys.stdout.isatty() else 120).print(plan_table(chosen))  # a log file gets every column
    return chosen


def plan_table(plan: Plan) -> Table:
    """The plan as a rich table: one row per candidate, the chosen one marked."""
    title = (f"budget: {plan.wall_s:.0f} s of wall time, {plan.spent_s:.0f} s spent, {plan.reserve_s:.0f} s kept"
             if plan.wall_s is not None else "budget: training seconds given")
    table = Table(title=title)
    for column in ("widths", "precision", "train img/s", "test + TTA s", "train s", "images", "predicted held-out", "choice"):
        table.add_column(column, justify="left" if column in ("widths", "precision", "choice") else "right")
    for row in plan.rows:
        acc = "no frontier" if row.predicted_acc is None else f"{100 * row.predicted_acc:.2f} %"
        table.add_row(",".join(map(str, row.widths)), row.precision, f"{row.train_images_per_s:.0f}", f"{row.test_s:.0f}",
                      f"{row.train_s:.0f}", f"{row.images:,}", acc, "chosen" if row is plan.chosen else "")
    return table
