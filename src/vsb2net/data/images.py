"""Image helpers shared by the loaders: decode, convert, resize and stack images into uint8 arrays.

Every image becomes either greyscale ``(H, W)`` or RGB ``(H, W, 3)`` uint8.  A stack is
``(N, H, W)`` when every image is greyscale and ``(N, H, W, 3)`` as soon as one is in colour (the
greyscale ones are then repeated over the three channels).  Resizing stretches an image to
``image_size x image_size`` with Pillow's bilinear filter (antialiased when shrinking); it does not
crop, so the aspect ratio changes when the image is not square.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from vsb2net.errors import VsbError

#: file extensions read as images (lower case); other files in an image folder are skipped
IMAGE_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp",
    ".ppm", ".pgm", ".pbm", ".pnm",
})

_GREY_MODES = {"1", "L", "LA", "La", "I", "F"}
IMAGE_SIZE_HINT = "set --set data.image_size=64 (or another side length) to resize them all"


def pil_to_array(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image as uint8 ``(H, W)`` (greyscale) or ``(H, W, 3)`` (colour).

    Alpha is dropped; a palette image counts as greyscale when its colours are all grey; 16-bit
    greyscale is scaled to 8 bits.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return np.clip(np.rint(a * (255.0 / hi)), 0, 255).astype(np.uint8)
    if mode in _GREY_MODES:
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if mode in ("P", "PA"):
        rgb = np.asarray(img.convert("RGBA").convert("RGB"), dtype=np.uint8)
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return np.ascontiguousarray(rgb[..., 0])
        return rgb
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def resize_image(a: np.ndarray, image_size: int) -> np.ndarray:
    """One uint8 image ``(H, W)`` or ``(H, W, 3)`` resized to ``image_size x image_size``."""
    if a.shape[:2] == (image_size, image_size):
        return a
    out = Image.fromarray(a).resize((image_size, image_size), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def read_image(path: str | os.PathLike, image_size: int | None = None) -> np.ndarray:
    """Decode the image file ``path`` (first frame, EXIF orientation applied) to a uint8 array,
    resized when ``image_size`` is given.  A file Pillow cannot decode raises :class:`VsbError`.
    """
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            a = pil_to_array(img)
    except VsbError:
        raise
    except FileNotFoundError:
        raise VsbError(f"image file not found: {path}.") from None
    except Exception as e:  # Pillow raises many types for broken files; all are the file's fault
        raise VsbError(
            f"{path}: cannot decode the image ({type(e).__name__}: {e}); replace the file with a "
            "readable copy or delete it."
        ) from None
    return resize_image(a, image_size) if image_size else a


def stack_images(
    images: Sequence[Image.Image | np.ndarray],
    image_size: int | None = None,
    where: str = "images",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Stack images (Pillow images or uint8 arrays ``(H, W)`` / ``(H, W, 3)``) into one uint8 array.

    All greyscale -> ``(N, H, W)``; any colour -> ``(N, H, W, 3)``.  With ``image_size`` every image
    is resized to ``image_size x image_size``; without it the images must all have the same size.
    ``where`` (e.g. the dataset and folder) and ``names`` (one per image, e.g. file names) are used
    in error messages.
    """
    if len(images) == 0:
        raise VsbError(f"{where}: no images to load.")
    arrays = []
    for i, im in enumerate(images):
        label = names[i] if names is not None else f"image {i}"
        if isinstance(im, Image.Image):
            a = pil_to_array(im)
        else:
            a = np.asarray(im)
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
                raise VsbError(f"{where}: {label} must be uint8 (H, W) or (H, W, 3), got {a.dtype} with "
                               f"shape {a.shape}.")
        if a.shape[0] == 0 or a.shape[1] == 0:
            raise VsbError(f"{where}: {label} is empty ({a.shape[1]}x{a.shape[0]} pixels).")
        arrays.append(resize_image(a, image_size) if image_size else a)
    sizes: dict[tuple[int, int], int] = {}
    for i, a in enumerate(arrays):
        sizes.setdefault(a.shape[:2], i)
    if len(sizes) > 1:
        examples = []
        for (h, w), i in list(sizes.items())[:3]:
            label = names[i] if names is not None else f"image {i}"
            examples.append(f"{label} is {w}x{h}")
        raise VsbError(f"{where}: the images differ in size ({len(sizes)} sizes, e.g. {'; '.join(examples)}); "
                       f"{IMAGE_SIZE_HINT}.")
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
    return np.ascontiguousarray(np.stack(arrays))


def resize_array(x: np.ndarray, image_size: int | None) -> np.ndarray:
    """Resize a uint8 stack ``(N, H, W)`` or ``(N, H, W, 3)`` to ``image_size x image_size``
    (unchanged when ``image_size`` is None or already the size)."""
    if not image_size or x.shape[1:3] == (image_size, image_size):
        return x
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] != 3):
        raise VsbError(f"cannot resize images of dtype {x.dtype} and shape {x.shape}; expected uint8 "
                       "(N, H, W) or (N, H, W, 3).")
    out = np.empty((len(x), image_size, image_size) + x.shape[3:], dtype=np.uint8)
    for i in range(len(x)):
        out[i] = resize_image(x[i], image_size)
    return out
