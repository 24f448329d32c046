"""The precision a run uses when its config does not say: ``bf16-mixed`` on GPUs with bf16, and on a
CPU the faster of fp32 and bf16 autocast, measured once on this CPU and cached (bf16 autocast has
measured 2.5x faster than fp32 on one of our CPUs and 18x slower on another)."""
from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cifarlab.runs.rundir import write_json_atomic

log = logging.getLogger(__name__)

CPU_PRECISIONS = ("32-true", "bf16-mixed")


def cache_dir() -> Path:
    """Where measured facts about this machine are kept: ``$CIFARLAB_CACHE`` or ``~/.cache/cifarlab``."""
    return Path(os.environ.get("CIFARLAB_CACHE", Path.home() / ".cache" / "cifarlab"))


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as ``cpuinfo`` names it: model name, family, model, stepping and the bf16
    instructions it has, e.g. ``AMD EPYC (family 25 model 17 stepping 1; avx512_bf16)``. A VM may
    call Zen 3 and Zen 4 both "AMD EPYC", and bf16 autocast is 18x slower on the one than the other,
    so the name alone cannot key what was measured. The platform's processor string elsewhere."""
    try:
        fields: dict[str, str] = {}
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        fields = {}
    if "model name" not in fields:
        return platform.processor() or "unknown CPU"
    bf16 = [flag for flag in fields.get("flags", "").split() if "bf16" in flag] or ["no bf16"]
    return (f"{fields['model name']} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
            f"stepping {fields.get('stepping', '?')}; {' '.join(bf16)})")


def measure_cpu_step_seconds(batch_size: int = 32, steps: int = 2) -> dict[str, float]:
    """Seconds per ResNet-9 training step (forward, backward, SGD; channels_last, random inputs) in
    fp32 and under bf16 autocast, median of ``steps`` after one warm-up. bf16 stops after its warm-up
    when that alone took over 3x fp32's step (seen on Zen 3: bf16 18x slower), and reports the warm-up."""
    from cifarlab.models import CustomResNet

    torch.manual_seed(0)
    model = CustomResNet().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    seconds: dict[str, float] = {}
    for precision in CPU_PRECISIONS:
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
            if precision != "32-true" and times[0] > 3 * seconds["32-true"]:
                break
        seconds[precision] = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return seconds


def cache_key() -> str:
    """What a measurement of this machine is valid for: the CPU (:func:`cpu_name`), torch version and threads."""
    return f"{cpu_name()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def cpu_precision(measure: Callable[[], dict[str, float]] = measure_cpu_step_seconds) -> str:
    """The faster of fp32 and bf16 autocast on this CPU, measured once and cached per CPU model, torch
    version and thread count in ``cache_dir()/precision.json``. bf16 autocast has measured 2.5x faster
    than fp32 on one of our CPUs, 30 % slower on another and 18x slower on Zen 3, so no CPU flag decides it."""
    key = cache_key()
    path = cache_dir() / "precision.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        seconds = measure()
        cache[key] = {"seconds_per_step": seconds, "best": min(seconds, key=seconds.get)}
        log.info("CPU precision measured on %s: %s s/step; using %s", key, seconds, cache[key]["best"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, cache)
    return cache[key]["best"]


def on_gpu(accelerator: str = "auto") -> bool:
    """Whether the Lightning ``accelerator`` resolves to a GPU (``gpu``, ``cuda``, or ``auto`` with CUDA present)."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def on_mps(accelerator: str = "auto") -> bool:
    """Whether the Lightning ``accelerator`` resolves to Apple's MPS (``mps``, or ``auto`` on a Mac without CUDA),
    a device of its own: its speed says nothing of the CPU's, so the CPU probe does not decide for it."""
    return accelerator == "mps" or (accelerator == "auto" and not torch.cuda.is_available()
                                    and torch.backends.mps.is_available())


def best_precision(accelerator: str = "auto") -> str:
    """Lightning precision for the device ``accelerator`` resolves to: ``bf16-mixed`` on GPUs with bf16
    (Ampere and later), ``16-mixed`` on older GPUs, ``32-true`` on Apple's MPS (autocast there is not measured
    by this project), and on CPUs the faster of ``32-true`` and ``bf16-mixed`` as measured by :func:`cpu_precision`."""
    if on_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    if on_mps(accelerator):
        return "32-true"
    return cpu_precision()
