"""The 15 standard corruptions of Hendrycks & Dietterich 2019 ("Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR) at 5 severities, ported from their
``make_cifar_c.py`` (github.com/hendrycks/robustness, ImageNet-C/create_c/, Apache-2.0; NOTICE.md)
with its CIFAR parameters and arithmetic, not the ImageNet ones. It is one module because it ports
one upstream file, whose functions, helpers and parameter lists read side by side with it.

Every corruption takes one uint8 (32, 32, 3) RGB image, computes in float as upstream does, and
:func:`corrupt` stores it as upstream's loop does: ``np.uint8`` of the clipped float result
(truncation, not rounding). Where upstream calls a library cifarlab does not install, the port is
that library's arithmetic written out: skimage's ``filters.gaussian`` is
``scipy.ndimage.gaussian_filter`` with the same sigma, mode and truncation;
``util.random_noise(mode='s&p')`` and ``color.rgb2hsv``/``hsv2rgb`` are transcribed (scikit-image,
BSD 3-Clause); ImageMagick's motion blur (Wand), which upstream calls for ``motion_blur`` and
``snow``, is the numpy kernel of the ``imagecorruptions`` package (one-sided Gaussian of 2 radius + 1
taps along the angle, edge pixels repeated), rounded to 8 bits as ImageMagick writes its PNG.
Hendrycks' frost photographs ship in ``cifarlab/reports/frost/``.

Randomness: upstream draws from numpy's global generator; here each (corruption, severity) has one
``numpy.random.Generator`` seeded from (seed, corruption, severity) (:func:`corruption_seed`), and the
images are corrupted in order, each with upstream's draws in upstream's order.
"""
from __future__ import annotations

import functools
import io
import math
import zlib
from collections.abc import Callable
from importlib import resources

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

SEVERITIES = 5
SIZE = 32  # make_cifar_c.py's image side (its crops, loops and reshapes are written for 32)
# the frost photographs make_cifar_c.py reads (./frost1.png ...), shipped in cifarlab/reports/frost/; it draws
# np.random.randint(5), so its sixth, frost6.jpg, is never used and not shipped
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


# /////////////// helpers of make_cifar_c.py and of the libraries it calls ///////////////

def _gaussian(x: np.ndarray, sigma: float, multichannel: bool = False, mode: str = "nearest",
              truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian on a float image: ``scipy.ndimage.gaussian_filter`` with ``sigma`` (pixels) on
    the two spatial axes (0 on the channel axis with ``multichannel``), skimage's defaults mode='nearest' and
    truncate=4."""
    return ndimage.gaussian_filter(x, (sigma, sigma, 0) if multichannel else sigma, mode=mode, truncate=truncate)


def disk(radius: float, alias_blur: float = 0.1, dtype: type = np.float32) -> np.ndarray:
    """make_cifar_c.py's ``disk``: the aliased disk of ``radius`` pixels on a 17 x 17 grid, summing to 1,
    smoothed by a 3 x 3 Gaussian of sigma ``alias_blur``; (17, 17) ``dtype``."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 8 + 1), (3, 3)
    else:
        grid, ksize = np.arange(-radius, radius + 1), (5, 5)
    x, y = np.meshgrid(grid, grid)
    aliased_disk = np.array((x ** 2 + y ** 2) <= radius ** 2, dtype=dtype)
    aliased_disk /= np.sum(aliased_disk)
    return cv2.GaussianBlur(aliased_disk, ksize=ksize, sigmaX=alias_blur)


def plasma_fractal(rng: np.random.Generator, mapsize: int = SIZE, wibbledecay: float = 3) -> np.ndarray:
    """make_cifar_c.py's ``plasma_fractal`` (diamond-square, after FLHerne/mapgen): a (mapsize, mapsize)
    float64 height map in [0, 1] whose random offsets start at +-100^2 and shrink by ``wibbledecay`` per
    octave, drawn from ``rng`` in upstream's order."""
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    def fillsquares() -> None:
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)

    def filldiamonds() -> None:
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


def clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """make_cifar_c.py's ``clipped_zoom``: the centre ceil(h / zoom_factor) square of ``img`` (h, h, C) float,
    zoomed by ``zoom_factor`` (``scipy.ndimage.zoom``, linear) and cropped back to (h, h, C)."""
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim_top = (img.shape[0] - h) // 2
    return img[trim_top:trim_top + h, trim_top:trim_top + h]


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` (H, W, ...) moved by dx columns and dy rows, the uncovered border repeating the edge
    (imagecorruptions' ``shift``)."""
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


def motion_blur_kernel(image: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's ``MotionBlurImage(radius, sigma, angle)``, which make_cifar_c.py calls through Wand, as the
    ``imagecorruptions`` package writes it in numpy (``_motion_blur``): the sum over i < 2 radius + 1 of
    exp(-i^2 / 2 sigma^2) (normalised) times ``image`` sampled i steps along ``angle`` (degrees), the edge
    repeated past the border. ``image`` (H, W[, C]) in 0..255; returns float32 of its shape, unrounded."""
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    kernel /= kernel.sum()
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(*point)
    blurred = np.zeros_like(image, dtype=np.float32)
    for i in range(width):
        dy = -math.ceil(i * point[0] / hypot - 0.5)
        dx = -math.ceil(i * point[1] / hypot - 0.5)
        if abs(dy) >= image.shape[0] or abs(dx) >= image.shape[1]:
            break
        blurred = blurred + kernel[i] * _shift(image, dx, dy)
    return blurred


def _rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv of a float (..., 3) image in [0, 1]: hue, saturation, value in [0, 1]."""
    out = np.empty_like(rgb)
    out_v = rgb.max(-1)
    delta = np.ptp(rgb, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_s = delta / out_v
        out_s[delta == 0.] = 0.
        idx = rgb[..., 0] == out_v
        out[idx, 0] = (rgb[idx, 1] - rgb[idx, 2]) / delta[idx]
        idx = rgb[..., 1] == out_v
        out[idx, 0] = 2. + (rgb[idx, 2] - rgb[idx, 0]) / delta[idx]
        idx = rgb[..., 2] == out_v
        out[idx, 0] = 4. + (rgb[idx, 0] - rgb[idx, 1]) / delta[idx]
        out_h = (out[..., 0] / 6.) % 1.
    out_h[delta == 0.] = 0.
    out[..., 0], out[..., 1], out[..., 2] = out_h, out_s, out_v
    out[np.isnan(out)] = 0
    return out


def _hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """skimage.color.hsv2rgb of a float (..., 3) HSV image in [0, 1]: RGB in [0, 1]."""
    hi = np.floor(hsv[..., 0] * 6)
    f = hsv[..., 0] * 6 - hi
    p = hsv[..., 2] * (1 - hsv[..., 1])
    q = hsv[..., 2] * (1 - f * hsv[..., 1])
    t = hsv[..., 2] * (1 - (1 - f) * hsv[..., 1])
    v = hsv[..., 2]
    hi = np.stack([hi, hi, hi], axis=-1).astype(np.uint8) % 6
    return np.choose(hi, np.stack([np.stack((v, t, p), axis=-1), np.stack((q, v, p), axis=-1),
                                   np.stack((p, v, t), axis=-1), np.stack((p, q, v), axis=-1),
                                   np.stack((t, p, v), axis=-1), np.stack((v, p, q), axis=-1)]))


@functools.cache
def frost_images() -> tuple[np.ndarray, ...]:
    """Hendrycks' frost photographs as make_cifar_c.py's ``frost`` uses them: ``cv2.imread`` (BGR, alpha
    dropped) then ``cv2.resize`` by 0.2 (bilinear); (H, W, 3) uint8 each, read once."""
    folder = resources.files("cifarlab.reports") / "frost"
    decoded = (cv2.imdecode(np.frombuffer((folder / name).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
               for name in FROST_FILES)
    return tuple(cv2.resize(image, (0, 0), fx=0.2, fy=0.2) for image in decoded)


# /////////////// the corruptions of make_cifar_c.py ///////////////
# Each takes x (32, 32, 3) uint8, a severity 1..5 and the generator; returns what upstream's function returns
# (float in 0..255, or uint8 where upstream returns a PIL image), which corrupt() stores as np.uint8.

def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``gaussian_noise``: x / 255 plus N(0, c^2) per pixel and channel, c = 0.04, 0.06, 0.08,
    0.09, 0.10; clipped to [0, 1], times 255."""
    c = [0.04, 0.06, .08, .09, .10][severity - 1]
    x = np.array(x) / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``shot_noise``: Poisson(x / 255 * c) / c per pixel and channel, c = 500, 250, 100, 75,
    50 (photons at full intensity, on the gamma-encoded values as upstream); clipped to [0, 1], times 255."""
    c = [500, 250, 100, 75, 50][severity - 1]
    x = np.array(x) / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``impulse_noise``: skimage's salt-and-pepper noise (``random_noise(mode='s&p', amount=c)``,
    salt_vs_pepper 0.5): each pixel channel is replaced with probability c = 0.01, 0.02, 0.03, 0.05, 0.07 by 0
    or 255, equally likely. The two Bernoulli draws are skimage's (``rng.random(shape) <= p``)."""
    c = [.01, .02, .03, .05, .07][severity - 1]
    out = np.array(x) / 255.
    flipped = rng.random(out.shape) <= c
    salted = rng.random(out.shape) <= 0.5
    out[flipped & salted] = 1
    out[flipped & ~salted] = 0
    return np.clip(out, 0, 1) * 255


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``defocus_blur``: each channel of x / 255 convolved (``cv2.filter2D``, border reflected
    101) with :func:`disk` of (radius, alias_blur) = (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)
    pixels; clipped, times 255. Deterministic."""
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    x = np.array(x) / 255.
    kernel = disk(radius=c[0], alias_blur=c[1])
    channels = np.array([cv2.filter2D(x[:, :, d], -1, kernel) for d in range(3)]).transpose((1, 2, 0))
    return np.clip(channels, 0, 1) * 255


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``glass_blur``: x / 255 blurred (skimage gaussian, sigma 0.05, 0.25, 0.4, 0.25, 0.4 pixels),
    truncated to uint8, its pixels locally moved for 1, 1, 1, 2, 2 passes, blurred again; clipped, times 255.

    A pass visits h, w = 31 .. 2 (descending) and draws (dx, dy) = randint(-1, 1, size=2), each in {-1, 0}.
    Upstream's "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` assigns numpy views, so it copies pixel
    (h + dy, w + dx) into (h, w) and leaves the source as it was; since the source is never a pixel the pass
    has written, a pass is one gather from the pass's input, drawn as 30 x 30 x 2 values in upstream's order.
    """
    sigma, max_delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(_gaussian(np.array(x) / 255., sigma, multichannel=True) * 255)
    rows = np.arange(SIZE - max_delta, max_delta, -1)  # 31 .. 2, upstream's loop order
    for _ in range(iterations):
        draws = rng.integers(-max_delta, max_delta, size=(len(rows), len(rows), 2))  # (dx, dy) per (h, w)
        h, w = rows[:, None], rows[None, :]
        x[h, w] = x[h + draws[..., 1], w + draws[..., 0]]
    return np.clip(_gaussian(x / 255., sigma, multichannel=True), 0, 1) * 255


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``motion_blur``: ImageMagick's motion blur of (radius, sigma) = (6, 1), (6, 1.5), (6, 2),
    (8, 2), (9, 2.5) pixels at an angle drawn uniformly in [-45, 45) degrees, on the uint8 image, written back as
    8 bits. Upstream calls ImageMagick through Wand; this is :func:`motion_blur_kernel` (imagecorruptions' numpy
    port of it), rounded to the nearest grey level as ImageMagick writes its PNG."""
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    angle = rng.uniform(-45, 45)
    return np.clip(np.rint(motion_blur_kernel(np.array(x), radius=c[0], sigma=c[1], angle=angle)), 0, 255)


def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``zoom_blur``: the mean of x / 255 (float32) and its :func:`clipped_zoom` by each factor of
    ``np.arange(1, z, 0.01)``, z = 1.06, 1.11, 1.16, 1.21, 1.26; clipped, times 255. Deterministic."""
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]
    x = (np.array(x) / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)
    x = (x + out) / (len(c) + 1)
    return np.clip(x, 0, 1) * 255


def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``snow``: a layer of N(loc, scale^2) flakes, zoomed (:func:`clipped_zoom`), cut below a
    threshold, stored as an 8-bit grey image, motion-blurred (radius, sigma) at an angle in [-135, -45) degrees
    (:func:`motion_blur_kernel` in place of ImageMagick's, rounded to 8 bits), added twice (once rotated 180
    degrees) to the image brightened towards 1.5 grey + 0.5; clipped, times 255. Parameters (loc, scale, zoom,
    threshold, radius, sigma, image weight) per severity as upstream."""
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95),
         (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = np.array(x, dtype=np.float32) / 255.
    snow_layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    snow_layer = clipped_zoom(snow_layer[..., np.newaxis], c[2])
    snow_layer[snow_layer < c[3]] = 0
    snow_layer = (np.clip(snow_layer.squeeze(), 0, 1) * 255).astype(np.uint8)  # upstream's mode 'L' PNG
    blurred = motion_blur_kernel(snow_layer, radius=c[4], sigma=c[5], angle=rng.uniform(-135, -45))
    snow_layer = (np.clip(np.rint(blurred), 0, 255) / 255.)[..., np.newaxis]
    x = c[6] * x + (1 - c[6]) * np.maximum(x, cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).reshape(SIZE, SIZE, 1) * 1.5 + 0.5)
    return np.clip(x + snow_layer + np.rot90(snow_layer, k=2), 0, 1) * 255


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``frost``: a * x + b * a random 32 x 32 crop of one of the first five frost photographs
    (:func:`frost_images`, drawn with randint(5) as upstream), (a, b) = (1, 0.2), (1, 0.3), (0.9, 0.4),
    (0.85, 0.4), (0.75, 0.45); clipped to 0..255."""
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    frost_image = frost_images()[rng.integers(5)]
    x_start, y_start = rng.integers(0, frost_image.shape[0] - SIZE), rng.integers(0, frost_image.shape[1] - SIZE)
    frost_image = frost_image[x_start:x_start + SIZE, y_start:y_start + SIZE][..., [2, 1, 0]]
    return np.clip(c[0] * np.array(x) + c[1] * frost_image, 0, 255)


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``fog``: x / 255 plus t times a 32 x 32 :func:`plasma_fractal` of decay d (the same on every
    channel), scaled by max(x) / (max(x) + t), (t, d) = (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75);
    clipped, times 255."""
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    x = np.array(x) / 255.
    max_val = x.max()
    x += c[0] * plasma_fractal(rng, wibbledecay=c[1])[:SIZE, :SIZE][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``brightness``: c = 0.05, 0.1, 0.15, 0.2, 0.3 added to the HSV value of x / 255 (skimage's
    rgb2hsv / hsv2rgb, transcribed), clipped to 1; times 255. Deterministic."""
    c = [.05, .1, .15, .2, .3][severity - 1]
    x = _rgb2hsv(np.array(x) / 255.)
    x[:, :, 2] = np.clip(x[:, :, 2] + c, 0, 1)
    return np.clip(_hsv2rgb(x), 0, 1) * 255


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``contrast``: (x - m) * c + m with m each channel's mean over the image, on x / 255,
    c = 0.75, 0.5, 0.4, 0.3, 0.15; clipped, times 255. Deterministic."""
    c = [.75, .5, .4, .3, 0.15][severity - 1]
    x = np.array(x) / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``elastic_transform``: a random affine warp (three points moved by U(-a, a) pixels,
    ``cv2.warpAffine``, bilinear, border reflected 101) then a displacement field of U(-1, 1) noise smoothed
    (skimage gaussian, sigma s, mode 'reflect', truncate 3) and scaled by alpha, sampled bilinearly
    (``scipy.ndimage.map_coordinates``, mode 'reflect'); (alpha, s, a) = 32 x (0, 0, 0.08), (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03) pixels; on x / 255 in float32, clipped, times 255."""
    imsize = SIZE
    c = [(imsize * 0, imsize * 0, imsize * 0.08),
         (imsize * 0.05, imsize * 0.2, imsize * 0.07),
         (imsize * 0.08, imsize * 0.06, imsize * 0.06),
         (imsize * 0.1, imsize * 0.04, imsize * 0.05),
         (imsize * 0.1, imsize * 0.03, imsize * 0.03)][severity - 1]
    image = np.array(x, dtype=np.float32) / 255.
    shape = image.shape
    shape_size = shape[:2]
    center_square = np.float32(shape_size) // 2
    square_size = min(shape_size) // 3
    pts1 = np.float32([center_square + square_size,
                       [center_square[0] + square_size, center_square[1] - square_size],
                       center_square - square_size])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    matrix = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, matrix, shape_size[::-1], borderMode=cv2.BORDER_REFLECT_101)
    dx = (_gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dy = (_gaussian(rng.uniform(-1, 1, size=shape[:2]), c[1], mode="reflect", truncate=3) * c[0]).astype(np.float32)
    dx, dy = dx[..., np.newaxis], dy[..., np.newaxis]
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(gy + dy, (-1, 1)), np.reshape(gx + dx, (-1, 1)), np.reshape(gz, (-1, 1))
    return np.clip(ndimage.map_coordinates(image, indices, order=1, mode="reflect").reshape(shape), 0, 1) * 255


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``pixelate``: PIL's BOX resize to int(32 c) = 30, 28, 27, 24, 20 pixels and BOX back to 32;
    uint8. Deterministic."""
    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    image = Image.fromarray(np.asarray(x, dtype=np.uint8))
    image = image.resize((int(SIZE * c), int(SIZE * c)), Image.BOX).resize((SIZE, SIZE), Image.BOX)
    return np.asarray(image)


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """make_cifar_c.py ``jpeg_compression``: the image through PIL's JPEG encoder at quality 80, 65, 58, 50, 40
    (PIL's defaults otherwise) and decoded; uint8. Deterministic."""
    c = [80, 65, 58, 50, 40][severity - 1]
    output = io.BytesIO()
    Image.fromarray(np.asarray(x, dtype=np.uint8)).save(output, "JPEG", quality=c)
    return np.asarray(Image.open(output))


# name -> function, in make_cifar_c.py's order: noise, blur, weather, digital
CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    f.__name__: f for f in (gaussian_noise, shot_noise, impulse_noise,
                            defocus_blur, glass_blur, motion_blur, zoom_blur,
                            snow, frost, fog, brightness,
                            contrast, elastic_transform, pixelate, jpeg_compression)}
DETERMINISTIC = ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression")


def corruption_seed(seed: int, name: str, severity: int) -> int:
    """The 32-bit seed of one corruption at one severity: a function of ``seed`` and of both, so
    adding or reordering corruptions leaves each one's pixels unchanged."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode()), severity]).generate_state(1)[0])


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """``images`` (N, 32, 32, 3) uint8 RGB under make_cifar_c.py's corruption ``name`` (a key of
    :data:`CORRUPTIONS`) at ``severity`` 1..5, as (N, 32, 32, 3) uint8: ``np.uint8`` of each image's result, as
    upstream stores it; severity 0 returns a copy. One ``numpy.random.Generator`` seeded with
    :func:`corruption_seed` serves the images in order, so the same seed gives the same pixels and image i's
    draws depend on the images before it.

    Raises:
        ValueError: an unknown corruption, a severity outside 0..5, or images that are not (N, 32, 32, 3).
    """
    if name not in CORRUPTIONS or not 0 <= severity <= SEVERITIES:
        raise ValueError(f"no corruption {name!r} at severity {severity}: corruptions are {', '.join(CORRUPTIONS)}, "
                         f"severities 0..{SEVERITIES}")
    if images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"images of shape {images.shape}: make_cifar_c.py's corruptions take (N, 32, 32, 3)")
    if severity == 0:
        return images.copy()
    function, rng = CORRUPTIONS[name], np.random.default_rng(corruption_seed(seed, name, severity))
    return np.stack([np.uint8(function(image, severity, rng)) for image in images])
