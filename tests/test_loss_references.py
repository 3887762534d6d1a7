"""Each method's loss (or fitting step) against its paper's or reference implementation's formula,
written out here independently of the method's code on cases small enough to work by hand; and
the check that every method's docstring names the test that does so (so the names cannot go stale).

The other methods' reference tests live in tests/test_field_methods.py (the field's deep hashing
losses), tests/test_model.py (VSB2-Net's terms) and tests/test_baselines.py (ITQ's rotation).
"""
import ast
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from torch import nn

from vsb2net.config import ModelConfig
from vsb2net.models import METHODS, ClassContext, create_method
from vsb2net.models.feature_hashing import itq_rotation, pca_directions

T = torch.tensor
ROOT = Path(__file__).resolve().parent.parent
#: registered methods without a loss or fitting objective of their own
NO_LOSS = {"random"}


def _method(name: str, bits: int, semantic_dim: int = 2, **kw):
    return create_method(name, ModelConfig.of(name, bits=bits, feature_dim=8, **kw), (1, 28, 28), semantic_dim)


def test_csq_is_the_cross_entropy_to_the_class_centre_plus_quantisation():
    # CSQ (DeepHash-pytorch's CSQLoss): BCE((u + 1)/2, (c + 1)/2), mean over bits and items,
    # plus lambda * mean (|u| - 1)^2
    m = _method("csq", bits=4, w_q=0.5)
    m.centres = T([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    u = T([[0.5, -0.5, 0.0, 0.8]])
    m.hash_images = lambda x: u  # the network's codes, fixed
    loss, terms = m.training_loss(torch.zeros(1, 1, 28, 28), T([0]), None)
    # p = (u + 1)/2 = (.75, .25, .5, .9) against targets (1, 1, 0, 0)
    central = -(math.log(0.75) + math.log(0.25) + math.log(0.5) + math.log(0.1)) / 4
    q = (0.25 + 0.25 + 1.0 + 0.04) / 4
    assert terms["central"] == pytest.approx(central, abs=1e-6)
    assert terms["q"] == pytest.approx(q, abs=1e-6)
    assert float(loss) == pytest.approx(central + 0.5 * q, abs=1e-6)


def test_sitnet_is_a_cosine_softmax_over_the_seen_class_vectors_plus_quantisation():
    m = _method("sitnet", bits=2, alpha=2.0, w_q=0.5)
    u = T([[0.6, 0.8]])
    m.hash_images = lambda x: u
    m.to_semantic = nn.Identity()  # the code is its own semantic embedding: cosines (0.6, 0.8)
    ctx = ClassContext(T([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), 2, torch.zeros(3, 3))  # third: unseen
    loss, terms = m.training_loss(torch.zeros(1, 1, 28, 28), T([0]), ctx)
    # logits alpha * cos = (1.2, 1.6) over the two seen classes; label 0
    cls = math.log(1 + math.exp(1.6 - 1.2))
    q = ((0.6 - 1) ** 2 + (0.8 - 1) ** 2) / 2
    assert terms["cls"] == pytest.approx(cls, abs=1e-6)
    assert float(loss) == pytest.approx(cls + 0.5 * q, abs=1e-6)


def test_lsh_bits_disagree_in_proportion_to_the_angle():
    # Charikar 2002: a random hyperplane separates x and y with probability theta(x, y) / pi
    m = _method("lsh", bits=4096)
    theta = math.pi / 3
    x = np.array([[1.0, 0.0, 0.0], [math.cos(theta), math.sin(theta), 0.0]])
    bits = np.sign(x @ m.fit_projection(x, np.zeros(2), None))
    assert float(np.mean(bits[0] != bits[1])) == pytest.approx(theta / math.pi, abs=0.03)


def test_itq_rotation_is_the_procrustes_solution_for_its_codes():
    # ITQ's two steps (Gong & Lazebnik): B = sgn(V R); R = argmin ||B - V R|| over rotations, the
    # orthogonal Procrustes problem.  At the fixed point R solves it for its own codes
    rng = np.random.default_rng(0)
    v = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    v -= v.mean(0)
    r = itq_rotation(v, iterations=100)
    want, _ = orthogonal_procrustes(v, np.where(v @ r >= 0, 1.0, -1.0))
    assert np.allclose(r, want, atol=1e-8)
    # its PCA step: the span of the top-k eigenvectors of V^T V
    _, vecs = np.linalg.eigh(v.T @ v)
    top = vecs[:, -2:]
    p = pca_directions(v, 2)
    assert np.allclose(p @ p.T, top @ top.T, atol=1e-8)


def test_tsk_aligns_features_to_the_label_vectors_by_ridge_regression():
    # the alignment min_W ||X W - T||^2 + lam ||W||^2 (lam = ridge * n / d), solved here as the
    # least-squares problem [X; sqrt(lam) I] W = [T; 0]
    m = _method("tsk", bits=2, semantic_dim=3)
    d = m.backbone.out_dim
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.normal(size=(30, d)) + np.eye(3, d)[y] * 2
    x -= x.mean(0)
    vectors = T([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [1.0, 1.0, 0.0]])
    m.fit_projection(x, y, ClassContext(vectors, 3, torch.zeros(3, 3)))
    lam = m.ridge * len(x) / d
    a = np.vstack([x, math.sqrt(lam) * np.eye(d)])
    b = np.vstack([vectors.double().numpy()[y], np.zeros((d, 3))])
    want, *_ = np.linalg.lstsq(a, b, rcond=None)
    assert np.allclose(m.to_semantic.double().numpy(), want, atol=1e-5)


# ----------------------------------------------------------------------------- the docstrings

REFERENCE = re.compile(r"Reference checked by (.*?): ", re.S)
TEST = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def _test_functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_every_method_names_the_reference_its_loss_test_checks(name):
    """Each method's module docstring has a paragraph "Reference checked by tests/F.py::T: <paper,
    section>; reference implementation: <repository and file, or none found>", and F and T exist."""
    cls = METHODS.get(name)
    doc = " ".join((inspect.getmodule(cls).__doc__ or "").split())
    if name in NO_LOSS:
        assert not cls.trainable and "Reference checked by" not in doc
        return
    found = REFERENCE.search(doc)
    assert found, f"{name}: its module docstring names no 'Reference checked by tests/...::...' paragraph"
    tests = TEST.findall(found.group(1))
    assert tests, f"{name}: 'Reference checked by' names no tests/FILE.py::TEST"
    for file, func in tests:
        assert (ROOT / file).is_file(), f"{name}: {file} does not exist"
        assert func in _test_functions(ROOT / file), f"{name}: {file} has no test {func}"
    assert "reference implementation" in doc[found.end():], f"{name}: the paragraph names no reference implementation"
