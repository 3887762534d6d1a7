"""Image helpers shared by the loaders: decode, convert, resize and stack images into uint8 arrays.

Every image becomes either greyscale ``(H, W)`` or RGB ``(H, W, 3)`` uint8.  A stack is
``(N, H, W)`` when every image is greyscale and ``(N, H, W, 3)`` as soon as one is in colour (the
greyscale ones are then repeated over the three channels).  Resizing stretches an image to
``image_size x image_size`` with Pillow's bilinear filter (antialiased when shrinking); it does not
crop, so the aspect ratio changes when the image is not square.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

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
            upright = ImageOps.exif_transpose(img) or img
            a = pil_to_array(upright)
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


# --- pictures a user gives (files to index, queries, uploads), as a run's network sees them ---

def image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` with one of :data:`IMAGE_EXTENSIONS`, sorted by path."""
    if not folder.is_dir():
        raise VsbError(f"image folder {folder} does not exist or is not a folder.")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise VsbError(f"no image files in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS)[:8])}, ...).")
    return files


def read_images(paths: list[Path], in_shape: tuple[int, ...]) -> np.ndarray:
    """Images as the run's network sees them: uint8 (N, H, W) greyscale or (N, H, W, 3) colour.

    Each file is converted to the run's channels and resized (bilinear) to its height and width.
    The MNIST-style datasets show a light object on a dark background; pictures should too.
    """
    _check_image_input(in_shape)
    out = np.empty((len(paths),) + _image_shape(in_shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        path = Path(path)
        if not path.is_file():
            raise VsbError(f"image {path} does not exist.")
        out[i] = decode_image(path, in_shape, name=f"image {path}")
    return out


#: Largest picture (width x height) that ``decode_image`` accepts by default, well below Pillow's
#: own decompression-bomb limit (about 89 million pixels).
MAX_PIXELS = 4096 * 4096


def _check_image_input(in_shape: tuple[int, ...]) -> None:
    if len(in_shape) != 3 or in_shape[0] not in (1, 3):
        raise VsbError(f"the run's model takes inputs of shape {in_shape}, not images; it cannot code image files.")


def _image_shape(in_shape: tuple[int, ...]) -> tuple[int, ...]:
    channels, height, width = in_shape
    return (height, width) + (() if channels == 1 else (3,))


def open_picture(source: Path | bytes, *, max_pixels: int | None = MAX_PIXELS, name: str = "image"):
    """A decoded Pillow image (its first frame) of a file or of bytes, or VsbError; use it in a
    ``with`` block (it may hold the file open).

    The pixel count is checked on the header, before anything is decoded: a small file that
    declares a huge picture (a decompression bomb) is refused without allocating it.  Pillow's own
    DecompressionBombError (its larger limit) is refused too, and so is its
    DecompressionBombWarning where a warnings filter turns it into an error (``vsb2net serve``
    installs one), as is a truncated or unreadable file.
    """
    from PIL import UnidentifiedImageError

    raw = isinstance(source, (bytes, bytearray, memoryview))
    im = None
    try:
        im = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source)
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise VsbError(f"{name} is {width} x {height} pixels, more than the limit of {max_pixels:,} pixels; "
                           "send a smaller picture.")
        im.load()
        return im
    except BaseException as exc:
        if im is not None:
            im.close()
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise VsbError(f"{name} declares more pixels than Pillow's decompression-bomb limit; send a smaller "
                           "picture.") from None
        if isinstance(exc, UnidentifiedImageError) and raw:
            detail = "not an image format Pillow reads"
        elif isinstance(exc, (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)):
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        else:
            raise
        raise VsbError(f"cannot read {name} ({detail}); give a PNG, JPEG or another format Pillow reads.") from None


def decode_image(source: Path | bytes, in_shape: tuple[int, ...], *, max_pixels: int | None = MAX_PIXELS,
                 name: str = "image") -> np.ndarray:
    """One picture (a file or bytes) as the run's network sees it (see :func:`read_images`)."""
    _check_image_input(in_shape)
    channels, height, width = in_shape
    with open_picture(source, max_pixels=max_pixels, name=name) as im:
        try:
            im = im.convert("L" if channels == 1 else "RGB")
            return np.array(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
        except (OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise VsbError(f"cannot read {name} ({detail}); give a PNG, JPEG or another format Pillow "
                           "reads.") from None
