"""``make bench`` (benchmarks/throughput.py): the paired bare step times every step of the pipeline's
last epoch outside its clock, and the command prints one row per model and data path."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose_train, run_script, tiny_overrides

sys.path.insert(0, str(ROOT / "benchmarks"))
import throughput  # noqa: E402


def fit_airbench(paired: throughput.PairedBareStep, images: int, epochs: int, root: Path, out: Path):
    """train() of airbench on ``images`` fixture images in batches of 8, with ``paired`` among its callbacks."""
    from cifarlab.training.pipeline import train

    cfg = compose_train(tiny_overrides(root) + [
        "model=airbench", "data.batch_size=8", f"data.subset={images}", f"trainer.max_epochs={epochs}",
        "trainer.limit_val_batches=0"], out)
    return train(cfg, callbacks=[paired])


@pytest.mark.slow  # trains
def test_paired_bare_step_times_each_step_of_the_last_epoch(cifar_root: Path, tmp_path: Path) -> None:
    paired = throughput.PairedBareStep(throughput.BareStep("airbench", 8, bf16=False, device="cpu"), "cpu")
    result = fit_airbench(paired, images=24, epochs=2, root=cifar_root, out=tmp_path)
    assert result.global_step == 6  # the probe's steps are not training steps
    assert len(paired.pipeline_s) == len(paired.bare_s) == 3  # the second epoch's, not both
    assert all(0 < s < 60 for s in paired.pipeline_s + paired.bare_s)


@pytest.mark.slow  # trains
def test_blocks_of_steps_pair_each_block_with_as_many_bare_steps(cifar_root: Path, tmp_path: Path) -> None:
    calls = []
    bare = throughput.BareStep("airbench", 8, bf16=False, device="cpu")
    paired = throughput.PairedBareStep(lambda: calls.append(1) or bare(), "cpu", every=2)
    fit_airbench(paired, images=40, epochs=1, root=cifar_root, out=tmp_path)
    assert len(calls) == 5 and len(paired.pipeline_s) == len(paired.bare_s) == 3  # blocks of 2, 2 and the last 1


@pytest.mark.slow  # starts a process that trains
def test_bench_prints_a_row_per_model_and_path(cifar_root: Path) -> None:
    done = run_script("benchmarks/throughput.py", "--models", "airbench", "--steps", "2", "--batch-size", "8",
                      "--precision", "32-true", "--data-root", str(cifar_root))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if "airbench" in line and "│" in line]
    assert [row.split("│")[2].strip() for row in rows] == ["device", "workers"]
    ratios = [float(row.split("│")[5]) for row in rows]
    assert all(math.isfinite(r) and r > 0 for r in ratios)


def test_budget_plan_prints_another_cpus_choice_and_its_fixed_step_command(capsys: pytest.CaptureFixture) -> None:
    import budget_plan

    budget_plan.main([str(ROOT / "benchmarks" / "cpu_speeds" / "epyc_zen3_fp32.json"), "--spent-s", "40"])
    out = capsys.readouterr().out
    assert "AMD EPYC Zen 3" in out and "chosen" in out
    chosen = next(line for line in out.splitlines() if "chosen" in line).split("│")[1].strip()
    assert f"model.net.widths=[{chosen}] trainer.precision=32-true" in out and "trainer.max_steps=" in out
