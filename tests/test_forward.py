"""One forward from uint8 to logits: the module normalises as the float path did, train.py's test and
Run.predict agree for every TTA mode, and a checkpoint written before the module took uint8 predicts
as it did."""
from __future__ import annotations

from pathlib import Path

import albumentations as A
import lightning as L
import numpy as np
import pytest
import torch

from cifarlab.data import CIFAR10DataModule
from cifarlab.module import ImageClassifier
from cifarlab.run import Run
from cifarlab.tta import TTA_MODES

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# written by train.py at commit fd7237a (the model then took normalised floats): experiment=cpu_airbench,
# model.widths=[8,16,16], 2 epochs on 200 fixture images, fp32; its predictions by that commit's Run.predict
LEGACY_CKPT, LEGACY_PREDICTIONS = FIXTURES / "airbench_fd7237a.ckpt", FIXTURES / "airbench_fd7237a_predictions.npz"
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
    run = Run(trained_run, precision="32-true", device="cpu")
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
    run = Run(LEGACY_CKPT, precision="32-true", device="cpu")
    for tta in ("none", "flip"):
        logits = run.predict(expected["images"], tta=tta).numpy()
        np.testing.assert_array_equal(logits.argmax(1), expected[f"logits_{tta}"].argmax(1))
        np.testing.assert_allclose(logits, expected[f"logits_{tta}"], rtol=0, atol=1e-5)
