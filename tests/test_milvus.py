"""The milvus backend against embedded Milvus Lite (the `milvus` extra), checked by brute force."""

import numpy as np
import pytest

from conftest import milvus_lite_or_skip
from vsb2net.codes import hamming_distances
from vsb2net.errors import VsbError
from vsb2net.index import HammingIndex

milvus_lite_or_skip(module_level=True)

BITS = 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (200, BITS // 8), dtype=np.uint8)
    db = base[rng.integers(0, len(base), 1500)]
    q = np.concatenate([db[:2], rng.integers(0, 256, (3, BITS // 8), dtype=np.uint8)])
    return q, db, hamming_distances(q, db).astype(np.int64)


def _check_exact(index, q, dist):
    for i, hits in enumerate(index.search(q, 25)):
        assert np.array_equal(hits.distances, np.sort(dist[i])[:25])
        assert np.array_equal(dist[i][hits.positions], hits.distances)
        keys = list(zip(hits.distances, hits.positions))
        assert keys == sorted(keys)
    for i, hits in enumerate(index.range_search(q, 9)):
        assert set(hits.positions) == set(np.flatnonzero(dist[i] <= 9))
        assert np.all(np.diff(hits.distances) >= 0)


def test_bin_flat_search_save_load(tmp_path, data):
    q, db, dist = data
    uri = str(tmp_path / "lite.db")
    index = HammingIndex(BITS, "milvus", uri=uri, collection="codes", model={"fingerprint": "ab"})
    index.add(db[:700], ids=np.arange(700) + 5000, metadata=[{"i": i} for i in range(700)])
    index.add(db[700:], ids=np.arange(700, len(db)) + 5000, metadata=[{"i": i} for i in range(700, len(db))])
    _check_exact(index, q, dist)
    hits = index.search(q[:1], 3)[0]
    assert np.array_equal(hits.ids, hits.positions + 5000) and hits.metadata[0]["i"] == hits.positions[0]
    path = index.save(tmp_path / "m.vsbidx")
    index.close()

    loaded = HammingIndex.load(path, bits=BITS, model="ab")
    assert len(loaded) == len(db) and loaded.backend.params["uri"] == uri
    _check_exact(loaded, q, dist)
    loaded.close()

    with pytest.raises(VsbError, match="already has a collection"):
        HammingIndex(BITS, "milvus", uri=uri, collection="codes")
    # rebuilding under the same name with fewer codes: the old index file no longer fits
    fresh = HammingIndex(BITS, "milvus", uri=uri, collection="codes", overwrite=True)
    fresh.add(db[:10])
    fresh.close()
    with pytest.raises(VsbError, match="holds 10 codes but the index file lists 1500"):
        HammingIndex.load(path)


def test_bin_ivf_flat_needs_a_server(tmp_path):
    # Milvus Lite builds BIN_FLAT only; BIN_IVF_FLAT is for servers (not reachable from the tests).
    with pytest.raises(VsbError, match="supports only the BIN_FLAT index"):
        HammingIndex(BITS, "milvus", uri=str(tmp_path / "ivf.db"), index_type="BIN_IVF_FLAT")


def test_bad_parameters():
    with pytest.raises(VsbError, match="needs a uri"):
        HammingIndex(BITS, "milvus")
    with pytest.raises(VsbError, match="index_type"):
        HammingIndex(BITS, "milvus", uri="x.db", index_type="HNSW")
    with pytest.raises(VsbError, match="collection name"):
        HammingIndex(BITS, "milvus", uri="x.db", collection="no spaces")
