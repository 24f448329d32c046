"""evaluate.py on a run trained on the fixture: files, sizes, predictions.npz against TrainedRun.predict,
parity with train.py's test, calibration and robustness entries, errors; data_figures.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cifarlab.data import CIFAR10DataModule
from cifarlab.errors import ConfigError
from cifarlab.reports.config import TTA, GradcamSettings, ReportSettings, RobustnessSettings
from cifarlab.reports.data_figures import augmented, write_data_figures
from cifarlab.reports.evaluate import SCHEMA, write_report
from cifarlab.reports.gradcam import gradcam, layer_names
from cifarlab.reports.robustness import select_images
from cifarlab.runs.run import TrainedRun
from conftest import CONF, run_script


@pytest.fixture(scope="module")
def run(trained_run: Path) -> TrainedRun:
    return TrainedRun(trained_run)


@pytest.fixture(scope="module")
def report(run: TrainedRun, trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    robustness = RobustnessSettings(images=10, seed=3, baseline=str(trained_run))
    settings = ReportSettings(num_misclassified=4, image_size=64, tta=TTA.flip, robustness=robustness)
    return out, write_report(run, out, settings, batch_size=50)


def test_accuracy_and_loss_equal_what_train_py_reported(run: TrainedRun, report: tuple[Path, dict]) -> None:
    results, trained = report[1], run.train_metrics
    assert results["schema"] == SCHEMA
    assert results["test"]["acc"] == pytest.approx(trained.test.acc, abs=1e-6)
    assert results["test"]["loss"] == pytest.approx(trained.test.loss, rel=1e-5)  # equal batches: same mean
    assert results["checkpoint"]["path"].endswith("last.ckpt") and results["checkpoint"]["sha256"] == run.sha256
    assert results["test"]["tta"] == "flip" and 0.0 <= results["test"]["acc_tta"] <= 1.0
    assert json.loads((report[0] / "metrics.json").read_text()) == results


def test_predictions_npz_holds_what_run_predict_gives(run: TrainedRun, report: tuple[Path, dict]) -> None:
    images, labels = run.test_set()
    with np.load(report[0] / "predictions.npz") as saved:
        assert saved["logits"].dtype == np.float32 and saved["logits"].shape == (len(labels), 10)
        torch.testing.assert_close(torch.from_numpy(saved["logits"]), run.predict(images, batch_size=7))
        np.testing.assert_array_equal(saved["labels"], labels)
        np.testing.assert_array_equal(saved["indices"], np.arange(len(labels)))
        wrong = np.flatnonzero(saved["logits"].argmax(1) != labels)
    assert report[1]["misclassified"] == {"count": len(wrong), "shown": wrong[:4].tolist()}
    assert np.array(report[1]["confusion_matrix"]).sum() == len(labels)


def test_every_png_exists_and_has_the_expected_size(report: tuple[Path, dict]) -> None:
    out, results = report
    sizes = {name: Image.open(out / name).size for name in ("confusion_matrix.png", "misclassified.png",
                                                             "gradcam_misclassified.png", "curves.png",
                                                             "reliability.png", "robustness.png")}
    assert sizes["confusion_matrix.png"] == (800, 800)
    assert sizes["reliability.png"] == (500, 500)  # one panel: no held-out split, no temperature
    assert sizes["robustness.png"] == (720, 2740)  # severities 0-5 x 15 corruptions, 1.2 x 1.8 in cells + title
    assert sizes["curves.png"] == (1500, 400)
    # 4 cells of 2 x 2.6 in + title
    assert sizes["misclassified.png"] == sizes["gradcam_misclassified.png"] == (800, 300)
    singles = sorted((out / "misclassified").glob("*.png"))
    assert len(singles) == 4 and all(Image.open(p).size == (64, 64) for p in singles)
    assert {int(p.name.split("_")[0]) for p in singles} == set(results["misclassified"]["shown"])
    assert len(results["per_class"]) == 10 and set(results["per_class"]["cat"]) == {"precision", "recall"}


def test_calibration_without_a_held_out_split_fits_no_temperature(report: tuple[Path, dict]) -> None:
    calibration = report[1]["calibration"]
    assert set(calibration) == {"bins", "before", "temperature", "after", "fitted_on", "note", "logits", "tta"}
    assert calibration["logits"] == "plain (no TTA)" and calibration["tta"]["temperature"] is None  # the run's TTA: flip
    assert calibration["bins"] == 15 and set(calibration["before"]) == {"ece", "mce", "nll", "brier"}
    assert calibration["temperature"] is None and calibration["after"] is None and calibration["fitted_on"] is None
    assert "no temperature fitted" in calibration["note"] and "data.val_size=0" in calibration["note"]
    assert 0 <= calibration["before"]["ece"] <= calibration["before"]["mce"] <= 1
    # plain cross-entropy: the run's loss without label smoothing
    assert calibration["before"]["nll"] > 0 and 0 <= calibration["before"]["brier"] <= 2


def test_robustness_entry_scores_the_drawn_images_against_the_baseline(run: TrainedRun, trained_run: Path,
                                                                        report: tuple[Path, dict]) -> None:
    robustness = report[1]["robustness"]
    assert set(robustness) == {"suite", "images", "seed", "severities", "clean_acc", "corruptions",
                               "mean_corruption_acc", "baseline", "relative_mce"}
    assert robustness["suite"].startswith("CIFAR-10-C corruptions regenerated with make_cifar_c.py's functions on ")
    assert robustness["images"] == 10 and robustness["seed"] == 3 and robustness["severities"] == 5
    assert robustness["baseline"] == str(trained_run)
    accs = np.array(list(robustness["corruptions"].values()))
    assert accs.shape == (15, 5) and np.all((accs >= 0) & (accs <= 1))
    assert robustness["mean_corruption_acc"] == pytest.approx(accs.mean())
    images, labels = run.test_set()
    index = select_images(len(labels), 10, 3)
    assert robustness["clean_acc"] == float((run.predict(images[index]).argmax(1).numpy() == labels[index]).mean())
    # the baseline is this run: same corrupted pixels, same predictions, so every ratio is 1 (or none exists)
    assert robustness["relative_mce"] in (None, pytest.approx(1.0))


def test_gradcam_maps_are_32x32_in_unit_range(run: TrainedRun) -> None:
    images, _ = run.test_set()
    maps = gradcam(run.model, images[:6], "layer3", targets=[0, 1, 2, 3, 4, 5], batch_size=4)
    assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.max() > 0.0
    assert "layer1.res" in layer_names(run.net)


@pytest.mark.parametrize("settings,message", [
    (lambda: ReportSettings(num_misclassified=0), "num_misclassified=0 must be at least 1"),
    (lambda: ReportSettings(gradcam=GradcamSettings(image_weight=1.5)), r"image_weight=1.5 must be in \[0, 1\]"),
    (lambda: ReportSettings(num_misclassified=10_000), "only"),
    (lambda: ReportSettings(gradcam=GradcamSettings(target_layer="layer9")), "valid names: prep, prep.0"),
    (lambda: ReportSettings(robustness=RobustnessSettings(images=0)), "eval.robustness.images=0 must be at least 1"),
    (lambda: ReportSettings(robustness=RobustnessSettings(baseline="/no/such/run")),
     "eval.robustness.baseline=/no/such/run does not exist"),
])
def test_bad_settings_fail_before_any_output(run: TrainedRun, tmp_path: Path, settings, message: str) -> None:
    out = tmp_path / "eval"
    with pytest.raises(ConfigError, match=message):
        write_report(run, out, settings())
    assert not out.exists()


@pytest.mark.slow  # starts a process
def test_cli_report_and_errors(trained_run: Path, run: TrainedRun, tmp_path: Path) -> None:
    ok = run_script("evaluate.py", f"ckpt_path={trained_run}", "eval.num_misclassified=3",
                    "eval.robustness.enabled=false", f"hydra.run.dir={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    results = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert results["test"]["acc"] == pytest.approx(run.train_metrics.test.acc, abs=1e-6)
    assert results["robustness"] is None and not (tmp_path / "ok" / "robustness.png").exists()
    assert "no temperature fitted" in ok.stdout
    bad = run_script("evaluate.py", f"ckpt_path={trained_run}", "model=resnet18", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "not the requested ResNet18" in bad.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()
    layer = run_script("evaluate.py", f"ckpt_path={trained_run}", "eval.gradcam.target_layer=fc",
                       f"hydra.run.dir={tmp_path / 'l'}")
    assert layer.returncode == 2 and "valid names" in layer.stderr


@pytest.mark.slow  # starts a process
def test_cli_report_lives_with_its_run_and_in_its_tensorboard(trained_run: Path, tmp_path: Path) -> None:
    """With no hydra.run.dir: the report in <run>/eval/, the card in <run>/, the figures in the run's TensorBoard;
    the app then finds the report with no eval_dir."""
    run_dir = shutil.copytree(trained_run, tmp_path / trained_run.name)
    proc = run_script("evaluate.py", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "eval.num_misclassified=2",
                      "eval.robustness.enabled=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run_dir / "eval" / "metrics.json").is_file() and (run_dir / "MODEL_CARD.md").is_file()
    assert "](eval/confusion_matrix.png)" in (run_dir / "MODEL_CARD.md").read_text()
    assert not (tmp_path / "outputs").exists()
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()["images"]
    assert {"eval/confusion_matrix", "eval/misclassified", "eval/gradcam_misclassified", "eval/reliability"} <= set(tags)
    image = events.Images("eval/confusion_matrix")[-1]
    assert (image.width, image.height) == Image.open(run_dir / "eval" / "confusion_matrix.png").size
    from cifarlab.app.explorer import Explorer

    assert Explorer(TrainedRun(run_dir)).eval_dir == run_dir / "eval"


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("override,message", [
    ("eval.num_misclassifed=3", "eval.num_misclassifed"),  # unknown key (typo)
    ("eval.num_misclassified=abc", "eval.num_misclassified"),  # wrong type
    ("eval.tta=sideways", "eval.tta"),  # not one of the choices
    ("eval.robustness=false", "eval.robustness"),  # a group, not a switch: eval.robustness.enabled=false
    ("eval.robustness.baseline=/no/such/run", "error: eval.robustness.baseline=/no/such/run does not exist"),
    ("eval.num_misclassified=0", "error: eval.num_misclassified=0 must be at least 1"),  # out of range: ours, exit 2
    ("ckpt_path=null", "error: no checkpoint given: pass ckpt_path="),
])
def test_bad_overrides_exit_non_zero_naming_the_key_without_a_traceback(override: str, message: str,
                                                                          trained_run: Path, tmp_path: Path) -> None:
    proc = run_script("evaluate.py", f"ckpt_path={trained_run}", override, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == (2 if message.startswith("error:") else 1), proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.slow  # starts a process
def test_data_figures_draws_samples_and_augmentations(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("data_figures.py", f"data.root={cifar_root}", "num_samples=10", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("samples.png", "augmentations.png"):
        assert Image.open(tmp_path / name).size == (1000, 560)  # 5 x 2 cells of 2 x 2.6 in + title


def test_data_figures_of_the_device_path_show_its_batched_augmentation(cifar_root: Path, tmp_path: Path) -> None:
    airbench = OmegaConf.to_container(OmegaConf.load(CONF / "data/augmentation/airbench.yaml").train_transforms)
    datamodule = CIFAR10DataModule(root=str(cifar_root), download=False, train_transforms=airbench, augment_on="device",
                                   seed=0)
    write_data_figures(datamodule, tmp_path, count=10)
    assert Image.open(tmp_path / "augmentations.png").size == (1000, 560)
    shown = augmented(datamodule, 10)
    assert shown.shape == (10, 32, 32, 3) and shown.dtype == np.uint8
    assert (shown != datamodule.train_set.images[:10]).any(axis=(1, 2, 3)).sum() >= 5  # translated or flipped


def test_eval_result_is_typed_and_reads_as_its_json() -> None:
    from cifarlab.errors import DataError
    from cifarlab.runs.result import EvalResult

    payload = {"schema": SCHEMA, "checkpoint": {"path": "/r/last.ckpt", "sha256": "ab"}, "model": "AirbenchNet",
               "data_root": "data", "precision": "32-true", "device": "cpu",
               "test": {"images": 2, "acc": 0.5, "loss": 0.7, "tta": "none", "acc_tta": None},
               "per_class": {"cat": {"precision": 1.0, "recall": 0.5}}, "confusion_matrix": [[1, 1], [0, 0]],
               "misclassified": {"count": 1, "shown": [1]},
               "gradcam": {"target_layer": "block3", "target": "predicted", "image_weight": 0.5},
               "calibration": {}, "robustness": None, "inference_s": 0.1, "images_per_s": 20.0, "wall_time_s": 1.0}
    result = EvalResult.from_dict(json.loads(json.dumps(payload)))
    assert result.test.acc == 0.5 and result.misclassified.shown == [1] and result.gradcam.target_layer == "block3"
    assert result == payload and result.to_dict() == payload and list(result.to_dict())[0] == "schema"
    with pytest.raises(DataError, match="not cifarlab.eval/3"):
        EvalResult.from_dict({**payload, "schema": "cifarlab.eval/2"})
    with pytest.raises(DataError, match="cut short"):
        EvalResult.from_dict({k: v for k, v in payload.items() if k != "test"})
