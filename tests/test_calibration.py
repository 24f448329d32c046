"""Calibration: ECE of calibrated and over-confident synthetic logits, temperature scaling, the
reliability diagram's bins against torchmetrics; the held-out split of a run trained with
data.val_size > 0 and the report's temperature fitted on it."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.data import CIFAR10DataModule
from cifarlab.reports.calibration import (BINS, calibration_metrics, calibration_report, fit_temperature,
                                          reliability_bins, save_reliability_diagram)
from cifarlab.reports.config import ReportSettings, RobustnessSettings
from cifarlab.reports.evaluate import write_report
from cifarlab.runs.run import TrainedRun
from conftest import compose_train, tiny_overrides


def synthetic(n: int = 100_000, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (n, classes) and labels drawn from softmax(logits): calibrated by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, classes, generator=g)
    labels = torch.multinomial(torch.softmax(logits, 1), 1, generator=g).squeeze(1)
    return logits, labels


def test_calibrated_logits_have_ece_near_zero_and_over_confident_ones_do_not() -> None:
    logits, labels = synthetic()
    calibrated, over = calibration_metrics(logits, labels), calibration_metrics(3 * logits, labels)
    assert calibrated["ece"] < 0.01 and calibrated["mce"] < 0.05
    assert over["ece"] > 0.1 and over["mce"] > over["ece"]
    assert over["nll"] > calibrated["nll"] and over["brier"] > calibrated["brier"]
    assert calibrated["nll"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)))
    one_hot = torch.nn.functional.one_hot(labels, 10)
    assert calibrated["brier"] == pytest.approx(float(((torch.softmax(logits, 1) - one_hot) ** 2).sum(1).mean()))


def test_temperature_scaling_undoes_over_confidence_and_keeps_the_arg_max() -> None:
    logits, labels = synthetic()
    over = 3 * logits
    t = fit_temperature(over, labels)
    assert t == pytest.approx(3.0, rel=0.03)
    before, after = calibration_metrics(over, labels), calibration_metrics(over / t, labels)
    assert after["nll"] < before["nll"] and after["ece"] < 0.01
    assert torch.equal((over / t).argmax(1), over.argmax(1))


def test_report_fits_on_the_held_out_split_and_scores_on_the_test_set() -> None:
    (test, test_labels), (val, val_labels) = synthetic(seed=1), synthetic(20_000, seed=2)
    report = calibration_report(3 * test, test_labels, (3 * val, val_labels))
    assert report["temperature"] == pytest.approx(fit_temperature(3 * val, val_labels))
    assert report["fitted_on"] == "held-out validation split (20000 images)"
    assert report["after"] == calibration_metrics(3 * test / report["temperature"], test_labels)
    assert report["after"]["nll"] < report["before"]["nll"] and report["bins"] == BINS


def test_without_a_held_out_split_no_temperature_is_fitted_and_the_note_says_why() -> None:
    logits, labels = synthetic(1000)
    report = calibration_report(logits, labels, None)
    assert report["temperature"] is None and report["after"] is None and report["fitted_on"] is None
    assert "no temperature fitted" in report["note"] and "data.val_size=0" in report["note"]
    assert set(report["before"]) == {"ece", "mce", "nll", "brier"}


def test_reliability_bins_give_torchmetrics_ece_and_the_diagram_has_its_size(tmp_path: Path) -> None:
    logits, labels = synthetic(5000)
    logits = 3 * logits
    acc, conf, count = reliability_bins(logits, labels)
    assert acc.shape == conf.shape == count.shape == (BINS,) and count.sum() == 5000
    ece = (count * np.abs(acc - conf)).sum() / count.sum()
    assert ece == pytest.approx(calibration_metrics(logits, labels)["ece"], abs=1e-5)
    save_reliability_diagram(logits, labels, None, tmp_path / "one.png")
    save_reliability_diagram(logits, labels, 3.0, tmp_path / "two.png")
    assert Image.open(tmp_path / "one.png").size == (500, 500)
    assert Image.open(tmp_path / "two.png").size == (1000, 500)


@pytest.fixture(scope="module")
def held_out_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained with data.val_size=100 (the last 100 of the fixture's 500 training images)."""
    from cifarlab.training.pipeline import train

    out = tmp_path_factory.mktemp("held_out_run")
    train(compose_train(tiny_overrides(cifar_root) + ["data.subset=100", "data.val_size=100", "trainer.max_epochs=1"],
                      out))
    return out


@pytest.mark.slow
def test_run_finds_the_split_training_held_out(held_out_run: Path, trained_run: Path, cifar_root: Path) -> None:
    images, labels = TrainedRun(held_out_run).held_out_set()
    dm = CIFAR10DataModule(root=str(cifar_root), download=False, val_size=100, subset=100)
    dm.setup()
    np.testing.assert_array_equal(images, dm.val_set.images)
    np.testing.assert_array_equal(labels, dm.val_set.labels)
    assert TrainedRun(trained_run).held_out_set() is None  # val_size=0: validated on the test set


@pytest.mark.slow
def test_report_of_a_run_with_a_held_out_split_fits_a_temperature(held_out_run: Path, tmp_path: Path) -> None:
    run = TrainedRun(held_out_run)
    results = write_report(run, tmp_path, ReportSettings(num_misclassified=1, robustness=RobustnessSettings(
        enabled=False)), batch_size=50)
    calibration = results["calibration"]
    assert calibration["fitted_on"] == "held-out validation split (100 images)"
    assert calibration["temperature"] > 0 and not math.isnan(calibration["temperature"])
    images, labels = run.held_out_set()
    assert calibration["temperature"] == pytest.approx(fit_temperature(run.predict(images), torch.from_numpy(labels)),
                                                        rel=1e-4)
    assert set(calibration["after"]) == {"ece", "mce", "nll", "brier"} and calibration["logits"] == "plain (no TTA)"
    tta = run.hparams["tta"]  # the run's own, as train.py's and evaluate.py's accuracy with TTA
    with_tta = calibration["tta"]
    assert tta != "none" and with_tta["logits"] == f"TTA {tta}, as the accuracy with TTA"
    assert with_tta["temperature"] == pytest.approx(fit_temperature(run.predict(images, tta=tta), torch.from_numpy(labels)),
                                                     rel=1e-4)
    test_images, test_labels = run.test_set()
    assert with_tta["before"] == calibration_metrics(run.predict(test_images, 50, tta), torch.from_numpy(test_labels))
    assert Image.open(tmp_path / "reliability.png").size == (1000, 500)
    assert results["robustness"] is None and not (tmp_path / "robustness.png").exists()
