"""The default backend's k-NN kernel (vsb2net/index/_hamming.c): the same distances as faiss
IndexBinaryFlat, and exactly the k first items by (distance, position), on random and on
adversarial (all tied) codes, for every code width; its numpy fallback gives the same."""
import numpy as np
import pytest

from vsb2net.codes import hamming_distances, pad_codes
from vsb2net.index import HammingIndex
from vsb2net.index import scan_backend as scan


def _reference(q: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = hamming_distances(q, db)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def test_the_kernel_is_built():
    assert scan.kernel() is not None, "make install builds src/vsb2net/_hamming.c"


@pytest.mark.parametrize("bits", [8, 16, 32, 48, 64, 128])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_knn_is_the_first_k_by_distance_then_position(bits, k):
    rng = np.random.default_rng(bits * 1000 + k)
    db = rng.integers(0, 256, (3000, bits // 8), dtype=np.uint8)
    q = np.concatenate([rng.integers(0, 256, (37, bits // 8), dtype=np.uint8), db[[5, 2999]]])
    dist, pos = scan.knn(pad_codes(q), pad_codes(db), k)
    want_d, want_p = _reference(q, db, k)
    np.testing.assert_array_equal(dist, want_d)
    np.testing.assert_array_equal(pos, want_p)


def test_all_tied_codes_keep_the_first_added():
    db = np.full((5000, 8), 0b10101010, np.uint8)
    q = np.zeros((3, 8), np.uint8)
    dist, pos = scan.knn(pad_codes(q), pad_codes(db), 100)
    assert (dist == 32).all() and (pos == np.arange(100)).all()
    # two distances, the nearer ones stored last: they still come first, then the earliest of the rest
    db[-10:] = 0
    dist, pos = scan.knn(pad_codes(q), pad_codes(db), 20)
    assert (dist[:, :10] == 0).all() and (pos[:, :10] == np.arange(4990, 5000)).all()
    assert (pos[:, 10:] == np.arange(10)).all()


def test_more_neighbours_than_codes_are_marked_empty():
    db = np.arange(12, dtype=np.uint8).reshape(3, 4)
    dist, pos = scan.knn(pad_codes(db[:1]), pad_codes(db), 5)
    assert (pos[0, 3:] == -1).all() and (dist[0, 3:] == -1).all() and sorted(pos[0, :3]) == [0, 1, 2]


def test_the_numpy_fallback_gives_the_same(monkeypatch):
    rng = np.random.default_rng(3)
    db = rng.integers(0, 4, (2000, 8), dtype=np.uint8)  # few distinct bits: many ties
    q = rng.integers(0, 4, (20, 8), dtype=np.uint8)
    fast = scan.knn(q, db, 50)
    monkeypatch.setattr(scan, "kernel", lambda: None)
    slow = scan.knn(q, db, 50)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


@pytest.mark.parametrize("bits", [32, 64])
def test_same_distances_as_faiss_flat(bits):
    rng = np.random.default_rng(bits)
    db = rng.integers(0, 256, (20000, bits // 8), dtype=np.uint8)
    q = rng.integers(0, 256, (50, bits // 8), dtype=np.uint8)
    ours, ref = HammingIndex(bits, "flat"), HammingIndex(bits, "faiss-flat")
    for index in (ours, ref):
        index.add(db)
    for a, b in zip(ours.search(q, 100), ref.search(q, 100), strict=True):
        np.testing.assert_array_equal(a.distances, b.distances)
    # tied (all equal) codes: the same ids too, since both keep the first added
    tied = np.zeros((500, bits // 8), np.uint8)
    ours, ref = HammingIndex(bits, "flat"), HammingIndex(bits, "faiss-flat")
    for index in (ours, ref):
        index.add(tied)
    for a, b in zip(ours.search(q[:5], 10), ref.search(q[:5], 10), strict=True):
        np.testing.assert_array_equal(a.ids, b.ids)


def test_the_portable_path_gives_the_same_as_the_vector_one(tmp_path):
    """VSB2NET_SCALAR_SCAN=1 makes the kernel skip its AVX-512 path (read once per process, so in a
    child process); both paths must give identical results."""
    import subprocess
    import sys

    rng = np.random.default_rng(7)
    for bits in (32, 64):
        np.save(tmp_path / f"db{bits}.npy", rng.integers(0, 256, (5000, bits // 8), dtype=np.uint8))
    code = (
        "import sys, numpy as np\n"
        "from vsb2net.codes import pad_codes\n"
        "from vsb2net.index.scan_backend import knn\n"
        "out = []\n"
        "for bits in (32, 64):\n"
        f"    db = np.load(r'{tmp_path}' + f'/db{{bits}}.npy')\n"
        "    d, p = knn(pad_codes(db[:40]), pad_codes(db), 64)\n"
        "    out.append(np.concatenate([d.ravel(), p.ravel()]))\n"
        "np.save(sys.argv[1], np.concatenate(out))\n")
    results = []
    for scalar in ("0", "1"):
        path = tmp_path / f"out{scalar}.npy"
        env = {**__import__("os").environ, "VSB2NET_SCALAR_SCAN": scalar}
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)
        results.append(np.load(path))
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("bits", [8, 16, 32, 48, 64, 128])
def test_distance_histograms_of_the_kernel_are_faiss_and_numpy_counts(bits, monkeypatch):
    from vsb2net.evaluation import retrieval as metrics

    rng = np.random.default_rng(bits)
    db = rng.integers(0, 256, (4099, bits // 8), dtype=np.uint8)
    q = rng.integers(0, 256, (21, bits // 8), dtype=np.uint8)
    want = np.stack([np.bincount(row, minlength=bits + 1) for row in hamming_distances(q, db)])
    np.testing.assert_array_equal(metrics._distance_counts(q, db, bits), want)
    monkeypatch.setattr(metrics, "kernel", lambda: None)  # the faiss path
    np.testing.assert_array_equal(metrics._distance_counts(q, db, bits), want)
