"""HammingIndex over the faiss backends, checked against brute force (codes.hamming_distances)."""
import json
import struct

import numpy as np
import pytest

from vsb2net.codes import hamming_distances
from vsb2net.errors import VsbError
from vsb2net.index import HammingIndex, backend_names
from vsb2net.index.backend import get_backend
from vsb2net.index.file_format import MAGIC

BITS = 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    # 300 distinct codes repeated: plenty of ties at every distance, as real hash codes have.
    base = rng.integers(0, 256, (300, BITS // 8), dtype=np.uint8)
    db = base[rng.integers(0, len(base), 3000)]
    q = np.concatenate([db[:3], rng.integers(0, 256, (5, BITS // 8), dtype=np.uint8)])
    return q, db, hamming_distances(q, db).astype(np.int64)


def _by_distance_then_position(d_row: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(d_row)), d_row))


def _build(db, backend, **params):
    index = HammingIndex(BITS, backend, **params)
    index.add(db[:1000], ids=np.arange(1000) * 10, metadata=[{"i": i} for i in range(1000)])
    index.add(db[1000:], ids=np.arange(1000, len(db)) * 10, metadata=[{"i": i} for i in range(1000, len(db))])
    return index


# every registered backend with the parameters it declares exact (tests/test_milvus.py: Milvus Lite)
EXACT = [(name, get_backend(name).exact_params(BITS)) for name in backend_names()
         if get_backend(name).exact_params(BITS) is not None]


def test_backends_registered():
    assert {"faiss-flat", "faiss-ivf", "faiss-mih", "milvus"} <= set(backend_names())


@pytest.mark.parametrize("backend,params", EXACT)
def test_search_matches_brute_force(data, backend, params):
    q, db, dist = data
    index = _build(db, backend, **params)
    assert len(index) == len(db)
    for k in (1, 7, 100):
        for i, hits in enumerate(index.search(q, k)):
            want = np.sort(dist[i])[:k]
            assert np.array_equal(hits.distances, want)
            assert np.array_equal(dist[i][hits.positions], hits.distances)
            assert np.array_equal(hits.ids, hits.positions * 10)
            assert [m["i"] for m in hits.metadata] == hits.positions.tolist()
            # ties come out in position order whatever the backend's own order
            assert np.all(np.diff(hits.distances) >= 0)
            same = np.diff(hits.distances) == 0
            assert np.all(np.diff(hits.positions)[same] > 0)
            # below the cut-off distance the set is forced
            cut = hits.distances[-1]
            assert set(hits.positions[hits.distances < cut]) == set(np.flatnonzero(dist[i] < cut))


def test_flat_top_k_is_exactly_first_by_distance_then_position(data):
    q, db, dist = data
    index = _build(db, "faiss-flat")
    for k in (1, 5, 50, 500):
        for i, hits in enumerate(index.search(q, k)):
            assert np.array_equal(hits.positions, _by_distance_then_position(dist[i])[:k])


@pytest.mark.parametrize("backend,params", EXACT + [("faiss-mih", {"nflip": 0})])
def test_range_search_is_inclusive_and_exact(data, backend, params):
    q, db, dist = data
    index = _build(db, backend, **params)
    for radius in (0, 3, 9):
        for i, hits in enumerate(index.range_search(q, radius)):
            want = np.flatnonzero(dist[i] <= radius)
            assert np.array_equal(hits.positions, want[np.lexsort((want, dist[i][want]))])
            assert np.all(hits.distances <= radius)
    limited = index.range_search(q[:1], 9, k=4)[0]
    assert np.array_equal(limited.positions, index.range_search(q[:1], 9)[0].positions[:4])


def test_ivf_with_few_probes_is_approximate_but_consistent(data):
    q, db, dist = data
    index = _build(db, "faiss-ivf", nlist=16, nprobe=1)
    first = index.search(q, 20)
    again = index.search(q, 20)
    for a, b in zip(first, again):
        assert np.array_equal(a.positions, b.positions)
    recall = np.mean([len(set(h.positions) & set(_by_distance_then_position(dist[i])[:20])) / 20
                      for i, h in enumerate(first)])
    assert 0 < recall <= 1


@pytest.mark.parametrize("backend,params", EXACT)
def test_save_load_roundtrip(tmp_path, data, backend, params):
    q, db, _ = data
    index = _build(db, backend, **params)
    index.model = {"fingerprint": "abc123", "run": "r"}
    index.info = {"source": {"kind": "codes"}}
    path = index.save(tmp_path / "db.vsbidx")
    assert not list(tmp_path.glob(".*.tmp"))
    loaded = HammingIndex.load(path, bits=BITS, model="abc123")
    assert loaded.backend_name == backend and len(loaded) == len(db) and loaded.info == index.info
    for a, b in zip(index.search(q, 30), loaded.search(q, 30)):
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.distances, b.distances)
        assert a.metadata == b.metadata
    for a, b in zip(index.range_search(q, 5), loaded.range_search(q, 5)):
        assert np.array_equal(a.ids, b.ids)
    loaded.add(db[:2], ids=[-1, -2])
    assert loaded.search(db[:1], 1)[0].distances[0] == 0


def test_search_params_apply_after_load(tmp_path, data):
    _, db, _ = data
    path = _build(db, "faiss-ivf", nlist=16, nprobe=2).save(tmp_path / "ivf.vsbidx")
    assert HammingIndex.load(path).backend._index.nprobe == 2
    assert HammingIndex.load(path, nprobe=16).backend._index.nprobe == 16


def test_empty_index_and_k_larger_than_index(data):
    q, db, _ = data
    index = HammingIndex(BITS)
    assert [len(h) for h in index.search(q, 5)] == [0] * len(q)
    assert [len(h) for h in index.range_search(q, 3)] == [0] * len(q)
    index.add(db[:4])
    hits = index.search(q[:1], 10)[0]
    assert len(hits) == 4
    assert list(zip(hits.distances, hits.ids)) == sorted(zip(hits.distances, hits.ids))


@pytest.mark.parametrize("call,needle", [
    (lambda ix, db: ix.add(db[:, :2]), "16 bits"),
    (lambda ix, db: ix.add(db.astype(np.int64)), "uint8"),
    (lambda ix, db: ix.add(db[:3], ids=[1, 1, 2]), "duplicate"),
    (lambda ix, db: ix.add(db[:3], ids=[1, 2]), "ids for 3 codes"),
    (lambda ix, db: ix.add(db[:3], metadata=[{}]), "metadata"),
    (lambda ix, db: ix.search(db[:1, :2], 3), "query codes"),
])
def test_bad_input_raises_vsb_error(data, call, needle):
    _, db, _ = data
    index = HammingIndex(BITS)
    with pytest.raises(VsbError, match=needle):
        call(index, db)


def test_bad_backend_and_params():
    with pytest.raises(VsbError, match="unknown index backend"):
        HammingIndex(BITS, "annoy")
    with pytest.raises(VsbError, match="nlist"):
        HammingIndex(BITS, "faiss-ivf", nlist=0)
    with pytest.raises(VsbError, match="no parameters"):
        HammingIndex(BITS, "faiss-flat", nprobe=3)
    index = HammingIndex(BITS, "faiss-ivf", nlist=50)
    with pytest.raises(VsbError, match="at least 50 codes"):
        index.add(np.zeros((10, BITS // 8), np.uint8))


# ----------------------------------------------------------------------------- file checks

@pytest.fixture
def saved(tmp_path, data):
    _, db, _ = data
    index = _build(db, "faiss-flat")
    index.model = {"fingerprint": "f00d", "run": "runs/a"}
    return index.save(tmp_path / "db.vsbidx")


@pytest.fixture
def no_faiss_load(monkeypatch):
    """Fail the test if a payload reaches faiss's deserialiser."""
    import faiss

    def boom(*_a, **_k):
        raise AssertionError("a damaged or mismatched file reached faiss.deserialize_index_binary")

    monkeypatch.setattr(faiss, "deserialize_index_binary", boom)


def _rewrite_header(path, change):
    raw = path.read_bytes()
    (n,) = struct.unpack("<I", raw[8:12])
    header = json.loads(raw[12:12 + n])
    change(header)
    head = json.dumps(header).encode()
    path.write_bytes(raw[:8] + struct.pack("<I", len(head)) + head + raw[12 + n:])


def test_other_bits_refused(saved, no_faiss_load):
    with pytest.raises(VsbError, match="32-bit codes but the run codes queries with 64 bits"):
        HammingIndex.load(saved, bits=64)


def test_other_model_refused(saved, no_faiss_load):
    with pytest.raises(VsbError, match="another model.*runs/a.*f00d"):
        HammingIndex.load(saved, bits=BITS, model="beef")


def test_wrong_magic_refused(saved, no_faiss_load):
    saved.write_bytes(b"PK\x03\x04" + saved.read_bytes()[4:])
    with pytest.raises(VsbError, match="not a vsb2net index"):
        HammingIndex.load(saved)


@pytest.mark.parametrize("keep", [5, 10, 40, -1, -100])
def test_truncated_refused(saved, no_faiss_load, keep):
    raw = saved.read_bytes()
    saved.write_bytes(raw[:keep])
    with pytest.raises(VsbError, match="truncated|not a vsb2net index"):
        HammingIndex.load(saved)


def test_corrupt_payload_refused(saved, no_faiss_load):
    raw = bytearray(saved.read_bytes())
    raw[-7] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(VsbError, match="corrupt.*payload"):
        HammingIndex.load(saved)


def test_corrupt_ids_refused(saved, no_faiss_load):
    raw = bytearray(saved.read_bytes())
    (n,) = struct.unpack("<I", raw[8:12])
    raw[12 + n + 3] ^= 0x01
    saved.write_bytes(bytes(raw))
    with pytest.raises(VsbError, match="corrupt.*ids"):
        HammingIndex.load(saved)


@pytest.mark.parametrize("change,needle", [
    (lambda h: h.update(version=99), "version 99"),
    (lambda h: h.update(format="other"), "not a vsb2net index"),
    (lambda h: h.update(bits=12), "damaged"),
    (lambda h: h.update(count=5), "damaged"),
    (lambda h: h.pop("sections"), "damaged"),
    (lambda h: h.update(backend="annoy"), "annoy"),
])
def test_bad_header_refused(saved, no_faiss_load, change, needle):
    _rewrite_header(saved, change)
    with pytest.raises(VsbError, match=needle):
        HammingIndex.load(saved)


def test_garbage_header_refused(saved, no_faiss_load):
    raw = saved.read_bytes()
    saved.write_bytes(MAGIC + struct.pack("<I", 4) + b"\xff\xfe{x" + raw[12:])
    with pytest.raises(VsbError, match="not valid JSON"):
        HammingIndex.load(saved)


def test_missing_file_refused(tmp_path):
    with pytest.raises(VsbError, match="does not exist.*index build"):
        HammingIndex.load(tmp_path / "nope.vsbidx")


def test_file_has_no_pickle(saved):
    raw = saved.read_bytes()
    assert raw.startswith(MAGIC) and b"\x80\x04\x95" not in raw  # pickle protocol 4 opcode prefix


# ----------------------------------------------------------------------------- asymmetric search, tie groups

def _asymmetric_reference(db, ids_order_pos, u, d_row):
    """Brute force: (distance, -score, position) over the whole database, in float64."""
    b = np.unpackbits(db, axis=1).astype(np.float64) * 2 - 1
    score = b @ u.astype(np.float64)
    return np.lexsort((ids_order_pos, -score, d_row)), score


@pytest.mark.parametrize("backend,params", EXACT + [("faiss-mih", {"nflip": 0})])
def test_asymmetric_search_orders_each_distance_by_score(data, backend, params):
    from vsb2net.codes import pack_codes

    _, db, _ = data
    # many exact duplicates: ties at every distance, some across the k-th hit
    db = np.concatenate([db, db[:200], db[:100]])
    rng = np.random.default_rng(3)
    u = rng.normal(size=(12, BITS)).astype(np.float32)
    q = pack_codes(u)
    index = _build(db, backend, **params)
    d = hamming_distances(q, db)
    pos = np.arange(len(db))
    radius = 12
    searches = [("range", index.range_search(q, radius, k=25, real=u))]
    if backend != "faiss-mih":  # its k-NN search is approximate
        searches.append(("knn", index.search(q, 25, real=u)))
    for kind, results in searches:
        for i, hits in enumerate(results):
            ref, score = _asymmetric_reference(db, pos, u[i], d[i])
            if kind == "range":
                ref = ref[d[i][ref] <= radius]
            ref = ref[:25]
            assert np.array_equal(hits.distances, d[i][ref])
            np.testing.assert_allclose(hits.scores, score[hits.positions], rtol=1e-5, atol=1e-4)
            # the order is (distance, score descending); equal scores may be swapped by float rounding
            np.testing.assert_allclose(score[hits.positions], score[ref], rtol=1e-5, atol=1e-4)
            # every distance shown is counted over the whole index
            for dist in set(hits.distances.tolist()):
                assert hits.groups[dist] == int((d[i] == dist).sum()), (kind, dist)
            assert hits.groups_exact


def test_tie_groups_without_scores_and_their_cap():
    rng = np.random.default_rng(4)
    other = rng.integers(0, 256, (49, BITS // 8), dtype=np.uint8)
    other[:, 0] |= 1  # none equal to the zero code
    db = np.concatenate([np.zeros((500, BITS // 8), np.uint8), other])  # 500 copies of one code
    index = HammingIndex(BITS, "flat")
    index.add(db)
    hits = index.search(db[:1], 3, ties=True)[0]
    assert hits.groups == {0: 500} and hits.groups_exact and set(hits.distances.tolist()) == {0}
    # nothing tells the 500 apart: the 3 shown are a fixed sample spread over the group, not the
    # first 3 stored (which let the class stored first fill the list)
    assert hits.positions.tolist() == index.search(db[:1], 3, ties=True)[0].positions.tolist()
    assert hits.positions.max() - hits.positions.min() > 100
    assert hits.tie_groups() == [{"distance": 0, "count": 500, "shown": 3, "exact": True}]
    capped = index.search(db[:1], 3, ties=True, max_ties=100)[0]
    assert capped.groups == {0: 103} and not capped.groups_exact
    assert capped.tie_groups()[0]["exact"] is False
    assert index.search(db[:1], 3)[0].groups is None  # a plain search counts nothing
    assert index.search(db[:1], 3)[0].tie_groups() == [{"distance": 0, "count": 3, "shown": 3, "exact": False}]


def test_real_valued_queries_are_checked(data):
    _, db, _ = data
    index = _build(db, "flat")
    with pytest.raises(VsbError, match="one row of 32 values"):
        index.search(db[:2], 3, real=np.zeros((2, 16)))
    with pytest.raises(VsbError, match="NaN"):
        index.search(db[:1], 3, real=np.full((1, BITS), np.nan))


def test_tie_search_where_an_approximate_backend_finds_nothing(data, monkeypatch):
    """An approximate backend (faiss-ivf probing few lists) can find nothing for a query: that
    query gets an empty Hits, the others theirs."""
    _, db, _ = data
    index = _build(db, "flat")
    found = index.backend.search

    def half_empty(q, k):
        dist, pos = found(q, k)
        pos[::2], dist[::2] = -1, -1  # every other query: nothing found
        return dist, pos

    monkeypatch.setattr(index.backend, "search", half_empty)
    q = db[:4]
    for hits in (index.search(q, 5, ties=True), index.search(q, 5, real=np.ones((4, BITS)))):
        assert [len(h) for h in hits] == [0, 5, 0, 5]
        assert hits[0].groups == {} and hits[1].groups[0] >= 1
