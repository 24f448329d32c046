"""Every report and the app on airbench's network (the default model): the app starts, and its GradCAM
and feature maps show structure, not a uniform map."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cifarlab.app.explorer import Explorer
from cifarlab.reports.config import ReportSettings, RobustnessSettings
from cifarlab.reports.evaluate import write_report
from cifarlab.runs.run import TrainedRun
from cifarlab.training.pipeline import train
from conftest import compose_train, tiny_overrides

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airbench_run(cifar_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cpu_airbench for 2 epochs on 200 fixture images, on a step schedule so it ends by itself."""
    out = tmp_path_factory.mktemp("airbench_run")
    train(compose_train(["experiment=cpu_airbench"] + tiny_overrides(cifar_root) + [
        "data.subset=200", "data.eval_batch_size=50", "trainer.max_epochs=2", "model.scheduler.budget_s=600"], out))
    return out


def test_the_app_starts_on_an_airbench_run_with_non_uniform_gradcam_and_feature_maps(airbench_run: Path) -> None:
    explorer = Explorer(TrainedRun(airbench_run))
    assert explorer.default_block == "block3" and explorer.features.blocks == ["whiten", "block1", "block2", "block3"]
    image = np.asarray(TrainedRun(airbench_run).test_set()[0][3])
    cam = explorer.gradcam(image, opacity=1.0)  # the heat map alone
    assert cam.shape == (128, 128, 3) and cam.std() > 5
    maps = explorer.feature_maps(image, channel=1)
    assert [caption.split(":")[0] for _, caption in maps] == ["whiten", "block1", "block2", "block3"]
    assert all(picture.std() > 1 for picture, _ in maps)


def test_evaluate_on_an_airbench_run_explains_its_last_conv_group(airbench_run: Path, tmp_path: Path) -> None:
    settings = ReportSettings(num_misclassified=4, robustness=RobustnessSettings(images=20))
    results = write_report(TrainedRun(airbench_run), tmp_path, settings)
    assert results["gradcam"]["target_layer"] == "block3"
    assert (tmp_path / "gradcam_misclassified.png").is_file()
