"""The counting kernel behind the metrics (faiss hammings + ivec_hist, label slices, threads)."""
import numpy as np
import pytest

from vsb2net.codes import hamming_distances
from vsb2net.evaluation import retrieval as metrics


def _brute(q, db, ql, dl, bits):
    d = hamming_distances(q, db).astype(np.int64)
    rel = metrics.relevance_matrix(ql, dl)
    n = np.stack([np.bincount(row, minlength=bits + 1) for row in d])
    r = np.stack([np.bincount(row[m], minlength=bits + 1) for row, m in zip(d, rel)])
    return n, r


@pytest.mark.parametrize("n_bytes", [1, 2, 3, 6, 8, 16])
@pytest.mark.parametrize("threaded", [False, True])
def test_distance_counts_match_bincount(monkeypatch, n_bytes, threaded):
    if threaded:
        monkeypatch.setattr(metrics, "_PARALLEL_MIN_PAIRS", 0)
    rng = np.random.default_rng(n_bytes)
    q = rng.integers(0, 256, (11, n_bytes), dtype=np.uint8)
    db = rng.integers(0, 256, (5000, n_bytes), dtype=np.uint8)
    d = hamming_distances(q, db).astype(np.int64)
    want = np.stack([np.bincount(row, minlength=n_bytes * 8 + 1) for row in d])
    assert np.array_equal(metrics._distance_counts(q, db, n_bytes * 8), want)


@pytest.mark.parametrize("labels", ["ints", "floats", "strings"])
def test_single_label_histograms_match_brute_force(labels):
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, (40, 2), dtype=np.uint8)
    db = rng.integers(0, 256, (3000, 2), dtype=np.uint8)
    ql, dl = rng.integers(0, 9, 40), rng.integers(0, 7, 3000)  # labels 7, 8: no database item
    if labels == "floats":
        ql, dl = ql / 2.0, dl / 2.0
    elif labels == "strings":
        ql, dl = np.array([f"c{i}" for i in ql]), np.array([f"c{i}" for i in dl])
    want = _brute(q, db, ql, dl, 16)
    for chunk in (None, 7):
        n, r = metrics.distance_histograms(q, db, ql, dl, chunk_size=chunk)
        assert np.array_equal(n, want[0]) and np.array_equal(r, want[1])


def test_multi_label_histograms_match_brute_force():
    rng = np.random.default_rng(4)
    q = rng.integers(0, 256, (9, 4), dtype=np.uint8)
    db = rng.integers(0, 256, (800, 4), dtype=np.uint8)
    ql, dl = rng.integers(0, 2, (9, 5)), rng.integers(0, 2, (800, 5))
    n, r = metrics.distance_histograms(q, db, ql, dl)
    want = _brute(q, db, ql, dl, 32)
    assert np.array_equal(n, want[0]) and np.array_equal(r, want[1])
