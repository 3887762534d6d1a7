"""The order search serves, defined once: Hamming distance, then score, then a fixed shuffle of true ties.

``HammingIndex.search(..., real=u)`` / ``ties=True`` (what ``vsb2net search`` and ``serve`` use)
rank their candidates with :func:`served_order`, and the evaluation
(``metrics.asymmetric_average_precision(within_hamming=True)``) ranks the whole database with the
same function, so what is measured is what is served.

1. Hamming distance to the query's code, smallest first.
2. With a real-valued query code u (the model's output before the sign): the score b.u, largest
   first (:func:`asymmetric_scores`).
3. Items that nothing above tells apart (identical codes; any two items at one distance from a code
   query) in a fixed shuffled order of their positions (:func:`shuffle_key`), not by position: a
   list cut inside a tie group is then a fair sample of the group, where position order let the
   class stored first fill it.

The tie-aware metrics take the expectation over every order of a tie group, so step 3 never moves a
metric; it fixes which items a cut list shows.  The evaluation computes the scores of step 2 with
one BLAS product rounded to 9 significant digits (identical codes then tie, as here); the index sums
them from per-byte tables (bit-identical for identical codes).  The two agree item for item
(tests/test_metrics.py); the metric keeps BLAS because it is several times faster and its committed
figures were computed that way.

This module sits on the lowest floor (numpy only) so that both the evaluation and ``index/`` can call it.
"""
from __future__ import annotations

import numpy as np

#: the distance of an empty result slot: sorts after every real distance
EMPTY = np.iinfo(np.int32).max


def shuffle_key(positions: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per position (a bijection of 32-bit values: Fibonacci hashing)."""
    return (np.asarray(positions).astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)


def served_order(distances: np.ndarray, positions: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """Indices that sort each row of (distances, positions[, scores]) into the served order, along the
    last axis: distance ascending, then score descending (when given), then :func:`shuffle_key`."""
    keys = [shuffle_key(positions)]
    if scores is not None:
        keys.append(-np.asarray(scores))
    return np.lexsort((*keys, distances), axis=-1)


def asymmetric_scores(codes: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """b.u for each packed code b (as +-1) and a real-valued query code u, float64 (len(codes),):
    ``u`` one code (bits,), or one per query (Q, bits) with ``rows`` naming each code's query.

    Summed from one table per byte (256 partial sums of u's 8 components), so identical codes get
    bit-identical scores whatever their place in the array: ties stay ties."""
    nbytes = codes.shape[1]
    signs = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64) * 2 - 1  # (256, 8)
    u = np.asarray(u, np.float64)
    if rows is None:
        table = u.reshape(nbytes, 8) @ signs.T  # (nbytes, 256)
        return table[np.arange(nbytes), codes].sum(axis=1)
    tables = u.reshape(len(u), nbytes, 8) @ signs.T  # (Q, nbytes, 256)
    return tables[rows[:, None], np.arange(nbytes)[None, :], codes].sum(axis=1)
