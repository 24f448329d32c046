"""The app's logic on a :class:`~cifarlab.runs.run.TrainedRun`, apart from its UI: what the model makes of an
image, where it looks, where it fails, what it computes inside, and its model card.

The callbacks take and return plain values (numpy arrays, dicts, lists of (image, caption)), so
tests call them without a server. A problem the user caused (a file that is not an image, a
layer that does not exist) raises :class:`~cifarlab.errors.CifarlabError` with a message
saying what to do; the UI shows it and keeps serving.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cifarlab.config.ranges import Range
from cifarlab.data.decode import read_upload
from cifarlab.errors import CifarlabError, DataError
from cifarlab.reports.evaluate import read_report
from cifarlab.reports.features import BlockOutputs, colourise, conv_layer_names, kernel_grid
from cifarlab.reports.figures import upscale
from cifarlab.reports.gradcam import check_layer, default_target_layer, gradcam, layer_names, overlay
from cifarlab.reports.model_card import model_card
from cifarlab.runs.result import EvalResult
from cifarlab.runs.run import TrainedRun
from cifarlab.runs.rundir import RunDir

log = logging.getLogger(__name__)

DISPLAY = 128  # images are shown upscaled 4x (nearest), as in the example PNGs
MAX_SHOWN = 25  # misclassified test images a gallery shows at most
CARD_FIGURES = {"reliability.png": "Reliability diagram", "robustness.png": "Accuracy under corruptions"}


def number(name: str, value: Any, low: float, high: float, whole: bool = True) -> Any:
    """``value`` (a number, or its text) as a number in the :class:`~cifarlab.config.ranges.Range` [low, high]
    (an int if ``whole``; whole floats such as 1.0 count, as sliders send them), or CifarlabError naming ``name``.
    The bounds depend on the run (its classes, its channels), so the range is made here, per call."""
    kind = "whole number" if whole else "number"
    allowed = Range(low, high, integer=whole, message=f"{{key}} must be a {kind} from {low:g} to {high:g}, got {{value!r}}")
    try:
        converted = value if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        converted = value
    if not allowed.allows(converted):
        raise CifarlabError(allowed.complaint(name, value))
    return int(converted) if whole else converted


@dataclass
class Mistakes:
    """The misclassified test images in test-set order: images (M, 32, 32, 3) uint8, labels (M,)
    int64 true classes, probs (M, C) float32, indices (M,) their places in the test set; out of
    ``total`` test images."""

    images: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    indices: np.ndarray
    total: int

    @classmethod
    def find(cls, images: np.ndarray, labels: np.ndarray, logits: torch.Tensor, indices: np.ndarray) -> Mistakes:
        """From the (N, C) logits of test images (N, 32, 32, 3) with labels (N,) at ``indices`` (N,)."""
        wrong = np.flatnonzero(logits.argmax(1).numpy() != labels)
        return cls(images[wrong], labels[wrong], torch.softmax(logits[wrong], 1).numpy(), indices[wrong], len(labels))


class Explorer:
    """A trained run and the app's callbacks on it.

    Args:
        run: the run (its ``data_root`` holds the test set of the misclassified tab).
        eval_dir: an ``evaluate.py`` output dir of the same checkpoint (``None``: the run's own ``eval/``,
            when it holds a report of this checkpoint): its ``predictions.npz``
            are used instead of predicting the test set here, its ``metrics.json`` (:attr:`report`)
            and figures complete the model card.
        max_megapixels: larger uploads are refused.

    A missing test set or an ``eval_dir`` of another checkpoint is logged and kept in
    ``data_problem`` (the misclassified tab shows it); the other tabs work.
    """

    def __init__(self, run: TrainedRun, eval_dir: str | Path | None = None, max_megapixels: float = 40.0) -> None:
        self.run, self.class_names, self.max_megapixels = run, run.class_names, max_megapixels
        self.blocks = layer_names(run.net)
        self.default_block = default_target_layer(run.net)
        self.features = BlockOutputs(run.net)
        self.conv_layers = conv_layer_names(run.net)
        # The network is shared by the server's threads (GradCAM runs on a copy); this lock only
        # makes the test-set predictions and the GradCAM maps of a layer be computed once.
        self._lock = threading.Lock()
        self._mistakes: Mistakes | None = None
        self._cams: dict[str, np.ndarray] = {}
        self.data_problem: str | None = None
        self.eval_dir = Path(eval_dir).expanduser() if eval_dir else self._found_eval_dir()
        self.report: EvalResult | None = None
        try:
            self._test_set = run.test_set()
            if self.eval_dir:
                self._mistakes = self._read_eval_dir(self.eval_dir, given=bool(eval_dir))
        except CifarlabError as err:
            self.data_problem = str(err)
            log.warning("misclassified tab: %s", err)

    def _found_eval_dir(self) -> Path | None:
        """The run's own ``eval/`` (evaluate.py's default output) when it holds a report."""
        found = RunDir(self.run.run_dir).eval if self.run.run_dir else None
        return found if found is not None and (found / "predictions.npz").is_file() else None

    def _read_eval_dir(self, eval_dir: Path, given: bool) -> Mistakes | None:
        """The misclassified test images from evaluate.py's ``predictions.npz``, checked to be of this
        checkpoint; keeps its ``metrics.json`` as :attr:`report`. The run's own ``eval/`` (not ``given``) of
        another checkpoint is passed over: the test set is predicted here instead."""
        images, labels = self._test_set
        try:
            self.report, logits, indices = read_report(eval_dir, self.run, labels)
        except CifarlabError as err:
            if given:
                raise
            log.info("the run's report in %s is not of this checkpoint (%s): predicting the test set here", eval_dir, err)
            self.eval_dir = None
            return None
        return Mistakes.find(images[indices], labels[indices], logits, indices)

    def mistakes(self) -> Mistakes:
        """The misclassified test images: from ``eval_dir``, or predicted on the first call; then kept.

        Raises:
            DataError: the test set or ``eval_dir`` is not usable (:attr:`data_problem`).
        """
        with self._lock:
            if self.data_problem:
                raise DataError(self.data_problem)
            if self._mistakes is None:
                images, labels = self._test_set
                self._mistakes = Mistakes.find(images, labels, self.run.predict(images), np.arange(len(labels)))
            return self._mistakes

    # ---- Predict tab
    def predict(self, image: Any, k: Any = 3) -> dict[str, float]:
        """Top-``k`` classes of an upload: {class name: probability}, most probable first (k in 1..10)."""
        k = number("k (classes shown)", k, 1, len(self.class_names))
        probs = torch.softmax(self.run.predict(read_upload(image, self.max_megapixels, self.run.image_size)[None]), dim=1)[0]
        top = np.argsort(-probs.numpy(), kind="stable")[:k]
        return {self.class_names[i]: float(probs[i]) for i in top}

    def gradcam(self, image: Any, show: bool = True, layer: Any = None, opacity: Any = 0.5) -> np.ndarray | None:
        """GradCAM of the predicted class over an upload: (128, 128, 3) uint8, or None when not ``show``."""
        if not show:
            return None
        opacity, pixels = number("opacity", opacity, 0, 1, whole=False), read_upload(image, self.max_megapixels, self.run.image_size)
        cam = gradcam(self.run.model, pixels[None], layer or self.default_block)[0]
        return overlay(pixels, cam, 1.0 - opacity, DISPLAY)

    # ---- Misclassified tab
    def test_summary(self) -> str:
        """One line of Markdown: how many test images the model gets wrong."""
        m = self.mistakes()
        return (f"{len(m.indices):,} of {m.total:,} test images misclassified "
                f"(accuracy {100 * (1 - len(m.indices) / m.total):.2f} %).")

    def _caption(self, m: Mistakes, i: int) -> str:
        """"true: cat, pred: dog (54%) #12": true class, predicted class and its probability, test-set index."""
        predicted = int(m.probs[i].argmax())
        return (f"true: {self.class_names[m.labels[i]]}, pred: {self.class_names[predicted]} "
                f"({100 * m.probs[i, predicted]:.0f}%) #{m.indices[i]}")

    def misclassified(self, show: bool = True, count: Any = 10) -> list[tuple[np.ndarray, str]]:
        """The first ``count`` (1..25) misclassified test images (fewer if there are fewer):
        [((128, 128, 3) uint8, caption)]."""
        if not show:
            return []
        count = number("number of images", count, 1, MAX_SHOWN)
        m = self.mistakes()
        return [(image, self._caption(m, i)) for i, image in enumerate(upscale(m.images[:count], DISPLAY))]

    def misclassified_gradcam(self, show: bool = True, count: Any = 10, layer: Any = None,
                              opacity: Any = 0.5) -> list[tuple[np.ndarray, str]]:
        """GradCAM of the predicted class over the first ``count`` (1..25) misclassified test images:
        [((128, 128, 3) uint8, caption)]. The maps of a layer are computed once and kept."""
        if not show:
            return []
        count = number("number of images", count, 1, MAX_SHOWN)
        layer, opacity = check_layer(self.run.net, layer or self.default_block), number("opacity", opacity, 0, 1, False)
        m = self.mistakes()
        with self._lock:
            if layer not in self._cams:
                self._cams[layer] = gradcam(self.run.model, m.images[:MAX_SHOWN], layer, m.probs[:MAX_SHOWN].argmax(1))
            cams = self._cams[layer]
        return [(overlay(m.images[i], cams[i], 1.0 - opacity, DISPLAY), self._caption(m, i))
                for i in range(min(count, len(cams)))]

    # ---- Model card tab
    def model_card(self) -> str:
        """The run's model card as markdown (:func:`cifarlab.reports.model_card.render_model_card`):
        with ``eval_dir``'s report when it is one of this checkpoint, else from the run dir alone
        (the sections that need an evaluation say it was not measured)."""
        return model_card(self.run, self.report)

    def card_figures(self) -> list[tuple[np.ndarray, str]]:
        """``reliability.png`` and ``robustness.png`` of ``eval_dir``, those it holds, as
        [((H, W, 3) uint8, caption)]; none without a report of this checkpoint."""
        if self.report is None:
            return []
        return [(np.asarray(Image.open(self.eval_dir / name).convert("RGB")), caption)
                for name, caption in CARD_FIGURES.items() if (self.eval_dir / name).is_file()]

    # ---- Feature maps and Kernels tabs
    def feature_maps(self, image: Any, channel: Any = 0) -> list[tuple[np.ndarray, str]]:
        """Channel ``channel`` of each top-level block's output for an upload: [((128, 128, 3) uint8, caption)]."""
        channel = number("channel", channel, 0, min(self.features.channels.values()) - 1)
        pixels = torch.from_numpy(read_upload(image, self.max_megapixels, self.run.image_size)[None]).to(self.run.device)
        maps = {name: out[0, channel].float().cpu().numpy()
                for name, out in self.features(self.run.model.normalise(pixels)).items()}
        return [(upscale(colourise(values)[None], DISPLAY)[0],
                 f"{name}: channel {channel} of {self.features.channels[name]}, {values.shape[0]}x{values.shape[1]}")
                for name, values in maps.items()]

    def kernels(self, layer: Any = None) -> np.ndarray:
        """The kernels of conv layer ``layer`` as a grid: (H, W, 3) uint8 (see :func:`kernel_grid`)."""
        return kernel_grid(self.run.net, layer or self.conv_layers[0])
