"""Every config group option and experiment preset composes, and overrides land where they say."""
from __future__ import annotations

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from conftest import CONF, compose_train

GROUPS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
          for group in ("model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "experiment",
                        "data", "data/augmentation")}


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_option_composes_and_resolves(group: str, option: str) -> None:
    cfg = compose_train([f"{group}={option}"], output_dir=CONF)
    OmegaConf.resolve(cfg)
    assert cfg.data._target_ == "cifarlab.data.ImageDataModule"
    assert cfg.model._target_ == "cifarlab.module.ImageClassifier"
    get_class(cfg.model.net._target_)
    get_class(cfg.model.optimizer._target_)
    get_class(cfg.model.scheduler._target_)


def test_model_and_epochs_override() -> None:
    cfg = compose_train(["model=resnet18", "trainer.max_epochs=20"])
    assert cfg.model.net._target_ == "cifarlab.models.ResNet18"
    assert cfg.trainer.max_epochs == 20


def test_presets_reproduce_the_seed_recipes() -> None:
    page = compose_train(["experiment=custom_resnet_24ep"])
    assert (page.model.net._target_, page.trainer.max_epochs, page.data.batch_size) == ("cifarlab.models.CustomResNet", 24, 512)
    assert page.model.optimizer._target_ == "torch.optim.Adam" and page.model.optimizer._partial_
    assert page.model.scheduler._target_ == "torch.optim.lr_scheduler.OneCycleLR" and page.model.scheduler.max_lr == 0.01
    r18 = compose_train(["experiment=resnet18_20ep"])
    assert (r18.model.net._target_, r18.trainer.max_epochs) == ("cifarlab.models.ResNet18", 20)
    cutout = r18.data.train_transforms[-1]
    assert cutout._target_ == "albumentations.CoarseDropout" and list(cutout.hole_height_range) == [16, 16]
    quick = compose_train(["experiment=cpu_quick"])
    assert quick.trainer.accelerator == "cpu" and quick.model.channels_last
    assert quick.model.scheduler._target_ == "cifarlab.training.schedules.TimeBudgetOneCycle"
    assert quick.trainer.max_time.seconds == quick.model.scheduler.budget_s == 450


def test_color_augmentation_adds_jitter_and_gray() -> None:
    cfg = compose_train(["data/augmentation=color"])
    targets = [t._target_.rsplit(".", 1)[-1] for t in cfg.data.train_transforms]
    assert targets == ["PadIfNeeded", "RandomCrop", "HorizontalFlip", "ColorJitter", "ToGray", "CoarseDropout"]


def test_norm_override_reaches_the_model() -> None:
    assert compose_train(["model.net.norm=group"]).model.net.norm == "group"


def test_page_24ep_is_pages_dawnbench_recipe() -> None:
    cfg = compose_train(["experiment=page_24ep"])
    assert cfg.model.optimizer._target_ == "torch.optim.SGD" and cfg.model.optimizer.nesterov and cfg.model.optimizer.momentum == 0.9
    assert cfg.model.optimizer.weight_decay == 5e-4 and cfg.model.scheduler.max_lr == 0.4 and not cfg.model.scheduler.cycle_momentum
    assert cfg.model.scheduler.pct_start == pytest.approx(5 / 24) and cfg.trainer.max_epochs == 24
    assert (cfg.data.batch_size, cfg.data.augment_on, cfg.model.loss.label_smoothing) == (512, "device", 0.0)
    assert cfg.model.net.logit_scale == 0.125 and cfg.trainer.precision == "bf16-mixed" and cfg.model.channels_last
    assert cfg.model.net.pool_before_norm is False
    assert cfg.data.train_transforms[-1].p == 1.0 and cfg.trainer.limit_val_batches == 0


def test_page_24ep_tricks_differs_by_pool_position_and_label_smoothing() -> None:
    dawn, tricks = compose_train(["experiment=page_24ep"]), compose_train(["experiment=page_24ep_tricks"])
    assert (tricks.model.net.pool_before_norm, tricks.model.loss.label_smoothing) == (True, 0.2)
    assert dawn.data == tricks.data
    for key in ("optimizer", "scheduler"):
        assert dawn.model[key] == tricks.model[key]


def test_the_airbench_presets_freeze_the_whitening_bias_and_test_in_whole_batches() -> None:
    for preset in ("speedrun", "cpu_airbench"):
        cfg = compose_train([f"experiment={preset}"])
        assert cfg.callbacks.airbench_whitening.fraction == 0.3025 and "lookahead" in cfg.callbacks
        assert 10_000 % cfg.data.eval_batch_size == 0


def test_default_trainer_uses_one_device() -> None:
    assert compose_train([]).trainer.devices == 1


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("override,message", [
    ("trainer.max_epochs=ten", "full_key: trainer.max_epochs"),
    ("data.batch_size=abc", "full_key: data.batch_size"),
    ("epochs=3", "Key 'epochs' not in 'TrainConfig'"),
    ("model.net.norm=instance", "error: model.net.norm='instance' is not one of batch, group, layer"),
    ("model.tta=sideways", "error: model.tta='sideways' is not one of none, flip, flip_translate"),
])
def test_bad_values_exit_non_zero_naming_the_key(override: str, message: str, cifar_root, tmp_path) -> None:
    from conftest import run_script, tiny_overrides

    proc = run_script("train.py", *tiny_overrides(cifar_root), "trainer.fast_dev_run=true", override,
                      f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("node,cls,skip", [("DataConfig", "cifarlab.data.ImageDataModule", ()),
                                           ("ModelConfig", "cifarlab.module.ImageClassifier", ("mean", "std", "class_names"))])
def test_the_data_and_model_schemas_state_their_constructors_defaults(node: str, cls: str, skip: tuple) -> None:
    import dataclasses
    import inspect

    from omegaconf import MISSING

    import cifarlab.config.schema as schema

    fields = {f.name: f for f in dataclasses.fields(getattr(schema, node))}
    parameters = {name: p for name, p in inspect.signature(get_class(cls).__init__).parameters.items()
                  if name not in ("self", *skip)}
    assert set(fields) == {"_target_", *parameters} and fields["_target_"].default == cls
    for name, parameter in parameters.items():
        default = fields[name].default_factory() if fields[name].default is dataclasses.MISSING else fields[name].default
        assert default == (MISSING if parameter.default is parameter.empty else parameter.default), name


def test_a_wrong_type_under_the_model_node_fails_at_composition() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="model.channels_last"):
        compose_train(["model.channels_last=maybe"])


def test_trainer_mps_is_apples_gpu_in_fp32_without_the_cpu_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    import cifarlab.training.precision as precision

    def no_probe() -> str:
        raise AssertionError("the CPU probe ran for MPS")

    monkeypatch.setattr(precision, "cpu_precision", no_probe)
    cfg = compose_train(["trainer=mps"])
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.precision) == ("mps", 1, "32-true")
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision.torch.backends.mps, "is_available", lambda: True)
    assert precision.best_precision("auto") == "32-true"
