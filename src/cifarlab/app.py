"""The Gradio app: what a trained classifier makes of an image, where it looks, and where it fails.

Tabs: *Predict* (top-k classes and GradCAM of an uploaded or example image), *Misclassified*
(test images the model gets wrong, captioned, with their GradCAM), *Feature maps* (one
channel's activation in each block) and *Kernels* (a conv layer's weights). No training:
the model comes from a checkpoint, the test-set predictions from an evaluate.py output dir
or, on the first request, from the test set at the data root the checkpoint records.

The callbacks are the methods of :class:`Explorer`; they take and return plain values
(numpy arrays, dicts, lists of (image, caption)), so tests call them without a server. A
problem the user caused (a file that is not an image, a layer that does not exist) raises
:class:`gradio.Error` with a message saying what to do; the app keeps serving.
"""
from __future__ import annotations

import functools
import html
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cifarlab import explain, features
from cifarlab.checkpoints import data_root as checkpoint_data_root
from cifarlab.checkpoints import load_classifier, resolve_checkpoint
from cifarlab.data import BASE_FOLDER, TEST_FILES, load_cifar10
from cifarlab.errors import CifarlabError, ConfigError, DataError
from cifarlab.examples import example_paths
from cifarlab.module import ImageClassifier
from cifarlab.plotting import upscale
from cifarlab.data.augment import build_eval_transform

log = logging.getLogger(__name__)

SIZE = 32  # CIFAR-10 images are 32 x 32
DISPLAY = 128  # images are shown upscaled 4x (nearest), as in the example PNGs
MAX_SHOWN = 25  # misclassified test images a gallery shows at most
# System fonts: Gradio's default theme loads Google Fonts, which an offline machine cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def user_errors(fn: Callable) -> Callable:
    """Turn a :class:`CifarlabError` raised by a callback into :class:`gradio.Error`, which the UI
    and the API client show as the message (other exceptions stay internal errors)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CifarlabError as err:  # the modal renders HTML: a file name must not inject any
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from err
    return wrapper


def _name(value: Any) -> str:
    """How to refer to an upload in a message: its original file name where known."""
    if isinstance(value, Mapping):
        return repr(value.get("orig_name") or Path(str(value.get("path"))).name)
    return repr(Path(value).name) if isinstance(value, (str, Path)) else "the image"


def open_image(value: Any, max_megapixels: float) -> Image.Image:
    """The image in ``value``, decoded: a path, Gradio's file payload (a dict with ``path``), a
    PIL image or a uint8 array (H, W) or (H, W, 3|4).

    Raises:
        CifarlabError: nothing given, an empty file, a file PIL cannot decode, or more than
            ``max_megapixels`` million pixels (checked from the header, before decoding; PIL's
            own decompression-bomb limit applies too).
    """
    if value is None:
        raise CifarlabError("no image: upload one or pick an example first")
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        image = Image.fromarray(value)
    else:
        path = Path(value["path"] if isinstance(value, Mapping) else value)
        if not path.is_file():
            raise CifarlabError(f"{_name(value)} was not found: upload the image again")
        if path.stat().st_size == 0:
            raise CifarlabError(f"{_name(value)} is empty (0 bytes): upload an image file (PNG, JPEG, WebP, ...)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
                image = Image.open(path)
        except Image.DecompressionBombError as err:
            raise CifarlabError(f"{_name(value)} is too large to decode safely ({err}); "
                                f"upload an image of at most {max_megapixels:g} megapixels") from err
        except (UnidentifiedImageError, OSError) as err:
            raise CifarlabError(f"{_name(value)} is not an image that can be read (PNG, JPEG, WebP, GIF, BMP, TIFF): "
                                "upload an image file") from err
    width, height = image.size
    if width * height > max_megapixels * 1e6:
        raise CifarlabError(f"{_name(value)} is {width} x {height} = {width * height / 1e6:.0f} megapixels, "
                            f"more than the {max_megapixels:g} allowed: upload a smaller image")
    image.draft(None, (SIZE * 2, SIZE * 2))  # JPEG: decode at 1/2..1/8 scale, enough for 32 x 32
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as err:
        raise CifarlabError(f"{_name(value)} could not be decoded ({err}): upload the complete file again") from err
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB, upright: EXIF rotation applied, 16-bit grey scaled to 8 bits,
    transparency (RGBA, LA, palette with a transparent colour) composited onto white."""
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError):  # a malformed EXIF block: keep the image as stored
        pass
    if image.mode.startswith("I;16"):
        image = Image.fromarray((np.asarray(image, dtype=np.float32) / 257).round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def to_cifar(image: Image.Image) -> np.ndarray:
    """An RGB image of any size -> (32, 32, 3) uint8: the central square, box-filtered down
    (area averaging; it returns the 32 x 32 original of a 4x nearest upscale exactly)."""
    return np.array(ImageOps.fit(image, (SIZE, SIZE), method=Image.Resampling.BOX), dtype=np.uint8)


def _as_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; whole floats (1.0) count as ints, as sliders send them.

    Raises:
        CifarlabError: not a whole number, or out of range.
    """
    try:
        whole = float(value).is_integer() and not isinstance(value, bool)
    except (TypeError, ValueError):
        whole = False
    if not whole or not low <= int(value) <= high:
        raise CifarlabError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _as_fraction(name: str, value: Any) -> float:
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0.0 <= fraction <= 1.0:
        raise CifarlabError(f"{name} must be a number from 0 to 1, got {value!r}")
    return fraction


@dataclass
class Mistakes:
    """The misclassified test images, in test-set order: images (M, 32, 32, 3) uint8, labels (M,)
    int64 true classes, probs (M, C) float32 the model's probabilities, indices (M,) their places in
    the test set; ``total`` test images of which ``count`` (>= M) are misclassified."""

    images: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    indices: np.ndarray
    total: int
    count: int


class Explorer:
    """A trained classifier and the app's callbacks on it.

    Args:
        model: an :class:`ImageClassifier` in eval mode, on the CPU.
        data_root: folder holding ``cifar-10-batches-py/`` for the misclassified tab; None
            when unknown (that tab then says so).
        eval_dir: an evaluate.py output dir whose test-set predictions are used instead of
            computing them; None computes them on the first request and keeps them in memory.
        max_megapixels: larger uploads are refused.
        source: what the model was loaded from, shown in the header.
    """

    def __init__(self, model: ImageClassifier, data_root: str | Path | None = None, eval_dir: str | Path | None = None,
                 max_megapixels: float = 40.0, source: str = "") -> None:
        self.model = model.eval()
        self.net = model.net
        self.mean, self.std = list(model.hparams.mean), list(model.hparams.std)
        self.class_names = list(model.hparams.class_names)
        self.transform = build_eval_transform(self.mean, self.std)
        self.data_root = Path(data_root).expanduser() if data_root else None
        self.eval_dir = Path(eval_dir).expanduser() if eval_dir else None
        self.max_megapixels = max_megapixels
        self.source = source
        self.blocks = explain.layer_names(self.net)
        self.default_block = explain.default_target_layer(self.net)
        self.top_blocks = [name for name in self.blocks if "." not in name]
        self.conv_layers = features.conv_layer_names(self.net)
        self.channels = features.block_channels(self.net, self.top_blocks)
        # Forward passes of the shared network run in parallel (GradCAM and feature maps hook copies
        # of it); this lock only makes the test-set results and the GradCAM cache be computed once.
        self._lock = threading.Lock()
        self._mistakes: Mistakes | None = None
        self._cams: dict[str, np.ndarray] = {}

    @classmethod
    def from_checkpoint(cls, ckpt_path: str | Path | None, data_root: str | Path | None = None,
                        eval_dir: str | Path | None = None, max_megapixels: float = 40.0) -> Explorer:
        """Load a ``.ckpt`` file or a train.py run dir. ``data_root`` None: the one the checkpoint records.

        Raises:
            CifarlabError: no or a bad checkpoint path, a non-positive ``max_megapixels``.
        """
        if not ckpt_path:
            raise ConfigError("ckpt_path is not set: python app.py ckpt_path=<train.py run dir or .ckpt file> "
                              "(make app CKPT=...)")
        if not max_megapixels or max_megapixels <= 0:
            raise ConfigError(f"max_megapixels must be positive, got {max_megapixels!r}")
        path = resolve_checkpoint(ckpt_path)
        return cls(load_classifier(path), data_root or checkpoint_data_root(path), eval_dir, max_megapixels, str(path))

    # ---- inputs
    def image_tensor(self, value: Any) -> tuple[np.ndarray, torch.Tensor]:
        """An upload -> (the (32, 32, 3) uint8 image the model sees, (1, 3, 32, 32) float32 normalised
        with the training statistics stored in the checkpoint)."""
        pixels = to_cifar(to_rgb(open_image(value, self.max_megapixels)))
        return pixels, self.normalise(pixels[None])

    def normalise(self, images: np.ndarray) -> torch.Tensor:
        """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) float32, as the model was evaluated in training."""
        return torch.stack([self.transform(image=image)["image"] for image in images])

    def _block(self, layer: Any) -> str:
        if layer not in self.blocks:
            raise ConfigError(f"unknown layer {layer!r}: choose one of {', '.join(self.blocks)}")
        return layer

    def _overlay(self, pixels: np.ndarray, cam: np.ndarray, opacity: float) -> np.ndarray:
        """(32, 32, 3) uint8 + (32, 32) map -> (128, 128, 3) uint8 heat map over the upscaled image."""
        big = upscale(pixels[None], DISPLAY)[0].astype(np.float32) / 255
        return explain.overlay(big, cam, image_weight=1.0 - opacity)

    # ---- Predict tab
    @user_errors
    def predict(self, image: Any, k: Any = 3) -> dict[str, float]:
        """Top-``k`` classes of an upload: {class name: probability}, most probable first (k in 1..10)."""
        k = _as_int("k (classes shown)", k, 1, len(self.class_names))
        _, x = self.image_tensor(image)
        probs = explain.predict_proba(self.model, x)[0]
        top = np.argsort(-probs, kind="stable")[:k]
        return {self.class_names[i]: float(probs[i]) for i in top}

    @user_errors
    def gradcam(self, image: Any, show: bool = True, layer: Any = None, opacity: Any = 0.5) -> np.ndarray | None:
        """GradCAM of the predicted class over an upload: (128, 128, 3) uint8, or None when not ``show``."""
        if not show:
            return None
        layer = self._block(layer or self.default_block)
        opacity = _as_fraction("opacity", opacity)
        pixels, x = self.image_tensor(image)
        cam = explain.gradcam(self.net, x, layer)[0]
        return self._overlay(pixels, cam, opacity)

    # ---- Misclassified tab
    def test_data_problem(self) -> str | None:
        """Why the misclassified tab cannot work (a message), or None when its data is there."""
        if self.eval_dir is not None:
            if not (self.eval_dir / "metrics.json").is_file():
                return (f"eval_dir={self.eval_dir} holds no metrics.json: give the output dir of a finished "
                        "evaluate.py run, or leave eval_dir unset to predict the test set here")
            return None
        how = f"start the app with data_root=DIR (the folder holding {BASE_FOLDER}/) to see misclassified test images"
        if self.data_root is None:
            return f"the checkpoint records no data root: {how}"
        if not (self.data_root / BASE_FOLDER / TEST_FILES[0]).is_file():
            return f"no CIFAR-10 test set at {self.data_root / BASE_FOLDER}: {how}"
        return None

    def mistakes(self) -> Mistakes:
        """The misclassified test images: read from ``eval_dir`` or predicted on the first call, then cached.

        Raises:
            DataError: the data is not there (see :meth:`test_data_problem`), or ``eval_dir`` is
                the report of another checkpoint.
        """
        with self._lock:
            if self._mistakes is None:
                problem = self.test_data_problem()
                if problem:
                    raise DataError(problem)
                self._mistakes = self._read_eval_dir() if self.eval_dir is not None else self._predict_test_set()
            return self._mistakes

    def _predict_test_set(self) -> Mistakes:
        arrays = load_cifar10(self.data_root)
        probs = explain.predict_proba(self.model, self.normalise(arrays.test_images))
        wrong = explain.misclassified(probs, arrays.test_labels)
        return Mistakes(arrays.test_images[wrong], arrays.test_labels[wrong], probs[wrong], wrong,
                        len(arrays.test_labels), len(wrong))

    def _read_eval_dir(self) -> Mistakes:
        """evaluate.py's ``metrics.json`` and ``misclassified/<index>_<true>_<pred>.png`` (the test
        images upscaled by nearest neighbour, which the box filter of :func:`to_cifar` undoes)."""
        metrics = json.loads((self.eval_dir / "metrics.json").read_text())
        if Path(metrics["checkpoint"]).resolve() != Path(self.source).resolve():
            raise DataError(f"eval_dir={self.eval_dir} is the report of {metrics['checkpoint']}, not of {self.source}: "
                            "give the evaluate.py output of this checkpoint, or leave eval_dir unset")
        names = self.class_names
        classes = {f"{true}_{pred}": i for i, true in enumerate(names) for pred in names}
        images, labels = [], []
        for index in metrics["shown_misclassified"]:
            files = sorted((self.eval_dir / "misclassified").glob(f"{index}_*.png"))
            pair = files[0].stem.split("_", 1)[1] if files else None
            if pair not in classes:
                raise DataError(f"{self.eval_dir / 'misclassified'} lacks the image of test image {index} "
                                "that metrics.json lists: run evaluate.py again")
            images.append(to_cifar(to_rgb(Image.open(files[0]))))
            labels.append(classes[pair])
        images_array = np.stack(images) if images else np.zeros((0, SIZE, SIZE, 3), np.uint8)
        probs = explain.predict_proba(self.model, self.normalise(images_array)) if images else np.zeros((0, len(names)))
        return Mistakes(images_array, np.array(labels, dtype=np.int64), probs.astype(np.float32),
                        np.array(metrics["shown_misclassified"], dtype=np.int64), metrics["test"]["images"],
                        metrics["num_misclassified"])

    @user_errors
    def test_summary(self) -> str:
        """One line of Markdown: how many test images the model gets wrong (and how many the app has)."""
        m = self.mistakes()
        line = f"{m.count:,} of {m.total:,} test images misclassified (accuracy {100 * (1 - m.count / m.total):.2f} %)."
        if len(m.images) < min(m.count, MAX_SHOWN):
            line += f" The evaluate.py report in eval_dir holds {len(m.images)} of them."
        return line

    def _caption(self, m: Mistakes, i: int) -> str:
        """"true: cat, pred: dog (54%) #12": true class, predicted class and its probability, test-set index."""
        predicted = int(m.probs[i].argmax())
        return (f"true: {self.class_names[m.labels[i]]}, pred: {self.class_names[predicted]} "
                f"({100 * m.probs[i, predicted]:.0f}%) #{m.indices[i]}")

    @user_errors
    def misclassified(self, show: bool = True, count: Any = 10) -> list[tuple[np.ndarray, str]]:
        """The first ``count`` (1..25) misclassified test images: [((128, 128, 3) uint8, caption)].
        Fewer when there are fewer."""
        if not show:
            return []
        count = _as_int("number of images", count, 1, MAX_SHOWN)
        m = self.mistakes()
        return [(image, self._caption(m, i)) for i, image in enumerate(upscale(m.images[:count], DISPLAY))]

    @user_errors
    def misclassified_gradcam(self, show: bool = True, count: Any = 10, layer: Any = None,
                              opacity: Any = 0.5) -> list[tuple[np.ndarray, str]]:
        """GradCAM of the predicted class over the first ``count`` (1..25) misclassified test images:
        [((128, 128, 3) uint8, caption)]. The maps of a layer are computed once and kept."""
        if not show:
            return []
        count = _as_int("number of images", count, 1, MAX_SHOWN)
        layer = self._block(layer or self.default_block)
        opacity = _as_fraction("opacity", opacity)
        m = self.mistakes()
        with self._lock:
            if layer not in self._cams:
                first = m.images[:MAX_SHOWN]
                self._cams[layer] = (explain.gradcam(self.net, self.normalise(first), layer,
                                                     targets=m.probs[:MAX_SHOWN].argmax(1).tolist())
                                     if len(first) else np.zeros((0, SIZE, SIZE), np.float32))
            cams = self._cams[layer]
        return [(self._overlay(m.images[i], cams[i], opacity), self._caption(m, i))
                for i in range(min(count, len(cams)))]

    # ---- Feature maps and Kernels tabs
    @user_errors
    def feature_maps(self, image: Any, channel: Any = 0) -> list[tuple[np.ndarray, str]]:
        """Channel ``channel`` of each block's output for an upload: [((128, 128, 3) uint8, caption)]."""
        channel = _as_int("channel", channel, 0, min(self.channels.values()) - 1)
        _, x = self.image_tensor(image)
        maps = features.channel_maps(self.net, x, channel, self.top_blocks)
        return [(upscale(features.colourise(m.values)[None], DISPLAY)[0],
                 f"{m.block}: channel {m.channel} of {m.channels}, {m.values.shape[0]}x{m.values.shape[1]}")
                for m in maps]

    @user_errors
    def kernels(self, layer: Any = None) -> np.ndarray:
        """The kernels of conv layer ``layer`` as a grid: (H, W, 3) uint8 (see :func:`features.kernel_grid`)."""
        return features.kernel_grid(features.conv_weight(self.net, layer or self.conv_layers[0]))


def build_app(explorer: Explorer) -> gr.Blocks:
    """The UI around ``explorer``'s callbacks. API endpoints: /predict, /gradcam, /misclassified,
    /misclassified_gradcam, /test_summary, /feature_maps, /kernels."""
    examples = [[str(path)] for path in example_paths()]
    n_classes = len(explorer.class_names)
    fewest = min(explorer.channels.values())
    with gr.Blocks(title="cifarlab", analytics_enabled=False) as demo:
        gr.Markdown(f"# cifarlab: what the model sees\n**{type(explorer.net).__name__}** from `{explorer.source}` · "
                    f"classes: {', '.join(explorer.class_names)}")
        with gr.Tab("Predict"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(label="Image (any size; centre square, resized to 32 x 32)", type="filepath",
                                     image_mode=None, sources=["upload", "clipboard"], height=256, elem_id="image")
                    gr.Examples(examples, inputs=image, label="CIFAR-10 test images", examples_per_page=10,
                                elem_id="examples")
                    k = gr.Slider(1, n_classes, value=3, step=1, label="Top k classes", elem_id="k")
                    show_cam = gr.Checkbox(value=True, label="Show GradCAM")
                    with gr.Group() as cam_controls:
                        layer = gr.Dropdown(explorer.blocks, value=explorer.default_block, label="GradCAM layer")
                        opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat map opacity")
                    button = gr.Button("Predict", variant="primary", elem_id="predict")
                with gr.Column():
                    label = gr.Label(label="Top k classes", elem_id="topk")
                    cam = gr.Image(label="GradCAM of the top class (32 x 32 input, shown 4x)", format="png",
                                   interactive=False, height=288, elem_id="gradcam")
            # preprocess=False: the callbacks decode the upload themselves, so that a file that is not
            # an image gets our message rather than Gradio's generic processing error.
            button.click(explorer.predict, [image, k], label, api_name="predict", preprocess=False)
            button.click(explorer.gradcam, [image, show_cam, layer, opacity], cam, api_name="gradcam", preprocess=False)
            show_cam.change(lambda on: (gr.update(visible=on), gr.update(visible=on)), show_cam, [cam_controls, cam],
                            api_visibility="private")

        with gr.Tab("Misclassified"):
            problem = explorer.test_data_problem()
            gr.Markdown(f"**Not available:** {problem}" if problem else
                        "Test images the model gets wrong, in test-set order, captioned *true: class, pred: class "
                        "(its probability) #test-set index*. The app predicts the test set in the background from "
                        "start-up (on 2 CPU cores about a minute; a click before then waits for it), or reads "
                        "the evaluate.py report given as eval_dir.")
            summary = gr.Markdown()
            with gr.Row():
                show_gallery = gr.Checkbox(value=True, label="Show misclassified images")
                count = gr.Slider(1, MAX_SHOWN, value=10, step=1, label="How many")
            with gr.Row():
                show_wrong_cam = gr.Checkbox(value=True, label="Show their GradCAM")
                wrong_count = gr.Slider(1, MAX_SHOWN, value=10, step=1, label="How many")
                wrong_layer = gr.Dropdown(explorer.blocks, value=explorer.default_block, label="GradCAM layer")
                wrong_opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Heat map opacity")
            show_wrong = gr.Button("Show", variant="primary", elem_id="show-misclassified")
            gallery = gr.Gallery(label="Misclassified test images", columns=5, format="png", elem_id="misclassified")
            cam_gallery = gr.Gallery(label="GradCAM of the predicted class", columns=5, format="png",
                                     elem_id="misclassified-gradcam")
            show_wrong.click(explorer.test_summary, None, summary, api_name="test_summary")
            show_wrong.click(explorer.misclassified, [show_gallery, count], gallery, api_name="misclassified")
            show_wrong.click(explorer.misclassified_gradcam, [show_wrong_cam, wrong_count, wrong_layer, wrong_opacity],
                             cam_gallery, api_name="misclassified_gradcam")
            show_gallery.change(lambda on: gr.update(visible=on), show_gallery, gallery, api_visibility="private")
            show_wrong_cam.change(lambda on: gr.update(visible=on), show_wrong_cam, cam_gallery,
                                  api_visibility="private")

        with gr.Tab("Feature maps"):
            gr.Markdown("One channel of each block's output, from the first block (full resolution) to the last "
                        "(4 x 4), each scaled from its own minimum (dark) to maximum (yellow).")
            with gr.Row():
                with gr.Column():
                    fm_image = gr.Image(label="Image", type="filepath", image_mode=None,
                                        sources=["upload", "clipboard"], height=256)
                    gr.Examples(examples, inputs=fm_image, label="CIFAR-10 test images", examples_per_page=10)
                    channel = gr.Slider(0, fewest - 1, value=0, step=1, label=f"Channel (0..{fewest - 1})")
                    fm_button = gr.Button("Show feature maps", variant="primary")
                fm_gallery = gr.Gallery(label="Activation per block", columns=2, format="png", elem_id="feature-maps")
            fm_button.click(explorer.feature_maps, [fm_image, channel], fm_gallery, api_name="feature_maps",
                            preprocess=False)

        with gr.Tab("Kernels"):
            gr.Markdown("A conv layer's weights. Over RGB (the first conv): one RGB tile per kernel. Deeper: "
                        "row = output channel, column = input channel (first 32 of each), blue < 0 < red.")
            conv = gr.Dropdown(explorer.conv_layers, value=explorer.conv_layers[0], label="Conv layer")
            grid = gr.Image(label="Kernels", format="png", interactive=False)
            conv.change(explorer.kernels, conv, grid, api_name="kernels")
            demo.load(explorer.kernels, conv, grid, api_visibility="private")
    return demo


def resolve_port(configured: int) -> int:
    """The port to serve on: ``GRADIO_SERVER_PORT`` when set, else ``configured``.

    Raises:
        ConfigError: ``GRADIO_SERVER_PORT`` is not a port number.
    """
    value = os.environ.get("GRADIO_SERVER_PORT", "").strip() or configured
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if not 0 < port < 65536:
        raise ConfigError(f"port {value!r} (GRADIO_SERVER_PORT or server_port) is not a port number (1..65535)")
    return port


def launch(demo: gr.Blocks, server_name: str = "127.0.0.1", port: int = 7860, max_file_size: str | None = "25mb",
           block: bool = True) -> gr.Blocks:
    """Serve ``demo`` on ``server_name:port``; returns once the server is up unless ``block``.

    Raises:
        ConfigError: the port is taken.
    """
    try:
        demo.launch(server_name=server_name, server_port=port, max_file_size=max_file_size, theme=THEME,
                    prevent_thread_lock=not block, show_error=False)
    except OSError as err:
        raise ConfigError(f"cannot serve on {server_name}:{port} ({err}): choose another port with "
                          "server_port=... or GRADIO_SERVER_PORT=...") from err
    return demo


def _prepare(explorer: Explorer) -> None:
    try:
        explorer.mistakes()
    except CifarlabError as err:  # the misclassified tab reports it when asked
        log.warning("misclassified tab: %s", err)


def serve(ckpt_path: str | Path | None, data_root: str | None = None, eval_dir: str | None = None,
          server_name: str = "127.0.0.1", server_port: int = 7860, max_megapixels: float = 40.0,
          max_file_size: str | None = "25mb") -> None:
    """Load the checkpoint and serve the app until interrupted (``app.py``'s job)."""
    explorer = Explorer.from_checkpoint(ckpt_path, data_root, eval_dir, max_megapixels)
    port = resolve_port(server_port)
    if explorer.test_data_problem() is None:  # the misclassified tab's results, ready by the time someone asks
        threading.Thread(target=_prepare, args=(explorer,), name="predict-test-set", daemon=True).start()
    launch(build_app(explorer), server_name, port, max_file_size)
