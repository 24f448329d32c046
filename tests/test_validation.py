"""Numbers out of range stop a run with exit 2 before any data loads; every preset and option is in range."""
from __future__ import annotations

from pathlib import Path

import pytest

from cifarlab.errors import ConfigError
from cifarlab.config.validation import Range, check_ranges
from conftest import CONF, compose_train, run_script, tiny_overrides

OPTIONS = [(group, p.stem) for group in ("model", "optimizer", "scheduler", "trainer", "callbacks", "lr_find",
                                         "experiment", "debug") for p in sorted((CONF / group).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS)
def test_every_preset_and_option_is_in_range(group: str, option: str) -> None:
    check_ranges(compose_train([f"{group}={option}"]))


@pytest.mark.parametrize("overrides,message", [
    (["model.optimizer.lr=-1"], "model.optimizer.lr=-1 is out of range: it must be a finite number > 0"),
    (["model.optimizer.lr=nan"], "model.optimizer.lr=nan is out of range"),
    (["model.optimizer.lr=abc"], "model.optimizer.lr='abc' is not a number"),
    (["model.scheduler.max_lr=0"], "model.scheduler.max_lr=0 is out of range: it must be a finite number > 0"),
    (["model.scheduler.pct_start=1.5"], "model.scheduler.pct_start=1.5 is out of range: it must be a finite number in (0, 1)"),
    (["model.scheduler.div_factor=0"], "model.scheduler.div_factor=0 is out of range"),
    (["scheduler=time_budget", "model.scheduler.budget_s=0"], "model.scheduler.budget_s=0 is out of range"),
    (["optimizer=sgd", "model.optimizer.momentum=1.2"],
     "model.optimizer.momentum=1.2 is out of range: it must be a finite number in [0, 1)"),
    (["model.optimizer.weight_decay=-1e-4"], "model.optimizer.weight_decay=-0.0001 is out of range: it must be a finite number >= 0"),
    (["+model.optimizer.betas=[0.9,1.0]"],
     "model.optimizer.betas=[0.9, 1.0] is out of range: each value must be a finite number in [0, 1)"),
    (["model.loss.label_smoothing=2"], "model.loss.label_smoothing=2 is out of range: it must be a finite number in [0, 1)"),
    (["lr_find=only", "lr_find.num_steps=0"], "lr_find.num_steps=0 is out of range: it must be a whole number >= 1"),
    (["lr_find=only", "lr_find.min_lr=2"], "lr_find.min_lr=2 must be below lr_find.max_lr=1.0"),
    (["model=airbench", "model.net.widths=[0,256,256]"],
     "model.net.widths=[0, 256, 256] is out of range: each value must be a whole number >= 1"),
    (["model.net.num_classes=0"], "model.net.num_classes=0 is out of range"),
    (["model.net.logit_scale=inf"], "model.net.logit_scale=inf is out of range"),
    (["model.net.logit_scale=-0.125"], "model.net.logit_scale=-0.125 is out of range"),
    (["callbacks=ema", "callbacks.ema.decay=1"], "callbacks.ema.decay=1 is out of range"),
    (["trainer.limit_val_batches=1.5"], "trainer.limit_val_batches=1.5 is out of range: it must be a fraction of the batches"),
    (["seed=-1"], "seed=-1 is out of range: it must be a whole number in [0, 4294967295]"),
])
def test_bad_numbers_are_named_with_their_range(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_ranges(compose_train(overrides))
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("value,allowed", [(0.5, True), (0, False), (1, False), (float("inf"), False), (True, False),
                                           ("0.5", False), (None, False)])
def test_an_open_range_excludes_its_bounds_and_non_numbers(value, allowed: bool) -> None:
    assert (value in Range(0, 1, low_open=True, high_open=True)) is allowed


@pytest.mark.slow
def test_train_py_exits_2_before_reading_data(tmp_path: Path) -> None:
    missing = tmp_path / "no-data"  # data would fail to load: the range check must come first
    proc = run_script("train.py", *tiny_overrides(missing), "model.scheduler.pct_start=1.5", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: model.scheduler.pct_start=1.5 is out of range" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_a_constructor_declares_its_ranges_next_to_its_argument_types() -> None:
    from cifarlab.config.ranges import check_arguments, declared_ranges
    from cifarlab.models import AirbenchNet
    from cifarlab.training.callbacks import EMA

    assert set(declared_ranges(AirbenchNet)) == {"num_classes", "widths", "bn_momentum", "logit_scale", "bias_lr_scale"}
    assert set(declared_ranges(EMA)) == {"decay", "update_every_n_steps"}
    decay = declared_ranges(EMA)["decay"]
    assert (decay.allows(0.999), decay.allows(1.0)) == (True, False)
    with pytest.raises(ConfigError, match=r"^callbacks.ema.decay=1.0 is out of range: it must be a finite number in "
                                          r"\[0, 1\) \(the average's weight on its past per update\)"):
        check_arguments(EMA, {"decay": 1.0, "update_every_n_steps": 1}, "callbacks.ema")


def test_a_node_is_checked_against_the_constructor_its_target_names() -> None:
    from omegaconf import OmegaConf

    bad = OmegaConf.create({"net": {"_target_": "cifarlab.models.AirbenchNet", "logit_scale": -1}})
    with pytest.raises(ConfigError, match=r"^net.logit_scale=-1 is out of range: it must be a finite number > 0 "
                                          r"\(the logits' multiplier\)"):
        check_ranges(bad)
    # a third-party target the table does not list declares nothing, and is not imported to find out
    check_ranges(OmegaConf.create({"x": {"_target_": "no_such_package.Thing", "lr": -1}}))


def test_a_constructor_called_from_python_checks_its_declared_ranges() -> None:
    from cifarlab.training.callbacks import Lookahead
    from cifarlab.config.ranges import check_arguments

    with pytest.raises(ConfigError, match=r"^callbacks.lookahead.base_decay=1.5 is out of range: it must be a finite "
                                          r"number in \[0, 1\)"):
        check_arguments(Lookahead, {"every_n_steps": 5, "base_decay": 1.5}, "callbacks.lookahead")
