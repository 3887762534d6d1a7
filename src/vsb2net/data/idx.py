"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

Layout (all big-endian): two zero bytes, a dtype code, the number of dimensions n, then n uint32
dimension sizes, then the values in C order.  Files may be gzip-compressed; we decide by the gzip
magic bytes (IDX files start with 0x00 0x00, gzip with 0x1f 0x8b), and a name ending in ``.gz``
must hold gzip data.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError
from vsb2net.io import atomic_path

# IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise VsbError(f"IDX file not found: {path}.") from None
    except IsADirectoryError:
        raise VsbError(f"{path} is a directory, expected an IDX file.") from None
    except OSError as e:
        raise VsbError(f"cannot read IDX file {path}: {e.strerror or e}.") from None
    if not raw:
        raise VsbError(f"IDX file {path} is empty; download it again.")
    is_gz = raw[:2] == _GZIP_MAGIC
    if path.name.endswith(".gz") and not is_gz:
        raise VsbError(
            f"{path} is named .gz but is not gzip data (corrupt or mislabelled download); "
            "download the file again."
        )
    if not is_gz:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise VsbError(
            f"{path} is a corrupt or truncated gzip file ({e}); download the file again."
        ) from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-byte-order numpy array."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) == 0:
        raise VsbError(f"IDX file {path} holds no data after decompression; download it again.")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise VsbError(
            f"{path} is not an IDX file: it does not start with the IDX magic bytes 00 00 "
            f"(first bytes: {data[:4].hex(' ')})."
        )
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise VsbError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known}).")
    if ndim == 0:
        raise VsbError(f"{path}: IDX header declares 0 dimensions.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise VsbError(
            f"{path} is truncated: its header needs {header} bytes, the file has {len(data)}."
        )
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says (trailing bytes)"
        raise VsbError(
            f"{path} is {what}: shape {dims} of {dtype.name} needs {expected} bytes "
            f"(decompressed), the file has {len(data)}. Download the file again."
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # native order, a writable copy


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzip-compressed when the name ends with ``.gz``; atomic."""
    path = Path(path)
    arr = np.asarray(array)
    code = _CODE_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        raise VsbError(
            f"cannot write {arr.dtype} to IDX file {path}: IDX holds uint8, int8, int16, int32, "
            "float32 or float64."
        )
    if not 1 <= arr.ndim <= 255 or any(d >= 2**32 for d in arr.shape):
        raise VsbError(f"cannot write shape {arr.shape} to IDX file {path}: need 1..255 dims < 2^32.")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    payload = header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return path


# --- the four-file train/t10k layout of MNIST and Fashion-MNIST ---------------------------------

IDX_SPLIT_FILES: dict[str, str] = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}


def _candidates(stem: str) -> list[str]:
    # Also accept the "train-images.idx3-ubyte" spelling some mirrors use.
    dotted = stem.replace("-idx", ".idx")
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def find_idx_split_files(root: str | os.PathLike) -> tuple[dict[str, Path], list[str]]:
    """Locate the four IDX files under ``root``: (found {key: path}, missing file names)."""
    root = Path(root)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, stem in IDX_SPLIT_FILES.items():
        for cand in _candidates(stem):
            if (root / cand).is_file():
                found[key] = root / cand
                break
        else:
            missing.append(f"{stem}[.gz]")
    return found, missing


def probe_idx_split_dir(root: str | os.PathLike) -> tuple[bool, str]:
    root = Path(root)
    if not root.is_dir():
        return False, f"directory {root} does not exist"
    _, missing = find_idx_split_files(root)
    if missing:
        return False, f"missing in {root}: {', '.join(missing)}"
    return True, str(root)


def load_idx_split_dir(
    root: str | os.PathLike, *, dataset: str = "dataset", how_to_get: str = ""
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Read train + t10k images and labels under ``root`` and concatenate them (train first).

    Returns ``(images uint8 (N, H, W), labels int64 (N,), {"train": n_train, "test": n_test})``.
    Missing directory or files raise VsbError naming what was expected and ``how_to_get``.
    """
    root = Path(root)
    expected = ", ".join(f"{s}[.gz]" for s in IDX_SPLIT_FILES.values())
    hint = f" {how_to_get}" if how_to_get else ""
    if not root.is_dir():
        raise VsbError(
            f"{dataset}: directory {root} does not exist; expected it to hold the IDX files "
            f"{expected}.{hint}"
        )
    found, missing = find_idx_split_files(root)
    if missing:
        raise VsbError(
            f"{dataset}: missing IDX files in {root}: {', '.join(missing)} (expected {expected})."
            f"{hint}"
        )
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    sizes: dict[str, int] = {}
    for split in ("train", "test"):
        xp, yp = found[f"{split}-images"], found[f"{split}-labels"]
        x, y = read_idx(xp), read_idx(yp)
        if x.dtype != np.uint8 or x.ndim != 3:
            raise VsbError(
                f"{xp}: expected uint8 images of shape (N, H, W), got {x.dtype} {x.shape}."
            )
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise VsbError(f"{yp}: expected integer labels of shape (N,), got {y.dtype} {y.shape}.")
        if len(x) != len(y):
            raise VsbError(
                f"{dataset}: {xp} holds {len(x)} images but {yp} holds {len(y)} labels; "
                "the files do not belong together. Download them again."
            )
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise VsbError(
                f"{dataset}: {xp} has images of size {x.shape[1:]}, the train split "
                f"{xs[0].shape[1:]}."
            )
        xs.append(x)
        ys.append(y.astype(np.int64))
        sizes[split] = len(x)
    return np.concatenate(xs), np.concatenate(ys), sizes
