"""Image files -> the S x S RGB pixels a model sees (S = 32 for CIFAR; a run's ``data.image_size``): the app's
uploads, predict.py's files and an ImageFolder tree (:mod:`cifarlab.data.sources`), decoded with Pillow, checked,
made upright RGB, cropped to the central square and box-filtered down."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cifarlab.errors import CifarlabError

SIZE = 32  # CIFAR images are 32 x 32: the default side


def _name(value: Any) -> str:
    """How to refer to an upload in a message: its original file name where known."""
    if isinstance(value, Mapping):
        return repr(value.get("orig_name") or Path(str(value.get("path"))).name)
    return repr(Path(value).name) if isinstance(value, (str, Path)) else "the image"


def open_image(value: Any, max_megapixels: float, size: int = SIZE) -> Image.Image:
    """The image in ``value``, decoded: a path, Gradio's file payload (a dict with ``path``), a
    PIL image or a uint8 array (H, W) or (H, W, 3|4); a JPEG is decoded at the smallest scale that
    keeps at least ``2 size`` pixels a side.

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
    image.draft(None, (size * 2, size * 2))  # JPEG: decode at 1/2..1/8 scale, enough for size x size
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


def to_cifar(image: Image.Image, size: int = SIZE) -> np.ndarray:
    """An RGB image of any size -> (size, size, 3) uint8: the central square, box-filtered down
    (area averaging; it returns the 32 x 32 original of a 4x nearest upscale exactly)."""
    return np.array(ImageOps.fit(image, (size, size), method=Image.Resampling.BOX), dtype=np.uint8)


def read_upload(value: Any, max_megapixels: float, size: int = SIZE) -> np.ndarray:
    """An upload (see :func:`open_image`) -> (size, size, 3) uint8, as :func:`to_rgb` and :func:`to_cifar` make it.

    Raises:
        CifarlabError: see :func:`open_image`.
    """
    return to_cifar(to_rgb(open_image(value, max_megapixels, size)), size)
