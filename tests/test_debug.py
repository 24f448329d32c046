"""Every debug preset (conf/debug) composes and runs on the fixture."""
from __future__ import annotations

from pathlib import Path

import pytest

from cifarlab.training.pipeline import train
from conftest import CONF, compose_train, tiny_overrides

PRESETS = sorted(p.stem for p in (CONF / "debug").glob("*.yaml") if p.stem != "default")


def test_the_four_presets_exist() -> None:
    assert PRESETS == ["fdr", "limit", "overfit", "profiler"]


# What each preset sets, and the steps it runs on 100 fixture images (5 batches of 20) with at most 2 epochs.
SETS = {"fdr": {"fast_dev_run": True}, "overfit": {"overfit_batches": 3, "max_epochs": 20},
        "limit": {"limit_train_batches": 5, "limit_val_batches": 2, "limit_test_batches": 2, "max_epochs": 3},
        "profiler": {"max_epochs": 1}}
STEPS = {"fdr": 1, "overfit": 3 * 2, "limit": 5 * 2, "profiler": 5}


@pytest.mark.slow  # trains
@pytest.mark.parametrize("preset", PRESETS)
def test_debug_preset_runs(preset: str, cifar_root: Path, tmp_path: Path) -> None:
    overrides = tiny_overrides(cifar_root) + [f"debug={preset}", "data.subset=100"]
    cfg = compose_train(overrides, tmp_path)
    assert cfg.task_name == "debug" and cfg.data.num_workers == 0
    assert {key: cfg.trainer[key] for key in SETS[preset]} == SETS[preset]
    if cfg.trainer.max_epochs > 2:  # the preset's epochs, cut to 2 to keep the test short
        cfg = compose_train(overrides + ["trainer.max_epochs=2"], tmp_path)
    results = train(cfg)
    assert 0.0 <= results.test.acc <= 1.0
    assert results.global_step == STEPS[preset]
    if preset == "fdr":
        assert results.tested_checkpoint.path is None
    if preset == "profiler":
        report = (tmp_path / "fit-profile.txt").read_text()
        assert "run_training_epoch" in report
