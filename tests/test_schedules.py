"""The time-budget schedule and the measured CPU precision, with fake clocks and timings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cifarlab.training import precision
from cifarlab.training.schedules import TimeBudgetOneCycle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_budget_schedule_follows_the_clock_not_the_steps() -> None:
    clock = FakeClock()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = TimeBudgetOneCycle(optimizer, budget_s=100, max_lr=1.0, pct_start=0.25, div_factor=10,
                                   final_div_factor=100, clock=clock)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # before the first step: max_lr / div_factor
    optimizer.step()
    scheduler.step()  # the first step starts the clock, at 100 s
    lrs = {}
    for elapsed in (0, 12.5, 25, 62.5, 100, 150):
        clock.now = 100.0 + elapsed
        optimizer.step()
        scheduler.step()
        lrs[elapsed] = optimizer.param_groups[0]["lr"]
    assert lrs[0] == pytest.approx(0.1) and lrs[12.5] == pytest.approx(0.55) and lrs[25] == pytest.approx(1.0)
    assert lrs[62.5] == pytest.approx(1 - 0.5 * (1 - 1e-3)) and lrs[100] == pytest.approx(1e-3)
    assert lrs[150] == pytest.approx(1e-3) and scheduler.progress == 1.0  # past the budget: stays at the end


def test_time_budget_state_loads_weights_only_and_keeps_the_elapsed_time(tmp_path: Path) -> None:
    clock = FakeClock()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = TimeBudgetOneCycle(optimizer, budget_s=100, max_lr=1.0, clock=clock)
    optimizer.step()
    scheduler.step()
    clock.now += 40.0
    torch.save(scheduler.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    later = FakeClock()
    later.now = 5000.0
    resumed = TimeBudgetOneCycle(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), budget_s=100,
                                 max_lr=1.0, clock=later)
    resumed.load_state_dict(state)
    assert resumed.progress == pytest.approx(0.4)


def test_time_budget_rejects_a_bad_budget() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="budget_s=0"):
        TimeBudgetOneCycle(optimizer, budget_s=0, max_lr=1.0)


def test_cpu_precision_is_measured_once_then_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path))
    calls = []

    def measure() -> dict[str, float]:
        calls.append(1)
        return {"32-true": 0.5, "bf16-mixed": 0.2}

    assert precision.cpu_precision(measure) == "bf16-mixed"
    assert precision.cpu_precision(lambda: {"32-true": 0.1, "bf16-mixed": 9.0}) == "bf16-mixed"  # cached, not re-measured
    assert len(calls) == 1
    cached = json.loads((tmp_path / "precision.json").read_text())
    assert [entry["best"] for entry in cached.values()] == ["bf16-mixed"]


def test_cpu_precision_picks_fp32_where_bf16_is_slower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIFARLAB_CACHE", str(tmp_path))
    assert precision.cpu_precision(lambda: {"32-true": 0.5, "bf16-mixed": 9.0}) == "32-true"


def test_cpu_name_tells_apart_cpus_that_a_vm_names_alike(tmp_path: Path) -> None:
    """Zen 3 and Zen 4 both show as "AMD EPYC" under KVM; bf16 speed differs 18x between them."""
    def name(model: int, flags: str) -> str:
        info = tmp_path / f"cpuinfo{model}"
        info.write_text(f"processor\t: 0\ncpu family\t: 25\nmodel\t\t: {model}\nmodel name\t: AMD EPYC\n"
                        f"stepping\t: 1\nflags\t\t: fpu avx2 {flags}\n\nprocessor\t: 1\nmodel name\t: other\n")
        return precision.cpu_name(info)

    zen3, zen4 = name(1, ""), name(17, "avx512f avx512_bf16")
    assert zen3 == "AMD EPYC (family 25 model 1 stepping 1; no bf16)"
    assert zen4 == "AMD EPYC (family 25 model 17 stepping 1; avx512_bf16)"


def test_without_a_time_budget_the_shape_spans_the_steps() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = TimeBudgetOneCycle(optimizer, budget_s=None, max_lr=1.0, pct_start=0.25, div_factor=10,
                                   final_div_factor=10, total_steps=100, clock=lambda: 1 / 0)  # the clock is never read
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[25] == pytest.approx(1.0) and lrs[99] == pytest.approx(0.01 + 0.99 / 75)
    assert scheduler.progress == 1.0
    with pytest.raises(ValueError, match="must be > 0"):
        TimeBudgetOneCycle(optimizer, budget_s=None, max_lr=1.0, total_steps=None)
