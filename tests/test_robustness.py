"""Corruptions generated on the fly: identity at severity 0, seeded pixels, severities that grow,
CIFAR-10-C's defocus kernel, the image draw, relative mCE and the report's numbers."""
from __future__ import annotations

import hashlib
import logging

import cv2
import numpy as np
import pytest
import torch

from cifarlab.reports.robustness import (CORRUPTIONS, SEVERITIES, corrupt, corruption_accuracies, relative_mce,
                                         robustness_report, robustness_table, select_images)

RANDOM = ("gaussian_noise", "shot_noise", "fog")  # the corruptions that draw random numbers


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """40 smooth images (40, 32, 32, 3) uint8: random 8 x 8 colours upscaled bicubically."""
    rng = np.random.default_rng(0)
    return np.stack([cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (32, 32),
                                interpolation=cv2.INTER_CUBIC) for _ in range(40)])


def brightest_channel(x: np.ndarray) -> torch.Tensor:
    """A stand-in classifier: logits (N, 3), the mean of each colour channel."""
    return torch.from_numpy(x.reshape(len(x), -1, 3).mean(1))


def digest(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


def test_severity_zero_is_the_clean_images_and_their_accuracy(images: np.ndarray) -> None:
    labels = np.arange(len(images)) % 3
    clean, _ = corruption_accuracies([brightest_channel], images, labels, seed=0)[0]
    for name in CORRUPTIONS:
        same = corrupt(images, name, 0, seed=0)
        np.testing.assert_array_equal(same, images)
        assert float((brightest_channel(same).argmax(1).numpy() == labels).mean()) == clean


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others(images: np.ndarray) -> None:
    for name in CORRUPTIONS:
        first, again, other = (corrupt(images, name, 3, seed) for seed in (0, 0, 1))
        assert first.dtype == np.uint8 and first.shape == images.shape
        assert digest(first) == digest(again), name
        if name in RANDOM:
            assert digest(first) != digest(other), name
        else:  # blur, JPEG, contrast, brightness, pixelate: a fixed function of the image
            assert digest(first) == digest(other), name


def test_every_severity_changes_the_images_and_higher_ones_more(images: np.ndarray) -> None:
    for name in CORRUPTIONS:
        change = [np.abs(corrupt(images, name, s, 0).astype(float) - images).mean() for s in range(SEVERITIES + 1)]
        assert change[0] == 0 and all(np.diff(change) > 0), (name, change)


@pytest.mark.parametrize("severity,radius,sigma", [(1, 0.3, 0.4), (3, 0.5, 0.6), (4, 1, 0.2), (5, 1.5, 0.1)])
def test_defocus_is_cifar_10_c_disk_kernel(images: np.ndarray, severity: int, radius: float, sigma: float) -> None:
    """make_cifar_c.py's ``disk``: the aliased disk on a 17 x 17 grid, smoothed by a 3 x 3 Gaussian."""
    grid = np.arange(-8, 9)
    x, y = np.meshgrid(grid, grid)
    disk = ((x ** 2 + y ** 2) <= radius ** 2).astype(np.float32)
    kernel = cv2.GaussianBlur(disk / disk.sum(), (3, 3), sigmaX=sigma)
    want = np.stack([cv2.filter2D(i.astype(np.float32), -1, kernel) for i in images])
    got = corrupt(images, "defocus_blur", severity, 0).astype(np.float32)
    assert np.abs(got - want)[:, 2:-2, 2:-2].max() <= 1.0  # inside the border, up to uint8 rounding


def test_unknown_corruption_or_severity_is_refused(images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="corruptions are gaussian_noise"):
        corrupt(images, "snow", 1, 0)
    with pytest.raises(ValueError, match="severities 0..5"):
        corrupt(images, "jpeg", 6, 0)


def test_image_draw_is_seeded_sorted_and_bounded() -> None:
    a, b, c = select_images(1000, 50, 0), select_images(1000, 50, 0), select_images(1000, 50, 1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and len(np.unique(a)) == 50 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(select_images(30, 50, 0), np.arange(30))


def test_relative_mce_against_itself_is_one_and_halves_with_half_the_drop(caplog: pytest.LogCaptureFixture) -> None:
    base = {"a": [0.8, 0.7, 0.6, 0.5, 0.4], "b": [0.85] * 5}  # clean 0.9: summed drops 1.5 and 0.25
    assert relative_mce(0.9, base, 0.9, base) == pytest.approx(1.0)
    half = {"a": [0.85, 0.8, 0.75, 0.7, 0.65], "b": [0.875] * 5}
    assert relative_mce(0.9, half, 0.9, base) == pytest.approx(0.5)
    same_drops = {"a": [0.7, 0.6, 0.5, 0.4, 0.3], "b": [0.75] * 5}
    assert relative_mce(0.8, same_drops, 0.9, base) == pytest.approx(1.0)  # from a lower clean accuracy
    with caplog.at_level(logging.WARNING, logger="cifarlab.reports.robustness"):
        assert relative_mce(0.9, half, 0.9, {"a": base["a"], "b": [0.9] * 5}) == pytest.approx(0.5)
        assert relative_mce(0.9, half, 0.9, {"a": [0.9] * 5, "b": [0.95] * 5}) is None
    assert "leaves out b" in caplog.text and "leaves out a, b" in caplog.text


def test_report_numbers_and_table(images: np.ndarray) -> None:
    labels = np.arange(len(images)) % 3
    report = robustness_report(brightest_channel, images, labels, seed=0, baseline=("same", brightest_channel))
    assert set(report) == {"images", "seed", "severities", "clean_acc", "corruptions", "mean_corruption_acc",
                           "baseline", "relative_mce"}
    assert report["images"] == 40 and report["severities"] == 5 and report["baseline"] == "same"
    assert list(report["corruptions"]) == list(CORRUPTIONS)
    accs = np.array(list(report["corruptions"].values()))
    assert accs.shape == (9, 5) and np.all((accs >= 0) & (accs <= 1))
    assert report["mean_corruption_acc"] == pytest.approx(accs.mean())
    assert report["relative_mce"] in (None, pytest.approx(1.0))
    assert robustness_report(brightest_channel, images, labels, seed=0)["relative_mce"] is None
    assert robustness_table(report).row_count == 9
