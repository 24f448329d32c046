"""MODEL_CARD.md: every section, the measured numbers, "not measured" for what was not, and no
absolute path; evaluate.py's report writes one."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cifarlab.reports.evaluate import write_report
from cifarlab.reports.model_card import no_absolute_paths, render_model_card
from cifarlab.runs.run import TrainedRun
from cifarlab.runs.rundir import RunDir
from conftest import CLASSES, QUICK_REPORT

SECTIONS = ["## Intended use", "## Data", "## Accuracy", "## Per-class recall", "## Worst confusion pairs",
            "## Calibration", "## Robustness", "## Hardware", "## Time", "## How to reproduce"]
ABSOLUTE = re.compile(r"(^|[\s=(`'\"\[:,])/\w")  # a path that starts at the root


def train_metrics(**extra) -> dict:
    return {"schema": "cifarlab.train/1", "model": "CustomResNet", "seed": 0, "val": None, "val_size": 0,
            "test": {"acc": 0.9123, "loss": 0.3, "images": 10000, "tta": "flip", "acc_tta": 0.9161},
            "tested_checkpoint": {"which": "last", "path": "checkpoints/last.ckpt"}, "train_images": 50000,
            "epochs": 24, "global_step": 2352, "images_per_s": 5123.0, "train_seconds": 240.0, "wall_time_s": 260.0,
            "precision": "bf16-mixed", "accelerator": "CUDAAccelerator", "world_size": 1, "lr_find": None,
            "output_dir": "/work/main/outputs/train/runs/x",
            "data": {"root": "/work/shared/data", "checksum": {"status": "mismatch", "fingerprint": "abcdef0123456789ff",
                                                               "mismatched": ["data_batch_1", "test_batch"]}},
            **extra}


def eval_metrics(**extra) -> dict:
    matrix = [[1000 if t == p else 0 for p in range(10)] for t in range(10)]
    matrix[3][5], matrix[3][3] = 100, 900  # cat -> dog, the worst pair
    matrix[1][9], matrix[1][1] = 40, 960
    return {"schema": "cifarlab.eval/3", "checkpoint": {"path": "/abs/run/checkpoints/last.ckpt", "sha256": "4b8c" * 16},
            "model": "CustomResNet", "data_root": "/work/shared/data", "precision": "bf16-mixed", "device": "cuda",
            "test": {"images": 10000, "acc": 0.9123, "loss": 0.301, "tta": "flip", "acc_tta": 0.9158},
            "per_class": {name: {"precision": 0.9, "recall": 0.8 if name == "cat" else 0.9} for name in CLASSES},
            "confusion_matrix": matrix, "inference_s": 2.0, "images_per_s": 5000.0, "wall_time_s": 30.0, **extra}


CALIBRATION = {"bins": 15, "before": {"ece": 0.0412, "mce": 0.2, "nll": 0.31, "brier": 0.14}, "temperature": 1.37,
               "after": {"ece": 0.0123, "mce": 0.1, "nll": 0.28, "brier": 0.13}, "fitted_on": "held-out split",
               "note": "fitted on /work/shared/data's held-out images", "logits": "plain (no TTA)",
               "tta": {"bins": 15, "before": {"ece": 0.0512, "mce": 0.25, "nll": 0.29, "brier": 0.13}, "temperature": 1.21,
                       "after": {"ece": 0.0101, "mce": 0.09, "nll": 0.27, "brier": 0.12}, "fitted_on": "held-out split",
                       "note": "", "logits": "TTA flip, as the accuracy with TTA"}}
ROBUSTNESS = {"images": 1000, "seed": 0, "severities": 5, "clean_acc": 0.91, "mean_corruption_acc": 0.7012,
              "corruptions": {"gaussian_noise": [0.8, 0.7, 0.6, 0.5, 0.4], "fog": [0.9, 0.88, 0.85, 0.8, 0.7]},
              "baseline": "resnet18_20ep", "relative_mce": 0.93}
PROVENANCE = {"git_sha": "1c3b5fe0", "git_dirty": True, "device_name": "NVIDIA H200",
              "versions": {"torch": "2.14.1", "lightning": "2.6.6", "hydra": "1.3.8"},
              "command": "/work/main/.venv/bin/python train.py experiment=page_24ep data.root=/work/shared/data"}
OVERRIDES = ["experiment=page_24ep", "data.root=/work/shared/data", "seed=0"]


def test_every_section_with_every_measurement_and_no_absolute_path() -> None:
    card = render_model_card({"data": {"train_transforms": [{"_target_": "albumentations.HorizontalFlip", "p": 0.5}]}},
                             train_metrics(provenance=PROVENANCE),
                             eval_metrics(calibration=CALIBRATION, robustness=ROBUSTNESS), OVERRIDES, CLASSES,
                             "2025-01-01_10-00-00_abc123", ["reliability.png", "robustness.png"])
    positions = [card.index(section) for section in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    assert card.startswith("# Model card: CustomResNet, run 2025-01-01_10-00-00_abc123")
    for part in ("CIFAR-10 (JPEG q75 copy)", "data_batch_1, test_batch", "`[HorizontalFlip(p=0.5)]`",
                 "| test accuracy (evaluate.py) | 91.23 % |", "| test accuracy with TTA flip (evaluate.py) | 91.58 % |",
                 "| test accuracy with TTA flip (train.py's test) | 91.61 % |",
                 "Lowest recall: **cat**", "| cat | dog | 100 | 10.00 % |", "| automobile | truck | 40 | 4.00 % |",
                 "| softmax, plain (no TTA) | 4.12 % | 20.00 % | 0.3100 | 0.1400 |",
                 "| softmax, TTA flip, as the accuracy with TTA | 5.12 % | 25.00 % | 0.2900 | 0.1300 |", "T = 1.21",
                 "T = 1.37, fitted on held-out split", "15 confidence bins",
                 "![reliability diagram](reliability.png)", "| gaussian_noise | 80.0 | 70.0 | 60.0 | 50.0 | 40.0 |",
                 "relative mCE 0.93 against resnet18_20ep", "![robustness](robustness.png)", "NVIDIA H200",
                 "python train.py experiment=page_24ep data.root=<data> seed=0", "python evaluate.py ckpt_path=<run dir>",
                 "git commit `1c3b5fe0` with uncommitted changes", "torch 2.14.1, lightning 2.6.6, hydra 1.3.8",
                 "`<python> train.py experiment=page_24ep data.root=<data>`", "2,352", "sha256 `4b8c4b8c4b8c4b8c…`"):
        assert part in card, part
    assert "![confusion matrix]" not in card  # not among the figures beside it
    assert "not measured" in card.split("## Accuracy")[1].split("##")[0]  # no held-out split
    assert not ABSOLUTE.search(card), ABSOLUTE.search(card)
    assert "/work" not in card and "/abs" not in card


def test_what_was_not_measured_says_so() -> None:
    card = render_model_card(None, None, eval_metrics(calibration=None, robustness=None), None, CLASSES)
    for section in ("## Calibration", "## Robustness"):
        assert "was not measured" in card.split(section)[1].split("##")[0], section
    assert "overrides were not recorded" in card and "not measured (no provenance" in card
    bare = render_model_card(None, train_metrics(), None, None, CLASSES)
    assert all(section in bare for section in SECTIONS)
    assert "Per-class recall was not measured: run `python evaluate.py" in bare
    assert "| test accuracy (evaluate.py) | not measured |" in bare and "| test accuracy (train.py's test) | 91.23 % |" in bare


@pytest.mark.parametrize("text, want", [
    ("data.root=/work/shared/data seed=1", "data.root=<data> seed=1"),
    ("/usr/bin/python train.py", "<python> train.py"),
    ("data.root=../shared/data images/s", "data.root=../shared/data images/s"),
])
def test_absolute_paths_become_their_last_part(text: str, want: str) -> None:
    assert no_absolute_paths(text) == want


@pytest.mark.slow
def test_evaluate_report_writes_a_model_card_into_the_run_dir(trained_run: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(trained_run, tmp_path / trained_run.name)
    write_report(TrainedRun(run_dir), RunDir(run_dir).eval, QUICK_REPORT)
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert not (run_dir / "eval" / "MODEL_CARD.md").exists()
    assert all(section in card for section in SECTIONS)
    assert f"run {trained_run.name}" in card and "![confusion matrix](eval/confusion_matrix.png)" in card
    assert "| test accuracy (evaluate.py) |" in card and "overrides were not recorded" in card
    assert str(tmp_path.parent.parent) not in card and not ABSOLUTE.search(card), ABSOLUTE.search(card)
