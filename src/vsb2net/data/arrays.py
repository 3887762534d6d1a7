"""A directory of .npy arrays: precomputed features or images, single- or multi-label.

The format most zero-shot hashing code exchanges (NUS-WIDE-style multi-label sets included)::

    DIR/features.npy     float (N, D) features            } exactly one of the two
    DIR/images.npy       uint8 (N, H, W) or (N, H, W, C)  }
    DIR/labels.npy       int (N,) class ids 0..C-1, or a 0/1 (N, C) multi-label matrix
                         (or labels.txt: one id per line, or one whitespace-separated 0/1 row per line)
    DIR/classes.txt      one class (concept) name per line, in label order
    DIR/attributes.npy   optional float (C, A) class attributes (used by class_vectors=auto)
    DIR/unseen.txt       optional: the proposed split's unseen class names, one per line

Items without any label (common in NUS-WIDE, where many images carry none of the chosen
concepts) are relevant to nothing and are dropped, with the count reported in ``source``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.errors import VsbError

ENV = "VSB2NET_NPY_DIR"
HOW = ("Save your arrays as DIR/features.npy (or DIR/images.npy), DIR/labels.npy and DIR/classes.txt "
       "(see `python -c 'import vsb2net.data.arrays as a; print(a.__doc__)'`) and pass --data-root DIR "
       f"(or set {ENV}=DIR).")


def _root(root: str | None) -> Path:
    if root is None and os.environ.get(ENV):
        root = os.environ[ENV]
    if root is None:
        raise VsbError(f"dataset npy: no directory given. {HOW}")
    return Path(root)


def _npy(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as fh:
            if fh.read(6) != b"\x93NUMPY":
                raise VsbError(f"{path} is not a .npy file; save it with np.save(path, array).")
        return np.load(path, allow_pickle=False, mmap_mode="r")
    except VsbError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise VsbError(f"{path} is not a readable numeric .npy file ({e}); save it with np.save(path, array) "
                       "without object arrays.") from None


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise VsbError(f"{path} is not UTF-8 text.") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _labels_txt(path: Path) -> np.ndarray:
    rows = []
    for i, ln in enumerate(_lines(path), 1):
        try:
            rows.append([int(v) for v in ln.replace(",", " ").split()])
        except ValueError:
            raise VsbError(f"{path}, line {i}: {ln[:40]!r} is not a row of integers.") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise VsbError(f"{path}: rows have different numbers of values ({sorted(widths)}).")
    m = np.asarray(rows, dtype=np.int64)
    return m[:, 0] if m.ndim == 2 and m.shape[1] == 1 else m


def probe_npy_dir(root: str | None = None) -> tuple[bool, str]:
    try:
        d = _root(root)
    except VsbError:
        return False, "no directory given (--data-root DIR)"
    x = [f for f in ("features.npy", "images.npy") if (d / f).is_file()]
    missing = ([] if x else ["features.npy or images.npy"]) + [
        f for f, alts in (("labels.npy", ("labels.npy", "labels.txt")), ("classes.txt", ("classes.txt",)))
        if not any((d / a).is_file() for a in alts)]
    return (False, f"missing in {d}: {', '.join(missing)}") if missing else (True, str(d))


@register_dataset(
    "npy",
    description="your own arrays: features.npy or images.npy + labels (class ids or 0/1 multi-label) + classes.txt",
    how_to_get=HOW,
    probe=probe_npy_dir,
)
def load_npy_dir(root: str | None = None, image_size: int | None = None, **_options) -> Dataset:
    d = _root(root)
    if not d.is_dir():
        raise VsbError(f"dataset npy: {d} is not a directory. {HOW}")
    have = [f for f in ("features.npy", "images.npy") if (d / f).is_file()]
    if len(have) != 1:
        raise VsbError(f"dataset npy: {d} must hold exactly one of features.npy and images.npy "
                       f"(found {', '.join(have) or 'neither'}). {HOW}")
    kind = "features" if have[0] == "features.npy" else "image"
    x = _npy(d / have[0])
    if (d / "labels.npy").is_file():
        labels = np.asarray(_npy(d / "labels.npy"))
    elif (d / "labels.txt").is_file():
        labels = _labels_txt(d / "labels.txt")
    else:
        raise VsbError(f"dataset npy: {d} has no labels.npy or labels.txt. {HOW}")
    if not (d / "classes.txt").is_file():
        raise VsbError(f"dataset npy: {d} has no classes.txt (one class name per line, in label order). {HOW}")
    names = _lines(d / "classes.txt")
    if len(labels) != len(x):
        raise VsbError(f"dataset npy: {d / have[0]} holds {len(x)} items but the labels {len(labels)}; both "
                       "must list the same items in the same order.")
    dropped = 0
    if labels.ndim == 2:
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise VsbError(f"dataset npy: the label matrix in {d} must hold only 0 and 1 (multi-label); for "
                           "class ids save a 1-D vector.")
        keep = np.flatnonzero(labels.any(axis=1))
        dropped = len(labels) - len(keep)
        if dropped:
            x, labels = x[keep], labels[keep]
    x = np.array(x)  # into memory: a read-only memory map cannot back a training tensor
    if kind == "image" and image_size is not None:
        from vsb2net.data.images import resize_array
        x = resize_array(x, image_size)
    attributes = _npy(d / "attributes.npy") if (d / "attributes.npy").is_file() else None
    unseen = _lines(d / "unseen.txt") if (d / "unseen.txt").is_file() else None
    source = str(d) + (f" ({dropped} items without any label dropped)" if dropped else "")
    return Dataset(name="npy", x=x, labels=np.asarray(labels), class_names=names, kind=kind, source=source,
                   attributes=None if attributes is None else np.asarray(attributes), proposed_unseen=unseen)
