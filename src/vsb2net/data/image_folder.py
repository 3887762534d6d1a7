"""``image-folder``: your own images, one sub-folder per class (the torchvision ImageFolder layout).

    ROOT/
      cat/   001.png  002.jpg  more/003.png ...
      dog/   ...

Class names are the sub-folder names, sorted (they are also the words looked up in GloVe, so
name them in English: ``grizzly_bear`` or ``grizzly bear``).  Image files (png, jpg, bmp, gif,
tif, webp, pnm; found recursively inside each class folder) are read with Pillow; other files and
hidden files or folders (``.name``) are skipped.  Only greyscale images give (N, H, W); one colour
image makes every image RGB (N, H, W, 3).  Images that differ in size need ``data.image_size``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.data.images import IMAGE_EXTENSIONS, read_image, stack_images
from vsb2net.errors import VsbError

IMAGE_FOLDER_HOW = (
    "Pass --data-root DIR with one sub-folder per class holding that class's images "
    "(DIR/cat/*.png, DIR/dog/*.jpg, ...); add --set data.image_size=64 when the images differ in size."
)


def _root(root: str | None) -> Path:
    if root is None:
        raise VsbError(f"image-folder: no folder given. {IMAGE_FOLDER_HOW}")
    d = Path(root).expanduser()
    if not d.is_dir():
        raise VsbError(f"image-folder: {d} is not a directory. {IMAGE_FOLDER_HOW}")
    return d


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _class_dirs(d: Path) -> list[Path]:
    try:
        return sorted((c for c in d.iterdir() if c.is_dir() and not _hidden(c.name)), key=lambda c: c.name)
    except OSError as e:
        raise VsbError(f"image-folder: cannot list {d}: {e.strerror or e}.") from None


def _image_files(class_dir: Path) -> list[Path]:
    """Image files under ``class_dir`` (recursively, hidden entries skipped), in a fixed order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(class_dir, onerror=None):
        dirnames[:] = sorted(n for n in dirnames if not _hidden(n))
        for f in sorted(filenames):
            if not _hidden(f) and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                out.append(Path(dirpath) / f)
    return out


def _probe(root: str | None = None) -> tuple[bool, str]:
    if root is None:
        return False, "needs --data-root DIR (a folder with one sub-folder per class)"
    d = Path(root).expanduser()
    if not d.is_dir():
        return False, f"{d} is not a directory"
    try:
        classes = _class_dirs(d)
    except VsbError as e:
        return False, str(e)
    if len(classes) < 2:
        return False, f"{d} has {len(classes)} class sub-folder(s); need at least 2"
    return True, f"{d} ({len(classes)} class folders)"


@register_dataset(
    "image-folder",
    description="your own images: --data-root DIR with one sub-folder of images per class",
    how_to_get=IMAGE_FOLDER_HOW,
    probe=_probe,
)
def load_image_folder(root: str | None = None, image_size: int | None = None, **_options) -> Dataset:
    d = _root(root)
    classes = _class_dirs(d)
    if len(classes) < 2:
        loose = [f.name for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS][:1]
        hint = (f" The images ({loose[0]}, ...) must be inside class sub-folders, not in {d} itself."
                if loose else "")
        raise VsbError(f"image-folder: {d} has {len(classes)} class sub-folder(s) "
                       f"({', '.join(c.name for c in classes) or 'none'}); zero-shot hashing needs at least 2 "
                       f"classes, one sub-folder each.{hint} {IMAGE_FOLDER_HOW}")
    files: list[Path] = []
    labels: list[int] = []
    empty = []
    for i, c in enumerate(classes):
        found = _image_files(c)
        if not found:
            empty.append(c.name)
        files += found
        labels += [i] * len(found)
    if empty:
        exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        raise VsbError(f"image-folder: class folder(s) without images in {d}: {', '.join(empty)}. Put images "
                       f"({exts}) in every class folder or remove the empty ones.")
    arrays = [read_image(f, image_size) for f in files]
    x = stack_images(arrays, image_size, where=f"image-folder {d}",
                     names=[str(f.relative_to(d)) for f in files])
    return Dataset(name="image-folder", x=x, labels=np.asarray(labels), class_names=[c.name for c in classes],
                   kind="image", source=str(d))
