"""The Gradio app: its callbacks called directly, then the served app through gradio_client."""
from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from cifarlab.app.explorer import DISPLAY, MAX_SHOWN, Explorer
from cifarlab.app.ui import build_app, launch
from cifarlab.data.decode import read_upload, to_cifar, to_rgb
from cifarlab.errors import CifarlabError, ConfigError
from cifarlab.examples import CLASS_NAMES, TEST_INDICES, example_paths
from cifarlab.reports.config import ReportSettings, RobustnessSettings
from cifarlab.reports.evaluate import SCHEMA, write_report
from cifarlab.runs.run import TrainedRun
from conftest import CLASSES, QUICK_REPORT, REAL_DATA, run_script


@pytest.fixture(scope="module")
def explorer(trained_run: Path) -> Explorer:
    return Explorer(TrainedRun(trained_run))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(explorer: Explorer) -> Iterator[str]:
    """The app served on 127.0.0.1 at a free port; yields its URL."""
    demo = launch(build_app(explorer), "127.0.0.1", free_port(), block=False)
    yield demo.local_url
    demo.close()


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


# ---- uploads -> 32 x 32 RGB, normalised inside the model with the checkpoint's statistics

@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1"])
@pytest.mark.parametrize("size", [(7, 5), (32, 32), (300, 200)])
def test_any_mode_and_size_becomes_a_normalised_32x32_rgb_tensor(mode: str, size: tuple[int, int],
                                                                  explorer: Explorer, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    grey16 = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey16) if mode == "I;16" else rgb.convert(mode)
    path = save(image, tmp_path / "upload.png")
    pixels = read_upload(str(path), 40)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    x = explorer.run.model.normalise(torch.from_numpy(pixels[None]))
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    mean, std = (np.array(explorer.run.train_metrics.data[k]) for k in ("mean", "std"))
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), (pixels / 255 - mean) / std, atol=1e-5)
    if mode in ("L", "LA", "I;16", "1"):
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    if mode in ("RGB", "L", "I;16") and size == (32, 32):  # no resizing: the pixels themselves (16 bits scaled to 8)
        want = np.asarray(rgb) if mode == "RGB" else np.asarray(rgb.convert("L"))[..., None]
        np.testing.assert_array_equal(pixels, np.broadcast_to(want, pixels.shape))


def test_transparency_is_composited_on_white_and_palette_keeps_its_colours(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (40, 40), (255, 0, 0, 0))
    assert (to_cifar(to_rgb(clear)) == 255).all()
    palette = Image.new("RGB", (64, 64), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    assert (to_cifar(to_rgb(Image.open(save(palette, tmp_path / "p.png")))) == (10, 200, 30)).all()


def test_box_downscale_returns_the_32x32_image_of_a_4x_nearest_upscale() -> None:
    small = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((128, 128), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(to_cifar(big), small)


def test_examples_are_ten_128px_pngs_one_per_class() -> None:
    paths = example_paths()
    assert [p.stem for p in paths] == CLASS_NAMES == CLASSES
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (128, 128) and image.mode == "RGB"


@pytest.mark.slow  # reads all of the real CIFAR-10
@pytest.mark.real_data
@pytest.mark.skipif(not (REAL_DATA / "cifar-10-batches-py" / "test_batch").is_file(),
                    reason=f"real CIFAR-10 not found in {REAL_DATA}/cifar-10-batches-py: set CIFARLAB_DATA")
def test_examples_are_the_first_test_image_of_each_class() -> None:
    from cifarlab.data import load_cifar10

    arrays = load_cifar10(REAL_DATA)
    for k, path in enumerate(example_paths()):
        first = int(np.flatnonzero(arrays.test_labels == k)[0])
        assert TEST_INDICES[CLASS_NAMES[k]] == first
        np.testing.assert_array_equal(to_cifar(to_rgb(Image.open(path))), arrays.test_images[first])


# ---- callbacks called directly

@pytest.mark.parametrize("k", [1, 3, 10, 5.0])
def test_predict_returns_top_k_sorted_probabilities(k: float, explorer: Explorer) -> None:
    top = explorer.predict(str(example_paths()[3]), k)
    assert isinstance(top, dict) and len(top) == int(k)
    assert set(top) <= set(explorer.class_names)
    values = list(top.values())
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in values)
    assert values == sorted(values, reverse=True) and sum(values) <= 1 + 1e-6


def test_predict_on_an_upscaled_image_equals_predict_on_its_32x32_pixels(explorer: Explorer) -> None:
    small = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((128, 128), Image.Resampling.NEAREST))
    assert explorer.predict(small, 10) == explorer.predict(big, 10)
    assert sum(explorer.predict(small, 10).values()) == pytest.approx(1.0, abs=1e-5)


def test_gradcam_of_an_upload(explorer: Explorer) -> None:
    example = str(example_paths()[0])
    for layer in explorer.blocks[:2] + [explorer.default_block]:
        cam = explorer.gradcam(example, True, layer, 0.7)
        assert cam.shape == (DISPLAY, DISPLAY, 3) and cam.dtype == np.uint8
    assert explorer.gradcam(example, False, explorer.default_block, 0.5) is None


def test_misclassified_gallery_and_their_gradcam(explorer: Explorer) -> None:
    summary = explorer.test_summary()
    assert "of 100 test images misclassified" in summary, summary
    gallery = explorer.misclassified(True, 4)
    assert len(gallery) == min(4, len(explorer.mistakes().indices)) and gallery, summary
    for image, caption in gallery:
        assert image.shape == (DISPLAY, DISPLAY, 3) and image.dtype == np.uint8
        true, predicted = caption.removeprefix("true: ").split(" (")[0].split(", pred: ")
        assert true != predicted and {true, predicted} <= set(explorer.class_names), caption
    cams = explorer.misclassified_gradcam(True, 3, explorer.default_block, 0.5)
    assert len(cams) == min(3, len(gallery)) and all(c.shape == (DISPLAY, DISPLAY, 3) for c, _ in cams)
    assert [c for _, c in cams] == [c for _, c in gallery[:len(cams)]]
    assert explorer.misclassified(False, 4) == [] and explorer.misclassified_gradcam(False, 4, None, 0.5) == []


def test_feature_maps_show_one_channel_per_block(explorer: Explorer) -> None:
    maps = explorer.feature_maps(str(example_paths()[5]), 7)
    assert explorer.features.blocks == ["prep", "layer1", "layer2", "layer3"]
    assert [caption.split(":")[0] for _, caption in maps] == explorer.features.blocks
    assert all(image.shape == (DISPLAY, DISPLAY, 3) and image.dtype == np.uint8 for image, _ in maps)
    assert "channel 7 of 512, 4x4" in maps[-1][1]


def test_kernel_grids(explorer: Explorer) -> None:
    first = explorer.kernels(explorer.conv_layers[0])  # 64 RGB kernels: 8 x 8 tiles of 3x3 weights, 26 px each
    assert first.shape == (8 * (3 * 26 + 2) - 2, 8 * (3 * 26 + 2) - 2, 3) and first.dtype == np.uint8
    deep = explorer.kernels("layer3.conv.0")  # 512 x 256: the first 32 x 32, 6 px per weight
    assert deep.shape == (32 * (3 * 6 + 2) - 2, 32 * (3 * 6 + 2) - 2, 3)


# ---- bad input: a clear message, and the next request is served

def big_png(path: Path) -> Path:
    Image.new("L", (10_000, 10_000)).save(path, compress_level=1)
    return path


@pytest.mark.parametrize("call, message", [
    (lambda e, p: e.predict(str(p / "notes.txt"), 3), "'notes.txt' is not an image"),
    (lambda e, p: e.predict(str(p / "empty.png"), 3), "'empty.png' is empty (0 bytes)"),
    (lambda e, p: e.predict(str(p / "half.png"), 3), "'half.png' could not be decoded (image file is truncated)"),
    (lambda e, p: e.predict(str(big_png(p / "huge.png")), 3), "is 10000 x 10000 = 100 megapixels, more than the 40"),
    (lambda e, p: e.predict(None, 3), "no image"),
    (lambda e, p: e.predict(str(example_paths()[0]), 0), "k (classes shown) must be a whole number from 1 to 10"),
    (lambda e, p: e.predict(str(example_paths()[0]), 11), "from 1 to 10, got 11"),
    (lambda e, p: e.predict(str(example_paths()[0]), 2.5), "got 2.5"),
    (lambda e, p: e.gradcam(str(example_paths()[0]), True, "layer9", 0.5), "'layer9' is not a block of CustomResNet; valid"),
    (lambda e, p: e.gradcam(str(example_paths()[0]), True, "layer3", 1.5), "opacity must be a number from 0 to 1"),
    (lambda e, p: e.misclassified(True, 0), "number of images must be a whole number from 1 to 25"),
    (lambda e, p: e.misclassified_gradcam(True, 3, "fc", 0.5), "target_layer='fc' is not a block"),
    (lambda e, p: e.feature_maps(str(example_paths()[0]), 64), "channel must be a whole number from 0 to 63, got 64"),
    (lambda e, p: e.feature_maps(str(example_paths()[0]), -1), "got -1"),
    (lambda e, p: e.kernels("layer3"), "unknown conv layer 'layer3': choose from prep.0"),
])
def test_bad_input_raises_a_clear_message(call, message: str, explorer: Explorer, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    png = example_paths()[0].read_bytes()
    (tmp_path / "half.png").write_bytes(png[:len(png) // 2])
    with pytest.raises(CifarlabError) as err:
        call(explorer, tmp_path)
    assert message in str(err.value), str(err.value)
    assert len(explorer.predict(str(example_paths()[1]), 2)) == 2


def test_missing_test_data_disables_only_the_misclassified_tab(trained_run: Path, tmp_path: Path) -> None:
    explorer = Explorer(TrainedRun(trained_run, data_root=tmp_path / "nowhere"))
    assert "no CIFAR-10 test set at" in explorer.data_problem
    with pytest.raises(CifarlabError, match="pass data.root="):
        explorer.misclassified(True, 5)
    assert len(explorer.predict(str(example_paths()[2]), 3)) == 3
    build_app(explorer)  # the UI still builds, with the message in the tab


def test_eval_dir_gives_the_same_misclassified_images_from_predictions_npz(trained_run: Path, explorer: Explorer,
                                                                           tmp_path: Path) -> None:
    write_report(explorer.run, tmp_path, ReportSettings(num_misclassified=1,
                                                       robustness=RobustnessSettings(enabled=False)))
    from_report = Explorer(TrainedRun(trained_run), eval_dir=tmp_path)
    assert from_report.data_problem is None and from_report.test_summary() == explorer.test_summary()
    got, want = from_report.misclassified(True, MAX_SHOWN), explorer.misclassified(True, MAX_SHOWN)
    assert [c for _, c in got] == [c for _, c in want]
    np.testing.assert_array_equal(np.stack([i for i, _ in got]), np.stack([i for i, _ in want]))


def test_eval_dir_of_another_checkpoint_is_refused_in_the_tab(trained_run: Path, tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text(f'{{"schema": "{SCHEMA}", "checkpoint": {{"sha256": "0"}}}}')
    np.savez(tmp_path / "predictions.npz", logits=np.zeros((1, 10), np.float32), labels=[0], indices=[0])
    explorer = Explorer(TrainedRun(trained_run), eval_dir=tmp_path)
    assert f"is not a report ({SCHEMA}) of" in explorer.data_problem
    with pytest.raises(CifarlabError, match="leave eval_dir unset"):
        explorer.test_summary()


def test_model_card_without_eval_dir_says_what_was_not_measured(explorer: Explorer) -> None:
    card = explorer.model_card()
    assert card.startswith("# Model card: CustomResNet") and "## Intended use" in card and "## How to reproduce" in card
    assert "Per-class recall was not measured" in card and "Calibration was not measured" in card
    assert explorer.card_figures() == []
    assert str(explorer.run.run_dir) not in card


def test_model_card_with_eval_dir_has_its_report_and_figures(trained_run: Path, explorer: Explorer,
                                                             tmp_path: Path) -> None:
    write_report(explorer.run, tmp_path, QUICK_REPORT)
    Image.new("RGB", (300, 200), (200, 10, 10)).save(tmp_path / "reliability.png")
    Image.new("RGB", (400, 100), (10, 10, 200)).save(tmp_path / "robustness.png")
    from_report = Explorer(TrainedRun(trained_run), eval_dir=tmp_path)
    card = from_report.model_card()
    assert "| test accuracy (evaluate.py) |" in card and "Lowest recall:" in card and "| true class |" in card
    def text(markdown: str) -> list[str]:  # the card's words; the figures it links are shown by the tab itself
        return [line for line in markdown.splitlines() if line and not line.startswith("![")]

    assert text(card) == text((trained_run / "MODEL_CARD.md").read_text())
    figures = from_report.card_figures()
    assert [caption for _, caption in figures] == ["Reliability diagram", "Accuracy under corruptions"]
    assert [image.shape for image, _ in figures] == [(200, 300, 3), (100, 400, 3)]
    build_app(from_report)


def test_without_a_port_gradio_serves_on_gradio_server_port(explorer: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("GRADIO_SERVER_PORT", str(port))
    demo = launch(build_app(explorer), "127.0.0.1", None, block=False)
    try:
        assert demo.server_port == port
    finally:
        demo.close()


def test_a_taken_port_is_a_clear_error(explorer: Explorer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve on 127.0.0.1:{port}"):
            launch(build_app(explorer), "127.0.0.1", port, block=False)


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("args, status, message", [
    ((), 2, "error: ckpt_path is not set"),
    (("ckpt_path=x", "server_port=http"), 1, "server_port"),  # wrong type
    (("ckpt_path=x", "eval_dri=y"), 1, "eval_dri"),  # unknown key
    (("ckpt_path=x", "max_megapixels=0"), 2, "error: max_megapixels must be positive"),
])
def test_app_py_refuses_bad_config_with_a_message_naming_the_key(args: tuple, status: int, message: str) -> None:
    result = run_script("app.py", *args)
    assert result.returncode == status, result.stderr
    assert message in result.stdout + result.stderr and "Traceback" not in result.stderr, result.stderr


# ---- the served app, through gradio_client

def test_served_app_answers_the_api(served: str, tmp_path: Path) -> None:
    client = Client(served, verbose=False)
    example = handle_file(str(example_paths()[3]))
    label = client.predict(example, 4, api_name="/predict")
    confidences = [c["confidence"] for c in label["confidences"]]
    assert len(confidences) == 4 and confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1 + 1e-6
    assert label["label"] == label["confidences"][0]["label"]
    cam = client.predict(example, True, "layer2", 0.5, api_name="/gradcam")
    assert Image.open(cam).size == (DISPLAY, DISPLAY)
    gallery = client.predict(True, 3, api_name="/misclassified")
    assert len(gallery) == 3 and gallery[0]["caption"].startswith("true: ")  # the fixture model gets most wrong
    assert len(client.predict(example, 5, api_name="/feature_maps")) == 4
    assert Image.open(client.predict("layer1.conv.0", api_name="/kernels")).size == (638, 638)
    assert client.predict(api_name="/model_card").startswith("# Model card: CustomResNet")


@pytest.mark.parametrize("args, api_name, message", [
    ((0,), "/predict", "k (classes shown) must be a whole number from 1 to 10, got 0"),
    ((11,), "/predict", "got 11"),
    (("text",), "/predict", "is not an image"),
    (("layer7",), "/gradcam", "target_layer='layer7' is not a block"),
    ((99,), "/feature_maps", "channel must be a whole number from 0 to 63, got 99"),
])
def test_served_app_reports_bad_input_and_keeps_serving(args: tuple, api_name: str, message: str, served: str,
                                                        tmp_path: Path) -> None:
    client = Client(served, verbose=False)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    image = handle_file(str(text if args == ("text",) else example_paths()[0]))
    full = {"/predict": (image, *(args if args != ("text",) else (3,))),
            "/gradcam": (image, True, *args, 0.5),
            "/feature_maps": (image, *args)}[api_name]
    with pytest.raises(AppError, match=re.escape(message)):
        client.predict(*full, api_name=api_name)
    assert len(client.predict(handle_file(str(example_paths()[0])), 2, api_name="/predict")["confidences"]) == 2
