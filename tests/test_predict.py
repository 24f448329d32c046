"""predict.py: which files an input names, decoding failures, predictions.csv and failures.csv
against TrainedRun.predict, top_k, GradCAM PNGs, and the command line's exit statuses."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from PIL import Image

from cifarlab.data.decode import read_upload
from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.reports.config import TTA, Paths
from cifarlab.runs.run import TrainedRun
from cifarlab.serving.config import PredictConfig
from cifarlab.serving.predict import find_files, predict, read_images, top_k_of
from conftest import CONF, ROOT, run_script

EXAMPLES = ROOT / "src" / "cifarlab" / "examples"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PNG (32 x 32), a JPEG (300 x 200) and a text file."""
    out = tmp_path_factory.mktemp("inputs")
    shutil.copy(EXAMPLES / "cat.png", out / "cat.png")
    Image.open(EXAMPLES / "dog.png").convert("RGB").resize((300, 200)).save(out / "dog.jpg", quality=90)
    (out / "notes.txt").write_text("not an image\n")
    return out


@pytest.fixture(scope="module")
def run(trained_run: Path) -> TrainedRun:
    return TrainedRun(trained_run)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def settings(trained_run: Path, out: Path, inputs, **keys) -> PredictConfig:
    return PredictConfig(ckpt_path=str(trained_run), inputs=inputs, paths=Paths(output_dir=str(out)), **keys)


def test_find_files_reads_folders_globs_files_and_lists_what_names_nothing(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    names = [str(folder / "*.png"), str(folder), str(folder / "dog.jpg"), str(tmp_path / "empty"),
             str(tmp_path / "missing.png")]
    files, failures = find_files(names)
    assert [f.name for f in files] == ["cat.png", "dog.jpg", "notes.txt"]  # each file once, in order of mention
    assert failures == [(str(tmp_path / "empty"), "the folder holds no files"),
                        (str(tmp_path / "missing.png"), "no file matches this path or pattern")]
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(folder / "dog.jpg", tree / "a" / "b" / "dog.jpg")
    shutil.copy(folder / "cat.png", tree / "a" / "cat.png")
    assert [f.relative_to(tree).as_posix() for f in find_files([str(tree / "**" / "*.jpg")])[0]] == ["a/b/dog.jpg"]


def test_read_images_decodes_as_the_app_and_gives_a_reason_for_each_unreadable_file(folder: Path,
                                                                                      tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes((folder / "cat.png").read_bytes()[:200])
    files = [folder / "cat.png", folder / "notes.txt", tmp_path / "empty.png", folder / "dog.jpg", tmp_path / "cut.png"]
    images, read, failures = read_images(files, max_megapixels=40)
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.uint8 and read == [files[0], files[3]]
    np.testing.assert_array_equal(images[1], read_upload(files[3], 40))
    reasons = dict(failures)
    assert list(reasons) == [str(files[1]), str(files[2]), str(files[4])]
    assert "not an image that can be read" in reasons[str(files[1])]
    assert "empty (0 bytes)" in reasons[str(files[2])]
    assert "could not be decoded" in reasons[str(files[4])]


def test_predictions_csv_holds_the_top_k_of_run_predict_most_probable_first(trained_run: Path, run: TrainedRun,
                                                                              folder: Path, tmp_path: Path) -> None:
    result = predict(settings(trained_run, tmp_path, [str(folder / "*.jpg"), str(folder / "cat.png")], top_k=4,
                              tta=TTA.flip))
    assert result == {"predicted": 2, "failures": [], "output_dir": str(tmp_path)}
    rows = read_csv(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["file"] + [f"{k}_{i}" for i in range(1, 5) for k in ("class", "prob")]
    assert [row["file"] for row in rows] == [str(folder / "dog.jpg"), str(folder / "cat.png")]
    images = np.stack([read_upload(folder / "dog.jpg", 40), read_upload(folder / "cat.png", 40)])
    expected = torch.softmax(run.predict(images, tta="flip"), dim=1)
    for row, probs in zip(rows, expected):
        values = [float(row[f"prob_{i}"]) for i in range(1, 5)]
        assert values == sorted(values, reverse=True) and sum(values) <= 1 + 1e-5
        top = probs.topk(4)
        assert [row[f"class_{i}"] for i in range(1, 5)] == [run.class_names[i] for i in top.indices]
        np.testing.assert_allclose(values, top.values.numpy(), rtol=1e-5, atol=1e-6)
    assert read_csv(tmp_path / "failures.csv") == []
    assert not (tmp_path / "gradcam").exists()


def test_gradcam_pngs_one_per_image_of_image_size(trained_run: Path, folder: Path, tmp_path: Path) -> None:
    result = predict(settings(trained_run, tmp_path, str(folder), top_k=1, gradcam=True, image_size=96))
    assert result["predicted"] == 2 and [f for f, _ in result["failures"]] == [str(folder / "notes.txt")]
    pngs = sorted((tmp_path / "gradcam").iterdir())
    assert [p.name for p in pngs] == ["0_cat.png", "1_dog.png"]
    for png in pngs:
        with Image.open(png) as image:
            assert image.size == (96, 96) and image.mode == "RGB"
    assert list(read_csv(tmp_path / "predictions.csv")[0]) == ["file", "class_1", "prob_1"]


@pytest.mark.parametrize("keys,message", [
    ({"top_k": 11}, "top_k=11 is more than the model's 10 classes"),
    ({"gradcam": True, "target_layer": "fc"}, "target_layer='fc' is not a block"),
])
def test_bad_settings_fail_before_any_output(trained_run: Path, folder: Path, tmp_path: Path, keys: dict,
                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        predict(settings(trained_run, tmp_path / "out", str(folder), **keys))
    assert not (tmp_path / "out").exists()


def test_config_requires_inputs_and_a_positive_top_k(trained_run: Path) -> None:
    with pytest.raises(ConfigError, match="inputs is not set"):
        PredictConfig(ckpt_path=str(trained_run))
    with pytest.raises(ConfigError, match="top_k=0 must be at least 1"):
        PredictConfig(ckpt_path=str(trained_run), inputs="x.png", top_k=0)
    assert PredictConfig(ckpt_path="r", inputs="x.png").inputs == ["x.png"]


def test_predict_yaml_takes_one_input_or_a_list_and_types_its_keys() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        assert compose("predict", overrides=["inputs=photos/**/*.jpg"]).inputs == "photos/**/*.jpg"
        assert list(compose("predict", overrides=["inputs=[a.png,b/*.jpg]"]).inputs) == ["a.png", "b/*.jpg"]
        for override in ("top_k=three", "tta=sideways", "topk=3"):
            with pytest.raises(ConfigCompositionException, match=override.split("=")[0]):
                compose("predict", overrides=[override])


def test_no_readable_input_fails_with_the_reasons(trained_run: Path, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(CifarlabError, match="no input files: .*missing.png: no file matches"):
        predict(settings(trained_run, tmp_path, str(tmp_path / "missing.png")))
    with pytest.raises(CifarlabError, match="none of the 1 input files could be read"):
        predict(settings(trained_run, tmp_path, str(folder / "notes.txt")))


@pytest.mark.slow
def test_cli_predicts_the_images_of_a_folder_and_lists_the_rest(trained_run: Path, folder: Path,
                                                                 tmp_path: Path) -> None:
    proc = run_script("predict.py", f"ckpt_path={trained_run}", f"inputs={folder}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert [row["file"] for row in read_csv(tmp_path / "predictions.csv")] == [str(folder / "cat.png"),
                                                                                str(folder / "dog.jpg")]
    assert [row["file"] for row in read_csv(tmp_path / "failures.csv")] == [str(folder / "notes.txt")]
    assert "skipped" in proc.stdout and "notes.txt" in proc.stdout and "2 images predicted; 1 skipped" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("inputs,ckpt,message", [
    ("{folder}/notes.txt", "{run}", "none of the 1 input files could be read"),
    ("{folder}/*.gif", "{run}", "no input files"),
    ("{folder}", "{folder}/notes.txt", "not a readable checkpoint"),
    ("{folder}", "{folder}/nothing", "does not exist"),
])
def test_cli_exits_2_with_a_message(trained_run: Path, folder: Path, tmp_path: Path, inputs: str, ckpt: str,
                                    message: str) -> None:
    proc = run_script("predict.py", f"ckpt_path={ckpt.format(run=trained_run, folder=folder)}",
                      f"inputs={inputs.format(folder=folder)}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "error:" in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "predictions.csv").exists()


def test_the_default_top_k_lists_three_classes_or_all_of_a_two_class_model() -> None:
    assert top_k_of(None, 10) == 3 and top_k_of(None, 2) == 2 and top_k_of(5, 10) == 5
    with pytest.raises(ConfigError, match="top_k=3 is more than the model's 2 classes: use top_k=1..2"):
        top_k_of(3, 2)
