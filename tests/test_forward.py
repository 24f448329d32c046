"""One forward from uint8 to logits: the module normalises as the float path did, train.py's test and
TrainedRun.predict agree for every TTA mode, the model node builds the module in one instantiate, and runs
written before the module took uint8, or before it was the model node, predict as they did."""
from __future__ import annotations

from pathlib import Path

import albumentations as A
import lightning as L
import numpy as np
import pytest
import torch

from hydra.utils import instantiate

from cifarlab.data import CIFAR10DataModule
from cifarlab.module import CIFAR10_MEAN, ImageClassifier
from cifarlab.runs.run import TrainedRun
from cifarlab.tta import TTA_MODES
from conftest import compose_train

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# written by train.py at commit fd7237a (the model then took normalised floats): experiment=cpu_airbench,
# model.net.widths=[8,16,16], 2 epochs on 200 fixture images, fp32; its predictions by that commit's TrainedRun.predict
LEGACY_CKPT, LEGACY_PREDICTIONS = FIXTURES / "airbench_fd7237a.ckpt", FIXTURES / "airbench_fd7237a_predictions.npz"
# a run dir (config.yaml, metrics.json, checkpoints/last.ckpt) written by train.py at commit 1fa7fc9, when the network
# was the model node and the statistics were hyperparameters: experiment=cpu_airbench model.widths=[8,16,16], 2 epochs
# on 200 fixture images, fp32; its predictions on 64 test images by that commit's TrainedRun.predict, for every TTA mode
PREVIOUS_RUN, PREVIOUS_PREDICTIONS = FIXTURES / "airbench_1fa7fc9", FIXTURES / "airbench_1fa7fc9_predictions.npz"
MEAN, STD = [0.4913, 0.4821, 0.4465], [0.2452, 0.2428, 0.2606]
CLASSES = [str(i) for i in range(10)]
NETS = {"custom_resnet": {"_target_": "cifarlab.models.CustomResNet"}, "resnet18": {"_target_": "cifarlab.models.ResNet18"},
        "airbench": {"_target_": "cifarlab.models.AirbenchNet"}}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("channels_last", [False, True])
def test_logits_of_uint8_images_equal_the_network_on_albumentations_normalised_floats(name: str, channels_last: bool) -> None:
    torch.manual_seed(0)
    module = ImageClassifier(net=NETS[name], optimizer={}, loss={"_target_": "torch.nn.CrossEntropyLoss"}, mean=MEAN,
                             std=STD, class_names=CLASSES, channels_last=channels_last).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    normalise = A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0)  # the workers path's arithmetic before
    floats = torch.stack([torch.from_numpy(normalise(image=i)["image"]).permute(2, 0, 1) for i in images])
    with torch.no_grad():
        got = module(torch.from_numpy(images).permute(0, 3, 1, 2))
        want = module.net(floats.contiguous(memory_format=torch.channels_last) if channels_last else floats)
    assert got.shape == (4, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_the_module_refuses_images_that_are_not_uint8() -> None:
    module = ImageClassifier(net=NETS["airbench"], optimizer={}, loss={"_target_": "torch.nn.CrossEntropyLoss"},
                             mean=MEAN, std=STD, class_names=CLASSES)
    with pytest.raises(ValueError, match="uint8 images, got torch.float32"):
        module(torch.zeros(2, 3, 32, 32))


def test_trainer_test_and_run_predict_give_the_same_accuracy_for_every_tta_mode(trained_run: Path,
                                                                                 cifar_root: Path) -> None:
    run = TrainedRun(trained_run, precision="32-true", device="cpu")
    images, labels = run.test_set()
    datamodule = CIFAR10DataModule(root=str(cifar_root), download=False, num_workers=0, batch_size=20,
                                   **{k: v for k, v in run.data_hparams.items() if k in ("val_size", "subset", "seed")})
    for tta in TTA_MODES:
        run.model.hparams.tta = tta
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                            enable_model_summary=False)
        tested = trainer.test(run.model, datamodule=datamodule, verbose=False)[0]
        predicted = float((run.predict(images, tta=tta).argmax(1).numpy() == labels).mean())
        assert tested.get("test/acc_tta", tested["test/acc"]) == predicted, tta


def test_a_checkpoint_written_before_the_uint8_forward_predicts_as_it_did() -> None:
    expected = np.load(LEGACY_PREDICTIONS)
    run = TrainedRun(LEGACY_CKPT, precision="32-true", device="cpu")
    for tta in ("none", "flip"):
        logits = run.predict(expected["images"], tta=tta).numpy()
        np.testing.assert_array_equal(logits.argmax(1), expected[f"logits_{tta}"].argmax(1))
        np.testing.assert_allclose(logits, expected[f"logits_{tta}"], rtol=0, atol=1e-5)


def test_a_run_written_before_the_model_node_held_the_module_predicts_as_it_did() -> None:
    expected = np.load(PREVIOUS_PREDICTIONS)
    run = TrainedRun(PREVIOUS_RUN, precision="32-true", device="cpu")
    assert "mean" in run.hparams and run.model.hparams.tta == "flip_translate"  # the statistics were hyperparameters
    for tta in TTA_MODES:
        logits = run.predict(expected["images"], tta=tta).numpy()
        np.testing.assert_array_equal(logits.argmax(1), expected[f"logits_{tta}"].argmax(1))
        np.testing.assert_allclose(logits, expected[f"logits_{tta}"], rtol=0, atol=1e-5)
    config = run.record.config  # config.yaml and the group choices in the current layout
    assert config["model"]["_target_"] == "cifarlab.module.ImageClassifier"
    assert config["model"]["net"]["widths"] == [8, 16, 16] and config["model"]["optimizer"]["_target_"] == "torch.optim.SGD"
    assert config["model"]["tta"] == "flip_translate" and "optimizer" not in config and "tta" not in config


def test_the_model_node_builds_the_module_in_one_instantiate_with_its_specs_as_plain_hyperparameters() -> None:
    cfg = compose_train(["experiment=cpu_airbench", "model.net.widths=[64,256,256]", "model.scheduler.budget_s=450"])
    module = instantiate(cfg.model, _recursive_=False)
    assert isinstance(module, ImageClassifier) and type(module.net).__name__ == "AirbenchNet"
    assert module.hparams.optimizer["_target_"] == "torch.optim.SGD" and isinstance(module.hparams.optimizer, dict)
    assert module.hparams.scheduler["budget_s"] == 450 and module.hparams.tta == "flip_translate"
    assert not {"mean", "std"} & set(module.hparams)  # the statistics are buffers, set by a fit
    torch.testing.assert_close(module.pixel_shift.flatten(), torch.tensor(CIFAR10_MEAN) * 255)
    assert {"pixel_shift", "pixel_scale"} <= set(module.state_dict())


def test_a_fit_normalises_with_the_statistics_of_its_own_training_images(trained_run: Path) -> None:
    run = TrainedRun(trained_run, precision="32-true", device="cpu")
    mean, std = run.train_metrics.data["mean"], run.train_metrics.data["std"]
    assert "mean" not in run.hparams and mean != list(CIFAR10_MEAN)  # the fixture's images are not CIFAR-10's
    torch.testing.assert_close(run.model.pixel_shift.flatten(), torch.tensor(mean) * 255)
    torch.testing.assert_close(run.model.pixel_scale.flatten(), 1 / (torch.tensor(std) * 255))
