"""evaluate.py on a checkpoint trained on the fixture: files, sizes, parity with trainer.test, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.evaluation import evaluate_checkpoint, load_run, load_test_set
from cifarlab.explain import gradcam, layer_names, predict_proba
from conftest import run_script


@pytest.fixture(scope="module")
def trained(trained_run: Path) -> tuple[Path, dict]:
    """The shared fixture run and what train.py reported for it."""
    return trained_run, json.loads((trained_run / "metrics.json").read_text())


def evaluate(run_dir: Path, out: Path, **overrides) -> dict:
    args = dict(data_root=None, batch_size=50, precision="32-true", num_misclassified=4, target_layer=None,
                image_weight=0.5, target="predicted", tta="none", size=64) | overrides
    return evaluate_checkpoint(str(run_dir), out, **args)


@pytest.fixture(scope="module")
def report(trained: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eval")
    return out, evaluate(trained[0], out, tta="flip")


def test_accuracy_equals_what_trainer_test_reported(trained: tuple[Path, dict], report: tuple[Path, dict]) -> None:
    assert report[1]["test"]["acc"] == pytest.approx(trained[1]["test"]["acc"], abs=1e-6)
    assert report[1]["test"]["loss"] == pytest.approx(trained[1]["test"]["loss"], rel=1e-5)
    assert report[1]["checkpoint"].endswith("last.ckpt")
    assert 0.0 <= report[1]["test"]["acc_tta_flip"] <= 1.0


def test_misclassified_count_matches_predictions(trained: tuple[Path, dict], report: tuple[Path, dict]) -> None:
    loaded = load_run(trained[0])
    dataset, _ = load_test_set(loaded, None)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    preds = predict_proba(loaded.model, images).argmax(1)
    assert report[1]["num_misclassified"] == int((preds != dataset.labels).sum())
    assert report[1]["shown_misclassified"] == np.flatnonzero(preds != dataset.labels)[:4].tolist()


def test_every_png_exists_and_has_the_expected_size(report: tuple[Path, dict]) -> None:
    out, results = report
    sizes = {name: Image.open(out / name).size for name in
             ("confusion_matrix.png", "misclassified.png", "gradcam_misclassified.png", "curves.png")}
    assert sizes["confusion_matrix.png"] == (800, 800)
    assert sizes["curves.png"] == (1500, 400)
    assert sizes["misclassified.png"] == sizes["gradcam_misclassified.png"] == (800, 300)  # 4 cells of 2 x 2.6 in + title
    singles = sorted((out / "misclassified").glob("*.png"))
    assert len(singles) == 4 and all(Image.open(p).size == (64, 64) for p in singles)
    first = results["shown_misclassified"][0]
    assert singles[0].name.startswith(f"{first}_") or any(p.name.startswith(f"{first}_") for p in singles)
    per_class = results["per_class"]
    assert len(per_class) == 10 and set(per_class["cat"]) == {"precision", "recall", "accuracy"}


def test_gradcam_maps_are_32x32_in_unit_range(trained: tuple[Path, dict]) -> None:
    loaded = load_run(trained[0])
    dataset, _ = load_test_set(loaded, None)
    images = torch.stack([dataset[i][0] for i in range(6)])
    maps = gradcam(loaded.model.net, images, "layer3", targets=[0, 1, 2, 3, 4, 5], batch_size=4)
    assert maps.shape == (6, 32, 32) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and maps.max() > 0.0
    assert "layer1.res" in layer_names(loaded.model.net)


@pytest.mark.parametrize("overrides,error,message", [
    ({"num_misclassified": 0}, ConfigError, "num_misclassified=0 must be at least 1"),
    ({"num_misclassified": 10_000}, ConfigError, "only"),
    ({"target_layer": "layer9"}, ConfigError, "valid names: prep, prep.0"),
    ({"target": "sideways"}, ConfigError, "'predicted' or 'true'"),
])
def test_bad_settings_fail_before_any_output(trained: tuple[Path, dict], tmp_path: Path, overrides: dict,
                                             error: type, message: str) -> None:
    out = tmp_path / "eval"
    with pytest.raises(error, match=message):
        evaluate(trained[0], out, **overrides)
    assert not (out / "metrics.json").exists() and not (out / "misclassified.png").exists()


def test_missing_and_broken_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CifarlabError, match="does not exist"):
        load_run(tmp_path / "nope.ckpt")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CifarlabError, match="not a readable checkpoint"):
        load_run(broken)


def test_other_architecture_is_refused(trained: tuple[Path, dict]) -> None:
    with pytest.raises(CifarlabError, match="holds a CustomResNet, not the requested ResNet18"):
        load_run(trained[0], expected_target="cifarlab.models.ResNet18")


def test_cli_report_and_errors(trained: tuple[Path, dict], tmp_path: Path) -> None:
    ok = run_script("evaluate.py", f"ckpt_path={trained[0]}", "eval.num_misclassified=3", f"hydra.run.dir={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert json.loads((tmp_path / "ok" / "metrics.json").read_text())["test"]["acc"] == pytest.approx(trained[1]["test"]["acc"])
    bad = run_script("evaluate.py", f"ckpt_path={trained[0]}", "model=resnet18", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and "not the requested ResNet18" in bad.stderr
    assert not (tmp_path / "bad" / "metrics.json").exists()
    layer = run_script("evaluate.py", f"ckpt_path={trained[0]}", "eval.gradcam.target_layer=fc", f"hydra.run.dir={tmp_path / 'l'}")
    assert layer.returncode == 2 and "valid names" in layer.stderr


def test_data_mode_draws_samples_and_augmentations(cifar_root: Path, tmp_path: Path) -> None:
    proc = run_script("evaluate.py", "mode=data", f"data.root={cifar_root}", "eval.num_samples=10",
                      f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("samples.png", "augmentations.png"):
        assert Image.open(tmp_path / name).size == (1000, 560)  # 5 x 2 cells of 2 x 2.6 in + title
