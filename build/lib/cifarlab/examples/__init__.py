"""Ten CIFAR-10 test images for the app, one per class: the first test image of each class,
upscaled 4x (nearest) to 128 x 128 PNG and named after the class (``cat.png``).

Made from ``../shared/data`` (the JPEG q75 copy of CIFAR-10) with::

    a = load_cifar10("../shared/data")
    first = [int(np.flatnonzero(a.test_labels == k)[0]) for k in range(10)]
    upscale(a.test_images[first], 128) -> <class name>.png

Downscaling a 4x nearest upscale by 4 with a box filter gives the 32 x 32 test image back
exactly, so the app classifies an example exactly as the test image.
"""
from __future__ import annotations

from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Their indices in the test batch (the first of each class).
TEST_INDICES = {"airplane": 3, "automobile": 6, "bird": 25, "cat": 0, "deer": 22, "dog": 12, "frog": 4, "horse": 13,
                "ship": 1, "truck": 11}


def example_paths() -> list[Path]:
    """The ten example PNGs in class order (airplane ... truck)."""
    return [EXAMPLES_DIR / f"{name}.png" for name in CLASS_NAMES]
