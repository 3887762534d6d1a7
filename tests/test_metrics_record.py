"""The metrics record (vsb2net.evaluation.record) says what evaluate_model returns and what a cell keeps:
its declarations must match the dictionaries themselves, and one histogram pass per row must give
the same metrics as counting twice."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_evaluation import Lookup, _toy
from vsb2net.codes import pack_codes
from vsb2net.data.splits import ZeroShotSplit
from vsb2net.errors import VsbError
from vsb2net.evaluation import retrieval as M
from vsb2net.evaluation.model_eval import evaluate_model
from vsb2net.evaluation.record import (
    SUMMARY_KEYS,
    Cell,
    CellMetrics,
    ClassCodeDistances,
    ClassQuery,
    Metrics,
    RowMetrics,
    RowSummary,
    map_at_k_keys,
    registered_keys,
    summary,
)
from vsb2net.evaluation.row_metrics import ROW_METRICS

ROOT = Path(__file__).resolve().parent.parent


def _keys(td) -> set[str]:
    return set(td.__required_keys__) | set(td.__optional_keys__)


def _declared(row: dict, td) -> None:
    """``row`` holds every required key of ``td``, and nothing but its keys, ``map@K`` and the
    registered row metrics."""
    extra = set(row) - _keys(td) - set(map_at_k_keys(row)) - set(ROW_METRICS.names())
    assert not extra, f"keys the record does not declare: {sorted(extra)}"
    assert td.__required_keys__ <= set(row), f"declared keys missing: {sorted(td.__required_keys__ - set(row))}"


@pytest.mark.parametrize("curves", [True, False])
def test_evaluate_model_returns_what_the_record_declares(curves):
    model, x, labels, split, vectors = _toy()
    m, _ = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), topk=(2, 5),
                          curves=curves)
    _declared(m, Metrics)
    for name in ("unseen", "seen"):
        row = m[name]
        _declared(row, RowMetrics)
        assert map_at_k_keys(row) == ["map@2", "map@5"]
        assert ("pr_curve" in row) == ("precision_at_k" in row) == curves
        assert ("map_unseen_db" in row) == (name == "unseen") and ("map_seen_db" in row) == (name == "seen")
        _declared(row["class_query"], ClassQuery)
        _declared(row["class_code_distances"], ClassCodeDistances)
    s = summary(m)
    _declared(s, CellMetrics)
    for name in ("unseen", "seen"):
        _declared(s[name], RowSummary)
        assert list(s[name]) == [k for k in SUMMARY_KEYS if k in m[name]] + ["map@2", "map@5", *ROW_METRICS.names()]


def test_summary_keys_are_the_order_of_the_committed_cells():
    """SUMMARY_KEYS is read off RowSummary; a cell file lists a row's keys in that order."""
    assert SUMMARY_KEYS[:3] == ("map", "map_optimistic", "map_pessimistic")
    # keys added since cells were first written come after them
    assert SUMMARY_KEYS[SUMMARY_KEYS.index("n_queries") + 1:] == (
        "map_asym", "class_query_map_asym", "map_asym_in_ties", "class_query_map_asym_in_ties")
    paths = sorted((ROOT / "benchmarks" / "results").glob("*/cells/*.json"))
    if not paths:
        pytest.skip("no committed cells")
    for path in paths:
        cell = json.loads(path.read_text())
        _declared(cell, Cell)
        for name in ("unseen", "seen"):
            row = cell[name]
            _declared(row, RowSummary)
            assert list(row) == [k for k in SUMMARY_KEYS if k in row] + map_at_k_keys(row) + registered_keys(row), path


@pytest.mark.parametrize("multi", [False, True])
def test_evaluate_reads_given_histograms_bit_for_bit(multi):
    rng = np.random.default_rng(3)
    bits, n_q, n_db = 16, 700, 900
    q = pack_codes(np.sign(rng.standard_normal((n_q, bits))))
    db = pack_codes(np.sign(rng.standard_normal((n_db, bits))))
    if multi:
        ql, dl = (rng.random((n_q, 5)) < 0.3).astype(np.uint8), (rng.random((n_db, 5)) < 0.3).astype(np.uint8)
    else:
        ql, dl = rng.integers(6, size=n_q), rng.integers(6, size=n_db)
    for chunk in (None, 128):  # several chunks: the float sums must run over the same ones
        counted = M.evaluate(q, db, ql, dl, topk=(10, 100), chunk_size=chunk)
        given = M.evaluate(q, db, ql, dl, topk=(10, 100), chunk_size=chunk,
                           histograms=M.distance_histograms(q, db, ql, dl))
        assert json.dumps(given) == json.dumps(counted)


def test_evaluate_rejects_histograms_of_other_codes():
    q = pack_codes(np.ones((3, 8)))
    n, r = M.distance_histograms(q, q, np.arange(3), np.arange(3))
    with pytest.raises(VsbError, match="distance_histograms"):
        M.evaluate(q, q, np.arange(3), np.arange(3), histograms=(n[:2], r[:2]))
    with pytest.raises(VsbError, match="pair"):
        M.evaluate(q, q, np.arange(3), np.arange(3), histograms=(n,))


def test_one_histogram_pass_per_row(monkeypatch):
    """A row counts its image queries against the whole database once: the image metrics and the
    tie group read the same histograms."""
    rng = np.random.default_rng(0)
    n, bits = 600, 16
    y = rng.integers(6, size=n)
    model = Lookup(np.sign(rng.standard_normal((n, bits))), np.sign(rng.standard_normal((6, bits))))
    idx = rng.permutation(n)
    db, queries = idx[:400], idx[400:]
    split = ZeroShotSplit(seen=[0, 1, 2, 3], unseen=[4, 5], train=db[y[db] < 4], database=db,
                          query_unseen=queries[y[queries] >= 4], query_seen=queries[y[queries] < 4])
    counts = []
    real = M._histograms
    monkeypatch.setattr(M, "_histograms", lambda q, d, *a, **k: counts.append((len(q), len(d))) or real(q, d, *a, **k))
    m, _ = evaluate_model(model, torch.arange(n, dtype=torch.float32)[:, None], y, split,
                          np.arange(6, dtype=np.float32)[:, None], list("abcdef"), torch.device("cpu"), curves=False)
    for name in ("unseen", "seen"):
        n_q = len(getattr(split, f"query_{name}"))
        assert counts.count((n_q, len(db))) == 1, name
    assert m["unseen"]["nearest_tie_group"] > 0
