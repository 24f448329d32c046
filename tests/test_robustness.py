"""The CIFAR-10-C corruptions regenerated with make_cifar_c.py's functions: each corruption at each severity
against a literal transcription of Hendrycks' make_cifar_c.py (below, written independently of the module),
seeded pixels, identity at severity 0, the frost photographs, the data's name, the image draw, relative mCE,
the report's numbers and its figure."""
from __future__ import annotations

import colorsys
import hashlib
import logging
import math
import pickle
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from PIL import Image as PILImage
from scipy import ndimage
from scipy.ndimage import map_coordinates
from scipy.ndimage import zoom as scizoom

import cifarlab.reports
from cifarlab.reports.corruptions import CORRUPTIONS, DETERMINISTIC, SEVERITIES, corrupt, corruption_seed
from cifarlab.reports.robustness import (corruption_accuracies, data_name, relative_mce, robustness_report,
                                         robustness_table, save_robustness_grid, select_images, suite_name)
from conftest import REAL_DATA

STANDARD = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
            "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression"]
FROST_DIR = Path(cifarlab.reports.__file__).parent / "frost"


# ///////////// make_cifar_c.py (github.com/hendrycks/robustness, ImageNet-C/create_c/, Apache-2.0), transcribed /////////////
# Each function takes the PIL image upstream's loop hands it (ToPILImage of the uint8 array) and a Generator `rng` in
# place of numpy's global generator, drawing the same values in the same order (np.random.randint(a, b) ->
# rng.integers(a, b), the others by the same name). The libraries upstream calls and this project does not install
# are replaced by the same arithmetic: skimage.filters.gaussian is scipy.ndimage.gaussian_filter with its sigma on
# the spatial axes and its defaults (mode 'nearest', truncate 4); skimage.util.random_noise('s&p') is its two
# Bernoulli draws; skimage.color's HSV conversions are the standard library's colorsys (an independent
# implementation of the same formulas); ImageMagick's motion blur (Wand) is imagecorruptions' numpy port of it,
# rounded to 8 bits as ImageMagick writes its PNG. np.float_ is np.float64 (numpy 2).

def gaussian(image, sigma, multichannel=False, mode="nearest", truncate=4.0):
    return ndimage.gaussian_filter(image, [sigma, sigma, 0] if multichannel else sigma, mode=mode, truncate=truncate)


def random_noise_sp(image, amount, rng):  # skimage.util.random_noise(image, mode='s&p', amount=amount)
    out = image.copy()
    flipped = rng.random(image.shape) <= amount
    salted = rng.random(image.shape) <= 0.5
    out[flipped & salted] = 1
    out[flipped & ~salted] = 0
    return np.clip(out, 0, 1)


def rgb2hsv(x):
    return np.array([[colorsys.rgb_to_hsv(*pixel) for pixel in row] for row in x])


def hsv2rgb(x):
    return np.array([[colorsys.hsv_to_rgb(*pixel) for pixel in row] for row in x])


def magick_motion_blur(x, radius, sigma, angle):  # imagecorruptions.corruptions._motion_blur and its helpers
    def shift(image, dx, dy):
        if dx < 0:
            shifted = np.roll(image, shift=image.shape[1] + dx, axis=1)
            shifted[:, dx:] = shifted[:, dx - 1:dx]
        elif dx > 0:
            shifted = np.roll(image, shift=dx, axis=1)
            shifted[:, :dx] = shifted[:, dx:dx + 1]
        else:
            shifted = image
        if dy < 0:
            shifted = np.roll(shifted, shift=image.shape[0] + dy, axis=0)
            shifted[dy:, :] = shifted[dy - 1:dy, :]
        elif dy > 0:
            shifted = np.roll(shifted, shift=dy, axis=0)
            shifted[:dy, :] = shifted[dy:dy + 1, :]
        return shifted

    width = radius * 2 + 1  # getOptimalKernelWidth1D
    k = (np.exp(- np.arange(width) ** 2 / (2 * (sigma ** 2)))) / (np.sqrt(2 * np.pi) * sigma)  # gauss_function
    kernel = k / np.sum(k)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    blurred = np.zeros_like(x, dtype=np.float32)
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if np.abs(dy) >= x.shape[0] or np.abs(dx) >= x.shape[1]:
            break
        shifted = shift(x, dx, dy)
        blurred = blurred + kernel[i] * shifted
    return np.clip(np.round(blurred), 0, 255).astype(np.uint8)  # ImageMagick writes 8-bit PNG


def disk(radius, alias_blur=0.1, dtype=np.float32):
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        L = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    X, Y = np.meshgrid(L, L)
    aliased_disk = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def plasma_fractal(rng, mapsize=32, wibbledecay=3):
    assert (mapsize & (mapsize - 1) == 0)
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    def fillsquares():
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)

    def filldiamonds():
        mapsize = maparray.shape[0]
        drgrid = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ldrsum = drgrid + np.roll(drgrid, 1, axis=0)
        lulsum = ulgrid + np.roll(ulgrid, -1, axis=1)
        ltsum = ldrsum + lulsum
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(ltsum)
        tdrsum = drgrid + np.roll(drgrid, 1, axis=1)
        tulsum = ulgrid + np.roll(ulgrid, -1, axis=0)
        ttsum = tdrsum + tulsum
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)

    while stepsize >= 2:
        fillsquares()
        filldiamonds()
        stepsize //= 2
        wibble /= wibbledecay

    maparray -= maparray.min()
    return maparray / maparray.max()


def clipped_zoom(img, zoom_factor):
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = scizoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top:trim_top + h, trim_top:trim_top + h]


def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, .08, .09, .10][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    x = np.array(x) / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x, severity, rng):
    c = [.01, .02, .03, .05, .07][severity - 1]
    x = random_noise_sp(np.array(x) / 255., amount=c, rng=rng)
    return np.clip(x, 0, 1) * 255


def glass_blur(x, severity, rng):
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(gaussian(np.array(x) / 255., sigma=c[0], multichannel=True) * 255)
    for i in range(c[2]):
        for h in range(32 - c[1], c[1], -1):
            for w in range(32 - c[1], c[1], -1):
                dx, dy = rng.integers(-c[1], c[1], size=(2,))
                h_prime, w_prime = h + dy, w + dx
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return np.clip(gaussian(x / 255., sigma=c[0], multichannel=True), 0, 1) * 255


def defocus_blur(x, severity, rng):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    x = np.array(x) / 255.
    kernel = disk(radius=c[0], alias_blur=c[1])
    channels = []
    for d in range(3):
        channels.append(cv2.filter2D(x[:, :, d], -1, kernel))
    channels = np.array(channels).transpose((1, 2, 0))
    return np.clip(channels, 0, 1) * 255


def motion_blur(x, severity, rng):
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    x = magick_motion_blur(np.array(x), radius=c[0], sigma=c[1], angle=rng.uniform(-45, 45))
    return np.clip(x, 0, 255)


def zoom_blur(x, severity, rng):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def fog(x, severity, rng):
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * plasma_fractal(rng, wibbledecay=c[1])[:32, :32][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def frost(x, severity, rng):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    idx = rng.integers(5)
    filename = ['frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg', 'frost6.jpg'][idx]
    frost = cv2.imread(str(FROST_DIR / filename))
    frost = cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)
    x_start, y_start = rng.integers(0, frost.shape[0] - 32), rng.integers(0, frost.shape[1] - 32)
    frost = frost[x_start:x_start + 32, y_start:y_start + 32][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(x) + c[1] * frost, 0, 255)


def snow(x, severity, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95),
         (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = PILImage.fromarray((np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8), mode='L')
    snow_layer = magick_motion_blur(np.array(snow_layer), radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45)) / 255.
    snow_layer = snow_layer[..., np.newaxis]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(32, 32, 1) * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def contrast(x, severity, rng):
    c = [.75, .5, .4, .3, 0.15][severity - 1]
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def brightness(x, severity, rng):
    c = [.05, .1, .15, .2, .3][severity - 1]
    x = np.array(x) / 255.
    x = rgb2hsv(x)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    x = hsv2rgb(x)
    return np.clip(x, 0, 1) * 255


def jpeg_compression(x, severity, rng):
    c = [80, 65, 58, 50, 40][severity - 1]
    output = BytesIO()
    x.save(output, 'JPEG', quality=c)
    x = PILImage.open(output)
    return x


def pixelate(x, severity, rng):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    x = x.resize((int(32 * c), int(32 * c)), PILImage.BOX)
    x = x.resize((32, 32), PILImage.BOX)
    return x


def elastic_transform(image, severity, rng):
    IMSIZE = 32
    c = [(IMSIZE * 0, IMSIZE * 0, IMSIZE * 0.08),
         (IMSIZE * 0.05, IMSIZE * 0.2, IMSIZE * 0.07),
         (IMSIZE * 0.08, IMSIZE * 0.06, IMSIZE * 0.06),
         (IMSIZE * 0.1, IMSIZE * 0.04, IMSIZE * 0.05),
         (IMSIZE * 0.1, IMSIZE * 0.03, IMSIZE * 0.03)][severity - 1]
    image = np.array(image, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    M = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, M, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dy = (gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode='reflect', truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    x, y, z = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(y + dy, (-1, 1)), np.reshape(x + dx, (-1, 1)), np.reshape(z, (-1, 1))
    return np.clip(map_coordinates(image, indices, order=1, mode='reflect').reshape(shape), 0, 1) * 255


UPSTREAM = {f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise, defocus_blur, glass_blur, motion_blur,
                                    zoom_blur, snow, frost, fog, brightness, contrast, elastic_transform, pixelate,
                                    jpeg_compression)}
# grey levels the module may differ from the transcription by: 0 where both compute the same operations in the same
# order; brightness: skimage's HSV arithmetic (the module) against colorsys' (here) rounds differently in the last
# bit, and a value that lands on a whole grey level may truncate one lower
TOLERANCE = {"brightness": 1}

# ///////////// end of the transcription /////////////


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """40 smooth images (40, 32, 32, 3) uint8: random 8 x 8 colours upscaled bicubically."""
    rng = np.random.default_rng(0)
    return np.stack([cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (32, 32),
                                interpolation=cv2.INTER_CUBIC) for _ in range(40)])


@pytest.fixture(scope="module")
def fixed(images: np.ndarray) -> np.ndarray:
    """Three images (3, 32, 32, 3) uint8 with edges, flat areas, black and white: two smooth ones with
    stripes and a clipped corner, and a noisy one."""
    stripes = images[:2].copy()
    stripes[:, ::4] = 255
    stripes[:, :6, :6] = 0
    noisy = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    return np.concatenate([stripes, noisy])


def brightest_channel(x: np.ndarray) -> torch.Tensor:
    """A stand-in classifier: logits (N, 3), the mean of each colour channel."""
    return torch.from_numpy(x.reshape(len(x), -1, 3).mean(1))


def digest(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


def test_the_fifteen_standard_corruptions_in_upstream_order() -> None:
    assert list(CORRUPTIONS) == STANDARD and SEVERITIES == 5
    assert set(DETERMINISTIC) == {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"}


@pytest.mark.parametrize("severity", range(1, SEVERITIES + 1))
@pytest.mark.parametrize("name", STANDARD)
def test_each_corruption_changes_the_image_as_make_cifar_c_does(fixed: np.ndarray, name: str, severity: int) -> None:
    """The same pixels as make_cifar_c.py's function (transcribed above) with the same draws, stored as its
    loop stores them: np.uint8 of the result."""
    rng = np.random.default_rng(corruption_seed(7, name, severity))
    want = np.stack([np.uint8(UPSTREAM[name](Image.fromarray(x), severity, rng)) for x in fixed])
    got = corrupt(fixed, name, severity, seed=7)
    assert got.dtype == np.uint8 and got.shape == fixed.shape
    difference = np.abs(got.astype(int) - want).max()
    assert difference <= TOLERANCE.get(name, 0), (name, severity, difference)
    assert np.abs(got.astype(int) - fixed).mean() > 0, (name, severity)  # it corrupts


def test_frost_photographs_are_hendrycks_files() -> None:
    """The five of make_cifar_c.py's frost images that its randint(5) can draw, byte for byte (the md5s of
    ImageNet-C/create_c/frost*.png|jpg, also shipped in the imagecorruptions package)."""
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(FROST_DIR.iterdir())}
    assert md5 == {"frost1.png": "6ead634ace1f366d77e87078b465863c", "frost2.png": "98f0d2b1d74a048d3bc9c7ecfd886939",
                   "frost3.png": "b3ed8eb147824261888e730f916c0d8b", "frost4.jpg": "d70b9d6aa0b1fe7bd8133b113787e078",
                   "frost5.jpg": "50984ae2c871b7df2c28f1d71ca460a0"}


def test_severity_zero_is_the_clean_images_and_their_accuracy(images: np.ndarray) -> None:
    labels = np.arange(len(images)) % 3
    clean, _ = corruption_accuracies([brightest_channel], images[:4], labels[:4], seed=0)[0]
    for name in CORRUPTIONS:
        same = corrupt(images[:4], name, 0, seed=0)
        np.testing.assert_array_equal(same, images[:4])
        assert float((brightest_channel(same).argmax(1).numpy() == labels[:4]).mean()) == clean


def test_the_same_seed_gives_the_same_pixels_and_another_seed_others(images: np.ndarray) -> None:
    for name in CORRUPTIONS:
        first, again, other = (corrupt(images[:8], name, 3, seed) for seed in (0, 0, 1))
        assert digest(first) == digest(again), name
        if name in DETERMINISTIC:  # a fixed function of the image
            assert digest(first) == digest(other), name
        else:
            assert digest(first) != digest(other), name


def test_unknown_corruption_severity_or_shape_is_refused(images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="corruptions are gaussian_noise, shot_noise"):
        corrupt(images, "gaussian_blur", 1, 0)  # one of the four extra corruptions, not generated
    with pytest.raises(ValueError, match="severities 0..5"):
        corrupt(images, "jpeg_compression", 6, 0)
    with pytest.raises(ValueError, match="take \\(N, 32, 32, 3\\)"):
        corrupt(np.zeros((2, 64, 64, 3), np.uint8), "fog", 1, 0)


def test_the_data_is_named_by_its_test_batch(tmp_path: Path) -> None:
    assert suite_name("CIFAR-10 (JPEG q75 copy)") == ("CIFAR-10-C corruptions regenerated with make_cifar_c.py's "
                                                      "functions on CIFAR-10 (JPEG q75 copy)")
    folder = tmp_path / "my_cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": b"other"}))
    assert data_name(tmp_path / "my_cifar") == "my_cifar"
    assert data_name(None) == "the test images"


@pytest.mark.real_data
@pytest.mark.skipif(not (REAL_DATA / "cifar-10-batches-py" / "test_batch").is_file(),
                    reason=f"real CIFAR-10 not found in {REAL_DATA}/cifar-10-batches-py: set CIFARLAB_DATA")
def test_the_real_data_is_named_cifar_10_or_its_jpeg_copy() -> None:
    assert data_name(REAL_DATA) in ("CIFAR-10", "CIFAR-10 (JPEG q75 copy)")


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


def test_report_numbers_table_and_figure(images: np.ndarray, tmp_path: Path) -> None:
    labels = np.arange(len(images)) % 3
    report = robustness_report(brightest_channel, images[:12], labels[:12], seed=0,
                               baseline=("same", brightest_channel), data="CIFAR-10 (JPEG q75 copy)")
    assert set(report) == {"suite", "images", "seed", "severities", "clean_acc", "corruptions", "mean_corruption_acc",
                           "baseline", "relative_mce"}
    assert report["suite"] == suite_name("CIFAR-10 (JPEG q75 copy)")
    assert report["images"] == 12 and report["severities"] == 5 and report["baseline"] == "same"
    assert list(report["corruptions"]) == STANDARD
    accs = np.array(list(report["corruptions"].values()))
    assert accs.shape == (15, 5) and np.all((accs >= 0) & (accs <= 1))
    assert report["mean_corruption_acc"] == pytest.approx(accs.mean())
    assert report["relative_mce"] in (None, pytest.approx(1.0))
    assert robustness_report(brightest_channel, images[:4], labels[:4], seed=0, data="x")["relative_mce"] is None
    table = robustness_table(report)
    assert table.row_count == 15 and [c.header for c in table.columns][-1] == "mean"
    assert str(table.title).startswith(report["suite"])
    save_robustness_grid(images[0], 5, 0, tmp_path / "robustness.png", "CIFAR-10 (JPEG q75 copy)")
    assert Image.open(tmp_path / "robustness.png").size == (720, 2740)  # severities 0-5 x 15 corruptions
