"""Class relations any method may use: the LLE weights of class vectors and what a training run
knows about its classes (:class:`ClassContext`, the ``ctx`` every ``training_loss`` receives).

They live apart from any one method, so that no method imports another method's file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import hadamard


def lle_weights(vectors: np.ndarray, k: int, reg: float = 1e-3) -> np.ndarray:
    """Locally-linear-embedding weights: reconstruct each class vector from its k nearest classes.

    Row c holds w_c = argmin ||a_c - sum_j w_cj a_j||^2 s.t. sum_j w_cj = 1, over the k nearest
    (cosine) classes j != c, with Tikhonov regularisation ``reg * trace(G)`` of the local Gram
    matrix G (as in Roweis & Saul) so that k larger than the vector dimension stays solvable.
    """
    a = np.asarray(vectors, dtype=np.float64)
    c = len(a)
    if c < 2:
        return np.zeros((c, c), dtype=np.float32)
    return reconstruction_weights(a, a, max(1, min(k, c - 1)), reg, exclude_self=True)


def reconstruction_weights(queries: np.ndarray, basis: np.ndarray, k: int, reg: float = 1e-3,
                           exclude_self: bool = False) -> np.ndarray:
    """Row i: the LLE weights (sum 1) that rebuild ``queries[i]`` from its k nearest (cosine) rows
    of ``basis``; ``exclude_self`` (queries = basis) leaves each row's own vector out."""
    q, a = np.asarray(queries, dtype=np.float64), np.asarray(basis, dtype=np.float64)
    w = np.zeros((len(q), len(a)), dtype=np.float64)
    k = max(1, min(k, len(a)))
    unit_q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    unit_a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    sim = unit_q @ unit_a.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    for i in range(len(q)):
        nbrs = np.argsort(-sim[i], kind="stable")[:k]
        diff = a[nbrs] - q[i]
        gram = diff @ diff.T
        gram += np.eye(k) * (reg * np.trace(gram) if np.trace(gram) > 0 else reg)
        wi = np.linalg.solve(gram, np.ones(k))
        w[i, nbrs] = wi / wi.sum()
    return w.astype(np.float32)


@dataclass
class ClassContext:
    """What the loss needs to know about classes during one training run.

    ``vectors`` are the semantic vectors of the classes the relation and discrepancy terms span;
    the first ``n_train`` of them are the training classes, in the order of the training labels.
    """

    vectors: torch.Tensor       # (C_span, D)
    n_train: int
    lle: torch.Tensor           # (C_span, C_span)


def class_context(vectors: np.ndarray, train_classes: list[int], other_classes: list[int], span: str,
                  lle_neighbors: int, lle_reg: float, device: torch.device) -> ClassContext:
    """Training classes first (in label order), then, with ``span = "seen+unseen"``, the other
    classes' vectors (vectors only, no images: still inductive)."""
    classes = list(train_classes) + (list(other_classes) if span == "seen+unseen" else [])
    v = vectors[classes]
    return ClassContext(vectors=torch.from_numpy(v).float().to(device), n_train=len(train_classes),
                        lle=torch.from_numpy(lle_weights(v, lle_neighbors, lle_reg)).to(device))


def hash_centres(n_classes: int, bits: int, seed: int = 0) -> np.ndarray:
    """One binary target code per class, far apart (CSQ's hash centres, also DPN's and OrthoHash's
    codebook): rows of a Hadamard matrix and their negations when K is a power of two and K >= half
    the number of classes, otherwise seeded Bernoulli(0.5) vectors."""
    if bits & (bits - 1) == 0 and n_classes <= 2 * bits:
        h = hadamard(bits)
        return np.vstack([h, -h])[:n_classes].astype(np.float32)
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n_classes, bits)) < 0.5, -1.0, 1.0).astype(np.float32)
