"""TrainedRun: the one reader of a train.py run dir. Finding the tested checkpoint (moved runs, unfinished
runs), and predict() against the LightningModule in eval mode and train's recorded accuracy."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from cifarlab.errors import CifarlabError, DataError
from cifarlab.module import ImageClassifier
from cifarlab.runs.run import TrainedRun

BEST = "epoch001-val_acc0.5000.ckpt"


@pytest.fixture(scope="module")
def run(trained_run: Path) -> TrainedRun:
    return TrainedRun(trained_run)


def copy_run(trained_run: Path, dest: Path, tested_path: str | None = "keep") -> Path:
    """A copy of the run elsewhere, with a second checkpoint ``BEST`` and, unless "keep", the tested
    checkpoint path of its metrics.json replaced (None deletes metrics.json)."""
    shutil.copytree(trained_run, dest)
    shutil.copy(dest / "checkpoints" / "last.ckpt", dest / "checkpoints" / BEST)
    metrics = dest / "metrics.json"
    if tested_path is None:
        metrics.unlink()
    elif tested_path != "keep":
        results = json.loads(metrics.read_text())
        results["tested_checkpoint"]["path"] = tested_path
        metrics.write_text(json.dumps(results))
    return dest


def test_relative_tested_checkpoint_is_found_in_a_moved_run(trained_run: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    moved = copy_run(trained_run, tmp_path / "moved", f"checkpoints/{BEST}")
    with caplog.at_level(logging.WARNING, logger="cifarlab.runs.run"):
        run = TrainedRun(moved)
    assert run.ckpt_path == moved / "checkpoints" / BEST and run.run_dir == moved
    assert not caplog.records


def test_absolute_tested_checkpoint_of_a_moved_run_falls_back_into_the_run_dir_aloud(
        trained_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Older metrics.json recorded an absolute path; train.py now records it relative to the run dir."""
    assert json.loads((trained_run / "metrics.json").read_text())["tested_checkpoint"]["path"] == "checkpoints/last.ckpt"
    moved = copy_run(trained_run, tmp_path / "moved", f"/elsewhere/run/checkpoints/{BEST}")
    with caplog.at_level(logging.WARNING, logger="cifarlab.runs.run"):
        run = TrainedRun(moved)
    assert run.ckpt_path == moved / "checkpoints" / BEST
    assert "outside this run dir" in caplog.text


def test_unfinished_run_warns_and_uses_last_ckpt(trained_run: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    unfinished = copy_run(trained_run, tmp_path / "unfinished", None)
    with caplog.at_level(logging.WARNING, logger="cifarlab.runs.run"):
        run = TrainedRun(unfinished)
    assert run.ckpt_path == unfinished / "checkpoints" / "last.ckpt" and run.train_metrics is None
    assert "has no metrics.json: the run did not finish" in caplog.text


def test_a_ckpt_file_knows_its_run(trained_run: Path, run: TrainedRun) -> None:
    by_file = TrainedRun(trained_run / "checkpoints" / "last.ckpt")
    assert by_file.run_dir == trained_run and by_file.train_metrics == run.train_metrics
    assert by_file.sha256 == run.sha256 and by_file.precision == run.precision == "32-true"
    assert run.class_names[3] == "cat" and run.net_name == "CustomResNet" and run.data_root is not None


def test_missing_broken_and_empty(tmp_path: Path) -> None:
    with pytest.raises(CifarlabError, match="does not exist"):
        TrainedRun(tmp_path / "nope.ckpt")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CifarlabError, match="not a readable checkpoint"):
        TrainedRun(broken)
    with pytest.raises(CifarlabError, match="holds no checkpoint"):
        TrainedRun(tmp_path)


def test_no_test_set_at_the_data_root_says_to_pass_data_root(trained_run: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"no CIFAR-10 test set at {tmp_path}.*pass data\\.root="):
        TrainedRun(trained_run, data_root=tmp_path).test_set()


def test_predict_equals_the_lightning_module_in_eval_mode(run: TrainedRun) -> None:
    images, _ = run.test_set()
    module = ImageClassifier.load_from_checkpoint(run.ckpt_path, map_location="cpu", weights_only=True).eval()
    with torch.inference_mode():
        want = module(torch.from_numpy(images))
    got = run.predict(images, batch_size=32)
    # the module's normalisation is albumentations' Normalize, to the bit
    normalise = A.Normalize(mean=run.train_metrics.data["mean"], std=run.train_metrics.data["std"], max_pixel_value=255.0)
    normalised = torch.stack([torch.from_numpy(normalise(image=image)["image"]).permute(2, 0, 1) for image in images])
    assert got.dtype == torch.float32 and got.shape == (len(images), 10)
    torch.testing.assert_close(run.model.normalise(torch.from_numpy(images)), normalised, rtol=0, atol=0)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_predict_gives_the_accuracy_train_py_recorded(run: TrainedRun) -> None:
    images, labels = run.test_set()
    acc = (run.predict(images).argmax(1).numpy() == labels).mean()
    assert acc == pytest.approx(run.train_metrics.test.acc, abs=1e-6)


def test_predict_takes_either_layout_and_flip_tta_averages_mirrored_logits(run: TrainedRun) -> None:
    images, _ = run.test_set()
    nhwc = run.predict(images[:8])
    torch.testing.assert_close(run.predict(images[:8].transpose(0, 3, 1, 2)), nhwc)
    mirrored = run.predict(np.ascontiguousarray(images[:8, :, ::-1]))
    torch.testing.assert_close(run.predict(images[:8], tta="flip"), (nhwc + mirrored) / 2, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        run.predict(images[:2].astype(np.float32))
