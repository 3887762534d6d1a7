"""The MNIST-format datasets: Animal-MNIST (the project default), Fashion-MNIST and MNIST."""
from __future__ import annotations

import gzip
import importlib.util
import io
import os
import zlib
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.data.idx import load_idx_split_dir, probe_idx_split_dir
from vsb2net.data.knowledge import packaged_attributes
from vsb2net.data.safe_pickle import _NumpyOnlyUnpickler
from vsb2net.errors import VsbError

# --- restricted unpickling -----------------------------------------------------------------------

# The restricted unpickler (_NumpyOnlyUnpickler) lives in safe_pickle; CIFAR uses it too.


def load_numpy_pickle(path: str | os.PathLike) -> np.ndarray:
    """Load a (gzip'd or plain) pickle that must hold one numpy array of plain (non-object) dtype.

    Only the globals a numpy array pickle needs are allowed, so a malicious pickle cannot run code.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VsbError(f"file not found: {path}.") from None
    except OSError as e:
        raise VsbError(f"cannot read {path}: {e.strerror or e}.") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise VsbError(f"{path} is a corrupt or truncated gzip file ({e}).") from None
    if not raw:
        raise VsbError(f"{path} is empty.")
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), path).load()
    except VsbError:
        raise
    except Exception as e:  # any parse failure of an untrusted file is the file's fault
        raise VsbError(
            f"{path} is not a readable numpy pickle ({type(e).__name__}: {e})."
        ) from None
    if not isinstance(obj, np.ndarray) or obj.dtype.hasobject:
        raise VsbError(
            f"{path}: expected a pickled numpy array of numbers, got {type(obj).__name__}"
            + (f" of dtype {obj.dtype}" if isinstance(obj, np.ndarray) else "")
            + "."
        )
    return obj


# --- Animal-MNIST --------------------------------------------------------------------------------

# Label order as listed in the animal_mnist package README (alphabetical).  Checked by eye against
# per-class mean images and samples: 0 bears, 1 birds, 2 cats, 3 cows, 4 dogs, 5 elephants (trunks),
# 6 giraffes (long necks), 7 horses, 8 sheep, 9 zebras (the only striped, non-silhouette images).
# The files are sorted by label (1000 of label 0 first, ...), so shuffle before any split by index.
ANIMAL_MNIST_CLASSES = [
    "Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra",
]
ANIMAL_MNIST_FILES = ("animal_data_version_3.gz", "animal_label_version_3.gz")
ANIMAL_MNIST_HOW = (
    "Install the package without its heavy dependencies: pip install --no-deps animal-mnist "
    "(or pass --data-root DIR with a directory holding "
    + " and ".join(ANIMAL_MNIST_FILES) + ")."
)


def _animal_mnist_dir(root: str | None) -> Path:
    if root is not None:
        return Path(root)
    # Do not import animal_mnist: its __init__ imports tensorflow.
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise VsbError(f"animal-mnist: the animal_mnist package is not installed. {ANIMAL_MNIST_HOW}")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "Animal_MNIST"


def _probe_animal_mnist(root: str | None = None) -> tuple[bool, str]:
    try:
        d = _animal_mnist_dir(root)
    except VsbError:
        return False, "animal_mnist package not installed"
    missing = [f for f in ANIMAL_MNIST_FILES if not (d / f).is_file()]
    if missing:
        return False, f"missing in {d}: {', '.join(missing)}"
    return True, str(d)


@register_dataset(
    "animal-mnist",
    description="Animal-MNIST: 10,000 28x28 animal silhouettes, 10 classes x 1000 (default)",
    how_to_get=ANIMAL_MNIST_HOW,
    probe=_probe_animal_mnist,
)
def load_animal_mnist(root: str | None = None, **_options) -> Dataset:
    d = _animal_mnist_dir(root)
    xp, yp = (d / f for f in ANIMAL_MNIST_FILES)
    missing = [str(p) for p in (xp, yp) if not p.is_file()]
    if missing:
        raise VsbError(f"animal-mnist: missing data files: {', '.join(missing)}. {ANIMAL_MNIST_HOW}")
    x = load_numpy_pickle(xp)
    y = load_numpy_pickle(yp)
    if x.dtype != np.uint8 or x.ndim != 3:
        raise VsbError(f"{xp}: expected uint8 images (N, H, W), got {x.dtype} {x.shape}.")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise VsbError(f"{yp}: expected integer labels (N,), got {y.dtype} {y.shape}.")
    if len(x) != len(y):
        raise VsbError(f"animal-mnist: {xp} holds {len(x)} images but {yp} {len(y)} labels.")
    return Dataset(
        name="animal-mnist",
        x=np.ascontiguousarray(x),
        labels=y.astype(np.int64),
        class_names=list(ANIMAL_MNIST_CLASSES),
        kind="image",
        source=str(d),
        attributes=packaged_attributes("animal-mnist", list(ANIMAL_MNIST_CLASSES)),
    )


# --- Fashion-MNIST and MNIST (IDX files) ---------------------------------------------------------

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_ENV = "VSB2NET_FASHION_MNIST_DIR"
FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_HOW = (
    "apt-get install dataset-fashion-mnist (Debian/Ubuntu) or download the four IDX files from "
    "github.com/zalandoresearch/fashion-mnist into a directory and pass --data-root DIR "
    f"(or set {FASHION_MNIST_ENV}=DIR)."
)

MNIST_CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MNIST_ENV = "VSB2NET_MNIST_DIR"
MNIST_DEFAULT = "/usr/share/datasets/mnist"
MNIST_HOW = (
    "Download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; e.g. from a mirror of "
    "yann.lecun.com/exdb/mnist) into a directory and pass --data-root DIR "
    f"(or set {MNIST_ENV}=DIR)."
)


def _resolve_root(root: str | None, env: str, default: str) -> tuple[Path, str]:
    if root is not None:
        return Path(root), "--data-root"
    if os.environ.get(env):
        return Path(os.environ[env]), f"${env}"
    return Path(default), "default location"


def _idx_loader(name: str, classes: list[str], env: str, default: str, how: str):
    def probe(root: str | None = None) -> tuple[bool, str]:
        d, _ = _resolve_root(root, env, default)
        return probe_idx_split_dir(d)

    def load(root: str | None = None, **_options) -> Dataset:
        d, origin = _resolve_root(root, env, default)
        x, y, _ = load_idx_split_dir(d, dataset=f"{name} ({origin})", how_to_get=how)
        return Dataset(
            name=name, x=x, labels=y, class_names=list(classes), kind="image", source=str(d),
            attributes=packaged_attributes(name, list(classes)),
        )

    return probe, load


_fashion_probe, _fashion_load = _idx_loader(
    "fashion-mnist", FASHION_MNIST_CLASSES, FASHION_MNIST_ENV, FASHION_MNIST_DEFAULT,
    FASHION_MNIST_HOW,
)
load_fashion_mnist = register_dataset(
    "fashion-mnist",
    description="Fashion-MNIST: 70,000 28x28 clothing images (train+test), 10 classes",
    how_to_get=FASHION_MNIST_HOW,
    probe=_fashion_probe,
)(_fashion_load)

_mnist_probe, _mnist_load = _idx_loader(
    "mnist", MNIST_CLASSES, MNIST_ENV, MNIST_DEFAULT, MNIST_HOW
)
load_mnist = register_dataset(
    "mnist",
    description="MNIST: 70,000 28x28 handwritten digits (train+test), 10 classes",
    how_to_get=MNIST_HOW,
    probe=_mnist_probe,
)(_mnist_load)
