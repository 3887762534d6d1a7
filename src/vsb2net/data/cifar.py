"""CIFAR-10 and CIFAR-100, from the official "CIFAR-10/100 python version" files.

The files are Python-2 era pickles of dicts with bytes keys: ``b"data"`` a uint8 (N, 3072) array,
each row a 32x32 image stored as its R, G and B planes one after the other (row-major), and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100) a list of N class ids.  The class names
are in ``batches.meta`` (``b"label_names"``) / ``meta`` (``b"fine_label_names"``).  They are read with
a restricted unpickler that only resolves numpy's array globals, so a tampered file cannot run
code.  Train and test files are concatenated: the zero-shot protocol re-splits by class.

``--data-root`` may be the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``), its
parent, or the downloaded archive (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``), read in
place without extracting it.
"""
from __future__ import annotations

import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.data.images import resize_array
from vsb2net.data.safe_pickle import _NumpyOnlyUnpickler
from vsb2net.errors import VsbError

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class _Spec:
    name: str
    title: str
    folder: str  # the folder the archive extracts to
    archive: str
    data_files: tuple[str, ...]
    meta_file: str
    names_key: str
    labels_key: str
    env: str

    @property
    def files(self) -> tuple[str, ...]:
        return self.data_files + (self.meta_file,)

    @property
    def how_to_get(self) -> str:
        return (f'Download "{self.title} python version" ({self.archive}) from {CIFAR_URL} and pass '
                f"--data-root with the archive or the folder {self.folder}/ it extracts to "
                f"(or set {self.env}=PATH).")


CIFAR10 = _Spec(
    name="cifar10", title="CIFAR-10", folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
    data_files=tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",), meta_file="batches.meta",
    names_key="label_names", labels_key="labels", env="VSB2NET_CIFAR10_DIR",
)
CIFAR100 = _Spec(
    name="cifar100", title="CIFAR-100", folder="cifar-100-python", archive="cifar-100-python.tar.gz",
    data_files=("train", "test"), meta_file="meta",
    names_key="fine_label_names", labels_key="fine_labels", env="VSB2NET_CIFAR100_DIR",
)


# --- where the files are -------------------------------------------------------------------------

def _root(spec: _Spec, root: str | None) -> tuple[Path, str]:
    if root is not None:
        return Path(root).expanduser(), "--data-root"
    if os.environ.get(spec.env):
        return Path(os.environ[spec.env]).expanduser(), f"${spec.env}"
    raise VsbError(f"{spec.name}: no data location given. {spec.how_to_get}")


def _locate(spec: _Spec, path: Path, origin: str) -> tuple[str, Path]:
    """``("dir", folder)`` or ``("tar", archive)`` for the files under ``path``."""
    if path.is_file():
        if path.name in spec.files:  # one of the files: use its folder
            return "dir", path.parent
        return "tar", path
    if not path.is_dir():
        raise VsbError(f"{spec.name}: {path} ({origin}) does not exist. {spec.how_to_get}")
    for d in (path, path / spec.folder):
        if any((d / f).is_file() for f in spec.files):
            return "dir", d
    if (path / spec.archive).is_file():
        return "tar", path / spec.archive
    raise VsbError(f"{spec.name}: {path} ({origin}) holds neither the {spec.title} files "
                   f"({', '.join(spec.files)}) nor a {spec.folder}/ folder or {spec.archive}. "
                   f"{spec.how_to_get}")


def _probe(spec: _Spec):
    def probe(root: str | None = None) -> tuple[bool, str]:
        try:
            kind, where = _locate(spec, *_root(spec, root))
        except VsbError:
            given = root or os.environ.get(spec.env)
            return False, f"no {spec.title} files at {given}" if given else f"no --data-root or ${spec.env}"
        if kind == "tar":
            return True, f"archive {where}"
        missing = [f for f in spec.files if not (where / f).is_file()]
        if missing:
            return False, f"missing in {where}: {', '.join(missing)}"
        return True, str(where)

    return probe


def _read_dir(spec: _Spec, d: Path) -> dict[str, bytes]:
    missing = [f for f in spec.files if not (d / f).is_file()]
    if missing:
        raise VsbError(f"{spec.name}: missing {', '.join(missing)} in {d}; the folder must hold all of "
                       f"{', '.join(spec.files)} (a complete extraction of {spec.archive}). {spec.how_to_get}")
    out = {}
    for f in spec.files:
        try:
            out[f] = (d / f).read_bytes()
        except OSError as e:
            raise VsbError(f"cannot read {d / f}: {e.strerror or e}.") from None
    return out


def _read_tar(spec: _Spec, path: Path) -> dict[str, bytes]:
    """The wanted members of the archive, in one sequential pass (no extraction to disk)."""
    wanted = set(spec.files)
    out: dict[str, bytes] = {}
    try:
        tf = tarfile.open(path, mode="r:*")
    except FileNotFoundError:
        raise VsbError(f"{spec.name}: {path} does not exist. {spec.how_to_get}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError):
        raise VsbError(f"{spec.name}: {path} is neither a {spec.title} folder nor a readable tar archive "
                       f"(e.g. {spec.archive}); it may be truncated. {spec.how_to_get}") from None
    try:
        with tf:
            for m in tf:
                base = m.name.rstrip("/").rsplit("/", 1)[-1]
                if not m.isfile() or base not in wanted or base in out:
                    continue
                fh = tf.extractfile(m)
                out[base] = fh.read() if fh is not None else b""
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as e:
        raise VsbError(f"{spec.name}: the archive {path} is truncated or corrupt ({type(e).__name__}: "
                       f"{' '.join(str(e).split())}). Download {spec.archive} again from {CIFAR_URL}.") from None
    missing = sorted(wanted - set(out))
    if missing:
        raise VsbError(f"{spec.name}: the archive {path} lacks {', '.join(missing)}; expected the official "
                       f"{spec.archive} holding {spec.folder}/{{{','.join(spec.files)}}}. {spec.how_to_get}")
    return out


# --- parsing -------------------------------------------------------------------------------------

def _unpickle(raw: bytes, where: str, spec: _Spec) -> dict[str, object]:
    if not raw:
        raise VsbError(f"{where} is empty; download {spec.archive} again from {CIFAR_URL}.")
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), where, encoding="bytes").load()
    except VsbError:
        raise
    except Exception as e:  # any parse failure of an untrusted file is the file's fault
        raise VsbError(f"{where} is not a readable {spec.title} pickle; it is truncated or corrupt "
                       f"({type(e).__name__}: {e}). Download {spec.archive} again from {CIFAR_URL}.") from None
    if not isinstance(obj, dict):
        raise VsbError(f"{where}: expected a pickled dict (the {spec.title} python-version format), got "
                       f"{type(obj).__name__}.")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _get(d: dict, key: str, where: str):
    if key not in d:
        have = ", ".join(sorted(d)) or "nothing"
        raise VsbError(f"{where}: the pickle has no {key!r} entry (it has {have}); is this the "
                       "right file of the python version?")
    return d[key]


def _text(s: object) -> str:
    if isinstance(s, bytes):
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError:
            return s.decode("latin-1")
    return str(s)


def _class_names(spec: _Spec, raw: bytes, where: str) -> list[str]:
    names = _get(_unpickle(raw, where, spec), spec.names_key, where)
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise VsbError(f"{where}: {spec.names_key!r} must be a list of class names.")
    names = [_text(n).strip() for n in names]
    if not names or not all(names) or len(set(names)) != len(names):
        raise VsbError(f"{where}: {spec.names_key!r} must hold distinct, non-empty class names; got "
                       f"{len(names)} names, {len(set(names))} distinct.")
    return names


def _batch(spec: _Spec, raw: bytes, where: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(raw, where, spec)
    data = _get(d, "data", where)
    labels = _get(d, spec.labels_key, where)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} with shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise VsbError(f"{where}: 'data' must be a uint8 array of shape (N, 3072) (32x32 pixels x 3 colour "
                       f"planes), got {what}.")
    try:
        y = np.asarray(labels)
    except Exception:  # pragma: no cover - a list of odd objects
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise VsbError(f"{where}: {spec.labels_key!r} must be a list of integer class ids, got "
                       f"{type(labels).__name__} of {y.dtype} with shape {y.shape}.")
    if len(y) != len(data):
        raise VsbError(f"{where}: {len(data)} images but {len(y)} labels in {spec.labels_key!r}.")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise VsbError(f"{where}: class ids must lie in 0..{n_classes - 1}, found {int(y.min())}..{int(y.max())}.")
    x = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y.astype(np.int64)


def _load(spec: _Spec, root: str | None, image_size: int | None) -> Dataset:
    kind, where = _locate(spec, *_root(spec, root))
    raw = _read_tar(spec, where) if kind == "tar" else _read_dir(spec, where)
    member = (lambda f: f"{where}:{f}") if kind == "tar" else (lambda f: str(where / f))
    names = _class_names(spec, raw.pop(spec.meta_file), member(spec.meta_file))
    xs, ys = [], []
    for f in spec.data_files:
        x, y = _batch(spec, raw.pop(f), member(f), len(names))
        xs.append(x)
        ys.append(y)
    x = resize_array(np.concatenate(xs), image_size)
    return Dataset(name=spec.name, x=x, labels=np.concatenate(ys), class_names=names, kind="image",
                   source=str(where))


@register_dataset(
    "cifar10",
    description="CIFAR-10: 60,000 32x32 colour images (train+test), 10 classes x 6000",
    how_to_get=CIFAR10.how_to_get,
    probe=_probe(CIFAR10),
)
def load_cifar10(root: str | None = None, image_size: int | None = None, **_options) -> Dataset:
    return _load(CIFAR10, root, image_size)


@register_dataset(
    "cifar100",
    description="CIFAR-100: 60,000 32x32 colour images (train+test), 100 fine classes x 600",
    how_to_get=CIFAR100.how_to_get,
    probe=_probe(CIFAR100),
)
def load_cifar100(root: str | None = None, image_size: int | None = None, **_options) -> Dataset:
    return _load(CIFAR100, root, image_size)
