"""Every debug preset (conf/debug) composes and runs on the fixture."""
from __future__ import annotations

from pathlib import Path

import pytest

from cifarlab.training import run
from conftest import CONF, compose_train, tiny_overrides

PRESETS = sorted(p.stem for p in (CONF / "debug").glob("*.yaml") if p.stem != "default")


def test_the_four_presets_exist() -> None:
    assert PRESETS == ["fdr", "limit", "overfit", "profiler"]


@pytest.mark.parametrize("preset", PRESETS)
def test_debug_preset_runs(preset: str, cifar_root: Path, tmp_path: Path) -> None:
    cfg = compose_train(tiny_overrides(cifar_root) + [f"debug={preset}", "data.subset=100"], tmp_path)
    assert cfg.task_name == "debug" and cfg.data.num_workers == 0
    results = run(cfg)
    assert 0.0 <= results["test"]["acc"] <= 1.0
    steps_per_epoch = 100 // cfg.data.batch_size
    expected = {"fdr": 1, "overfit": 3 * 20, "limit": 5 * 3, "profiler": steps_per_epoch}[preset]
    assert results["global_step"] == expected
    if preset == "fdr":
        assert results["tested_checkpoint"]["path"] is None
    if preset == "profiler":
        report = (tmp_path / "fit-profile.txt").read_text()
        assert "run_training_epoch" in report
