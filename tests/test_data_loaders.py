"""IDX reading/writing, the dataset registry, the MNIST-like loaders and the restricted unpickler."""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle

import numpy as np
import pytest

from vsb2net.data import Dataset, list_datasets, load_dataset, read_idx, write_idx
from vsb2net.data.idx import load_idx_split_dir
from vsb2net.data.mnist_like import (
    ANIMAL_MNIST_CLASSES,
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_numpy_pickle,
)
from vsb2net.errors import VsbError

# --- IDX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_roundtrip(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    else:
        arr = rng.standard_normal((3, 4, 5)).astype(dtype)
    p = write_idx(tmp_path / name, arr)
    raw = p.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(p)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    assert back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 0  # writable


def test_idx_header_is_big_endian(tmp_path):
    arr = np.array([1, 258], dtype=np.int16)
    raw = write_idx(tmp_path / "x.idx", arr).read_bytes()
    assert raw == bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x00, 0x01, 0x01, 0x02])
    # a file written by hand (not by write_idx) reads back
    (tmp_path / "h.idx").write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 1, 7, 9]))
    np.testing.assert_array_equal(read_idx(tmp_path / "h.idx"), [[7], [9]])


def test_write_idx_refuses_unsupported_dtype(tmp_path):
    with pytest.raises(VsbError, match="IDX holds"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.uint16))


def _valid_idx_bytes():
    return bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 1, 2, 3])


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.idx", b"", "empty"),
        ("empty.idx.gz", b"", "empty"),
        ("magic.idx", b"\x01\x02\x08\x01\x00\x00\x00\x03abc", "magic"),
        ("code.idx", bytes([0, 0, 0x07, 1, 0, 0, 0, 3, 1, 2, 3]), "dtype code"),
        ("hdr.idx", bytes([0, 0, 0x08, 3, 0, 0, 0, 3]), "truncated"),
        ("trunc.idx", _valid_idx_bytes()[:-1], r"truncated.*needs 11 bytes.*has 10"),
        ("trail.idx", _valid_idx_bytes() + b"\x00", r"trailing.*needs 11 bytes.*has 12"),
        ("trunc.idx.gz", gzip.compress(_valid_idx_bytes()[:-2]), "truncated"),
        ("badgz.idx.gz", b"\x1f\x8b" + b"garbage that is not deflate", "gzip"),
        ("cutgz.idx.gz", gzip.compress(_valid_idx_bytes())[:-6], "gzip"),
        ("notgz.idx.gz", _valid_idx_bytes(), "not gzip"),
    ],
)
def test_malformed_idx_raises_vsberror_with_path(tmp_path, name, content, match):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(VsbError, match=match) as ei:
        read_idx(p)
    assert str(p) in str(ei.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(VsbError, match="not found"):
        read_idx(tmp_path / "nope.idx")


# --- MNIST-style directories --------------------------------------------------------------------


def _write_split_dir(d, n_train=20, n_test=10, gz=True, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    ext = ".gz" if gz else ""
    ytr = np.arange(n_train) % n_classes
    yte = np.arange(n_test) % n_classes
    xtr = rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8)
    xte = rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8)
    write_idx(d / f"train-images-idx3-ubyte{ext}", xtr)
    write_idx(d / f"train-labels-idx1-ubyte{ext}", ytr.astype(np.uint8))
    write_idx(d / f"t10k-images-idx3-ubyte{ext}", xte)
    write_idx(d / f"t10k-labels-idx1-ubyte{ext}", yte.astype(np.uint8))
    return np.concatenate([xtr, xte]), np.concatenate([ytr, yte])


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_tiny_dir(tmp_path, gz):
    x, y = _write_split_dir(tmp_path, gz=gz)
    ds = load_dataset("fashion-mnist", root=tmp_path)
    assert ds.name == "fashion-mnist"
    assert ds.x.shape == (30, 28, 28) and ds.x.dtype == np.uint8
    np.testing.assert_array_equal(ds.x, x)  # train first, then test
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.labels.dtype == np.int64
    assert ds.class_names == FASHION_MNIST_CLASSES
    assert ds.source == str(tmp_path)


def test_mnist_from_env_var(tmp_path, monkeypatch):
    _write_split_dir(tmp_path, gz=False)
    monkeypatch.setenv("VSB2NET_MNIST_DIR", str(tmp_path))
    ds = load_dataset("mnist")
    assert len(ds) == 30 and ds.class_names == MNIST_CLASSES
    ok, detail = next(i for i in list_datasets() if i.name == "mnist").probe()
    assert ok and detail == str(tmp_path)


def test_missing_directory_says_how_to_get(tmp_path):
    with pytest.raises(VsbError) as ei:
        load_dataset("fashion-mnist", root=tmp_path / "absent")
    msg = str(ei.value)
    assert str(tmp_path / "absent") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-root" in msg
    with pytest.raises(VsbError, match="--data-root DIR"):
        load_dataset("mnist", root=tmp_path / "absent")


def test_missing_files_are_named(tmp_path):
    _write_split_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(VsbError) as ei:
        load_dataset("fashion-mnist", root=tmp_path)
    msg = str(ei.value)
    assert "t10k-labels-idx1-ubyte" in msg and "train-images" not in msg.split("(expected")[0]
    assert str(tmp_path) in msg


def test_image_label_count_mismatch(tmp_path):
    _write_split_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, dtype=np.uint8))
    with pytest.raises(VsbError, match="10 images but .* 9 labels"):
        load_idx_split_dir(tmp_path)


def test_labels_out_of_range(tmp_path):
    _write_split_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(VsbError, match=r"0\.\.9"):
        load_dataset("fashion-mnist", root=tmp_path)


def test_real_fashion_mnist_if_installed():
    info = next(i for i in list_datasets() if i.name == "fashion-mnist")
    ok, detail = info.probe()
    if not ok or os.environ.get("VSB2NET_FASHION_MNIST_DIR"):
        pytest.skip(f"system Fashion-MNIST not available: {detail}")
    ds = load_dataset("fashion-mnist")
    assert ds.x.shape == (70000, 28, 28)
    assert (ds.class_counts() == 7000).all()


# --- registry -----------------------------------------------------------------------------------


def test_registry_lists_all_and_probes(tmp_path):
    infos = {i.name: i for i in list_datasets()}
    assert {"animal-mnist", "fashion-mnist", "mnist"} <= set(infos)
    for info in infos.values():
        assert info.description and info.how_to_get
    ok, detail = infos["fashion-mnist"].probe(str(tmp_path))
    assert not ok and "does not exist" not in detail and "train-images" in detail
    _write_split_dir(tmp_path)
    assert infos["fashion-mnist"].probe(str(tmp_path)) == (True, str(tmp_path))
    ok, _ = infos["mnist"].probe(str(tmp_path / "nowhere"))
    assert not ok
    assert "pip install --no-deps animal-mnist" in infos["animal-mnist"].how_to_get


def test_unknown_dataset_lists_known():
    with pytest.raises(VsbError, match="animal-mnist.*fashion-mnist.*mnist"):
        load_dataset("cifar-100000")


# --- restricted unpickler and Animal-MNIST ------------------------------------------------------


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pkl.gz"
    p.write_bytes(gzip.compress(pickle.dumps(_Evil(marker))))
    with pytest.raises(VsbError, match=r"refusing") as ei:
        load_numpy_pickle(p)
    assert "system" in str(ei.value) and str(p) in str(ei.value)
    assert not marker.exists()
    # sanity: the payload really would run code with a plain pickle.load
    pickle.loads(pickle.dumps(_Evil(marker)))
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickler_loads_numpy_arrays(tmp_path, protocol):
    arr = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    p = tmp_path / "a.pkl.gz"
    p.write_bytes(gzip.compress(pickle.dumps(arr, protocol=protocol)))
    np.testing.assert_array_equal(load_numpy_pickle(p), arr)
    p2 = tmp_path / "a.pkl"
    p2.write_bytes(pickle.dumps(arr.astype(np.uint8), protocol=protocol))
    assert load_numpy_pickle(p2).dtype == np.uint8


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "empty"),
        (b"\x1f\x8bnot really gzip", "gzip"),
        (b"\x80\x04not a pickle", "not a readable numpy pickle"),
        (pickle.dumps([1, 2, 3]), "expected a pickled numpy array"),
        (pickle.dumps(np.array(["a", None], dtype=object)), "expected a pickled numpy array"),
    ],
)
def test_unpickler_bad_files(tmp_path, content, match):
    p = tmp_path / "bad.gz"
    p.write_bytes(content)
    with pytest.raises(VsbError, match=match) as ei:
        load_numpy_pickle(p)
    assert str(p) in str(ei.value)


def test_animal_mnist_from_root_dir(tmp_path):
    x = np.random.default_rng(1).integers(0, 256, (20, 28, 28)).astype(np.uint8)
    y = np.arange(20) % 10
    (tmp_path / "animal_data_version_3.gz").write_bytes(gzip.compress(pickle.dumps(x)))
    (tmp_path / "animal_label_version_3.gz").write_bytes(gzip.compress(pickle.dumps(y)))
    ds = load_dataset("animal-mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.labels, y)
    (tmp_path / "animal_label_version_3.gz").unlink()
    with pytest.raises(VsbError, match="pip install --no-deps animal-mnist"):
        load_dataset("animal-mnist", root=tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("animal_mnist") is None,
    reason="animal_mnist package not installed (pip install --no-deps animal-mnist)",
)
def test_animal_mnist_real_package():
    ok, detail = next(i for i in list_datasets() if i.name == "animal-mnist").probe()
    assert ok, detail
    ds = load_dataset("animal-mnist")
    assert ds.x.shape == (10000, 28, 28) and ds.x.dtype == np.uint8
    assert ds.class_names == ANIMAL_MNIST_CLASSES
    assert ds.class_names[0] == "Bear" and ds.class_names[9] == "Zebra"
    assert (ds.class_counts() == 1000).all()
    # zebras are the only non-silhouette class: many mid-grey pixels (stripes), which pins label 9
    grey = ((ds.x > 40) & (ds.x < 215)).mean(axis=(1, 2))
    per_class = np.array([grey[ds.labels == c].mean() for c in range(10)])
    assert per_class.argmax() == 9


# --- Dataset validation -------------------------------------------------------------------------


def _imgs(n):
    return np.zeros((n, 4, 4), dtype=np.uint8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=_imgs(3), labels=np.array([0, 1]), class_names=["a", "b"]), "3 items but 2 labels"),
        (dict(x=_imgs(3), labels=np.array([0, 1, 2]), class_names=["a", "b"]), r"0\.\.1"),
        (dict(x=_imgs(3), labels=np.array([0, -1, 1]), class_names=["a", "b"]), r"0\.\.1"),
        (dict(x=_imgs(3), labels=np.array([0, 0, 0]), class_names=["a", "b"]), "no items: b"),
        (dict(x=_imgs(2), labels=np.array([0.0, 1.0]), class_names=["a", "b"]), "integers"),
        (dict(x=_imgs(2), labels=np.zeros((2, 2, 1), dtype=int), class_names=["a", "b"]), r"class ids \(N,\) or a 0/1"),
        (dict(x=_imgs(2), labels=np.array([[0, 2], [1, 0]]), class_names=["a", "b"]), "only 0 and 1"),
        (dict(x=_imgs(2), labels=np.array([[0, 1], [0, 0]]), class_names=["a", "b"]), "no label"),
        (dict(x=_imgs(2), labels=np.array([[0, 1, 1], [1, 0, 0]]), class_names=["a", "b"]), "3 columns"),
        (dict(x=_imgs(2), labels=np.array([[0, 1], [0, 1]]), class_names=["a", "b"]), "no items: a"),
        (dict(x=_imgs(2), labels=np.array([0, 1]), class_names=["a", "b"], attributes=np.ones((3, 2))),
         "one row per class"),
        (dict(x=_imgs(2), labels=np.array([0, 1]), class_names=["a", "b"], proposed_unseen=["c"]), "proper subset"),
        (dict(x=_imgs(2).astype(np.float32), labels=np.array([0, 1]), class_names=["a", "b"]), "uint8"),
        (dict(x=_imgs(2), labels=np.array([0, 1]), class_names=["a", "A"]), "duplicate"),
        (dict(x=_imgs(2), labels=np.array([0, 1]), class_names=["a", "b"], kind="video"), "kind"),
        (dict(x=np.zeros((2, 3, 1)), labels=np.array([0, 1]), class_names=["a", "b"], kind="features"), "features"),
        (dict(x=np.array([[0.0], [np.nan]]), labels=np.array([0, 1]), class_names=["a", "b"], kind="features"), "NaN"),
        (dict(x=_imgs(0), labels=np.zeros(0, dtype=np.int64), class_names=["a"]), "empty"),
    ],
)
def test_dataset_validation(kwargs, match):
    with pytest.raises(VsbError, match=match):
        Dataset(name="t", **kwargs)


def test_dataset_valid_features_and_counts():
    ds = Dataset("f", np.ones((3, 2), dtype=np.float64), np.array([1, 0, 1], dtype=np.int32), ["a", "b"],
                 kind="features")
    assert ds.x.dtype == np.float32 and ds.labels.dtype == np.int64
    assert ds.class_counts().tolist() == [1, 2] and ds.num_classes == 2
