"""Tests for vsb2net.evaluation.retrieval against brute-force references.

The tie-aware metrics are defined as means over all orders of tied items, so the reference
enumerates every such order (itertools.permutations inside each tie group, product across
groups) and evaluates each ranked list with a plain loop.  Cases are kept small enough for that.
"""
import itertools
import json
import math
from fractions import Fraction

import numpy as np
import pytest

from vsb2net.codes import pack_codes
from vsb2net.errors import VsbError
from vsb2net.evaluation import retrieval as M

MAX_ORDERS = 2000


# ----------------------------------------------------------------------------- references

def ap_full(seq):
    """AP of a ranked 0/1 relevance list over the whole list; 0 when nothing is relevant."""
    hits, total = 0, 0.0
    for i, rel in enumerate(seq, 1):
        if rel:
            hits += 1
            total += hits / i
    return total / hits if hits else 0.0


def ap_at_k(seq, k):
    """AP over the top k, divided by the number of relevant items in the top k."""
    return ap_full(seq[:k])


def precision_at_k(seq, k):
    k = min(k, len(seq))
    return sum(seq[:k]) / k


def all_orders(dist, rel):
    """Every ranked relevance list consistent with ascending distance (all tie permutations)."""
    groups = [[int(rel[i]) for i in np.flatnonzero(dist == d)] for d in np.unique(dist)]
    for combo in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield [x for g in combo for x in g]


def n_orders(dist):
    return math.prod(math.factorial(int(c)) for c in np.unique(dist, return_counts=True)[1])


def brute(dist, rel, ks):
    """Mean / max / min over all tie orders of AP, and means of AP@k and P@k."""
    aps, apk, pk = [], {k: [] for k in ks}, {k: [] for k in ks}
    for seq in all_orders(dist, rel):
        aps.append(ap_full(seq))
        for k in ks:
            apk[k].append(ap_at_k(seq, k))
            pk[k].append(precision_at_k(seq, k))
    return {
        "ap": np.mean(aps), "ap_max": max(aps), "ap_min": min(aps),
        "ap@k": {k: np.mean(v) for k, v in apk.items()},
        "p@k": {k: np.mean(v) for k, v in pk.items()},
    }


def hists(dist, rel, n_bins):
    n = np.bincount(dist, minlength=n_bins)
    r = np.bincount(dist, weights=np.asarray(rel, dtype=float), minlength=n_bins).astype(np.int64)
    return n, r


def random_case(rng, max_n=7, n_bins=6):
    """A small ranking with many ties (few distinct distances, gaps allowed)."""
    while True:
        n_items = int(rng.integers(1, max_n + 1))
        values = rng.choice(n_bins, size=int(rng.integers(1, 4)), replace=False)
        dist = rng.choice(values, size=n_items)
        rel = (rng.random(n_items) < rng.uniform(0.1, 0.9)).astype(int)
        if n_orders(dist) <= MAX_ORDERS:
            return dist, rel


def codes_at_distance(dists, bits=8, rng=None):
    """Packed codes whose Hamming distance to the all-zero code is ``dists``."""
    rng = rng or np.random.default_rng(0)
    x = -np.ones((len(dists), bits))
    for row, d in enumerate(dists):
        x[row, rng.choice(bits, size=int(d), replace=False)] = 1.0
    return pack_codes(x)


def expected_ap_all_tied(n, r):
    """Closed form of E[AP] when all n items tie, r >= 1 relevant, as an exact Fraction."""
    h_n = sum(Fraction(1, i) for i in range(1, n + 1))
    if n == 1:
        return Fraction(1)
    return Fraction(r - 1, n - 1) + Fraction(n - r, n * (n - 1)) * h_n


# ----------------------------------------------------------------------------- per-query functions

def test_per_query_metrics_equal_mean_over_all_tie_orders():
    """AP, AP@K, P@K equal the mean over all tie orders; opt/pess equal the best/worst order."""
    rng = np.random.default_rng(0)
    n_checked = 0
    for _ in range(120):
        dist, rel = random_case(rng)
        n, r = hists(dist, rel, 6)
        ks = list(range(1, len(dist) + 3))
        ref = brute(dist, rel, ks)
        ap = M.average_precision_tie_aware(n, r)
        opt = M.average_precision_optimistic(n, r)
        pes = M.average_precision_pessimistic(n, r)
        assert np.isclose(ap, ref["ap"])
        assert np.isclose(opt, ref["ap_max"])
        assert np.isclose(pes, ref["ap_min"])
        assert pes - 1e-12 <= ap <= opt + 1e-12
        for k in ks:
            assert np.isclose(M.average_precision_at_k_tie_aware(n, r, k), ref["ap@k"][k]), (dist, rel, k)
        assert np.allclose(M.precision_at_k_tie_aware(n, r, ks), [ref["p@k"][k] for k in ks])
        n_checked += len(ks)
    assert n_checked > 300


def test_optimistic_and_pessimistic_are_relevant_first_and_last():
    """The bounds equal AP of the orders that put relevant items first / last within each tie."""
    rng = np.random.default_rng(1)
    for _ in range(50):
        n_items = int(rng.integers(1, 300))
        dist = rng.integers(0, 9, size=n_items)
        rel = rng.random(n_items) < 0.3
        n, r = hists(dist, rel, 9)
        first = rel[np.lexsort((~rel, dist))]
        last = rel[np.lexsort((rel, dist))]
        assert np.isclose(M.average_precision_optimistic(n, r), ap_full(list(first)))
        assert np.isclose(M.average_precision_pessimistic(n, r), ap_full(list(last)))


def test_no_ties_match_stable_argsort_reference():
    """With distinct distances every metric equals the plain argsort-ranked value."""
    rng = np.random.default_rng(2)
    for _ in range(40):
        n_items = int(rng.integers(1, 40))
        dist = rng.permutation(40)[:n_items]
        rel = (rng.random(n_items) < 0.4).astype(int)
        n, r = hists(dist, rel, 40)
        seq = list(rel[np.argsort(dist, kind="stable")])
        for fn in (M.average_precision_tie_aware, M.average_precision_optimistic,
                   M.average_precision_pessimistic):
            assert np.isclose(fn(n, r), ap_full(seq))
        for k in (1, 3, 10, 100):
            assert np.isclose(M.average_precision_at_k_tie_aware(n, r, k), ap_at_k(seq, k))
        assert np.allclose(M.precision_at_k_tie_aware(n, r, [1, 3, 10, 100]),
                           [precision_at_k(seq, k) for k in (1, 3, 10, 100)])


@pytest.mark.parametrize("n_items", [1, 2, 3, 5, 7])
def test_everything_tied_closed_form(n_items):
    """All items at one distance: E[AP] = (r-1)/(n-1) + (n-r) H_n / (n(n-1)), checked by enumeration."""
    for n_rel in range(1, n_items + 1):
        dist = np.zeros(n_items, dtype=int)
        rel = np.array([1] * n_rel + [0] * (n_items - n_rel))
        n, r = hists(dist, rel, 3)
        expected = float(expected_ap_all_tied(n_items, n_rel))
        assert np.isclose(M.average_precision_tie_aware(n, r), expected)
        assert np.isclose(brute(dist, rel, [])["ap"], expected)


def test_everything_tied_large_database():
    """Closed form holds for a large tie group (harmonic-number form stays accurate)."""
    n_items, n_rel = 5000, 37
    n = np.array([0, n_items, 0])
    r = np.array([0, n_rel, 0])
    assert np.isclose(M.average_precision_tie_aware(n, r),
                      float(expected_ap_all_tied(n_items, n_rel)), rtol=1e-10)
    # Top K of one big tie: E[precision@K] = r / n for every K.
    assert np.allclose(M.precision_at_k_tie_aware(n, r, [1, 100, 5000]), n_rel / n_items)


def test_tie_aware_ap_matches_explicit_sum_on_large_histogram():
    """The O(1) harmonic form equals the spec's explicit per-position sum for big groups."""
    rng = np.random.default_rng(3)
    n = rng.integers(0, 800, size=17)
    r = rng.binomial(n, 0.2)
    big_r, total, n_b, r_b = r.sum(), 0.0, 0, 0
    for nd, rd in zip(n, r):
        if rd:
            slope = (rd - 1) / (nd - 1) if nd > 1 else 0.0
            i = np.arange(1, nd + 1)
            total += rd / nd * np.sum((r_b + 1 + (i - 1) * slope) / (n_b + i))
        n_b += nd
        r_b += rd
    assert np.isclose(M.average_precision_tie_aware(n, r), total / big_r, rtol=1e-10)


def explicit_ap_at_k(n, r, k):
    """The spec's AP@K expectation with explicit per-position sums and scipy's hypergeometric pmf."""
    from scipy.stats import hypergeom

    k = min(k, int(n.sum()))
    a_full, n_b, r_b = 0.0, 0, 0
    for nd, rd in zip(n, r):
        if n_b + nd >= k:  # the group cut by position k
            m = k - n_b
            expected = 0.0
            for j in range(0, min(rd, m) + 1):
                p = hypergeom.pmf(j, nd, rd, m)
                slope = (j - 1) / (m - 1) if m > 1 else 0.0
                i = np.arange(1, m + 1)
                c_j = j / m * np.sum((r_b + 1 + (i - 1) * slope) / (n_b + i))
                if r_b + j:
                    expected += p * (a_full + c_j) / (r_b + j)
            return expected
        if rd:
            slope = (rd - 1) / (nd - 1) if nd > 1 else 0.0
            i = np.arange(1, nd + 1)
            a_full += rd / nd * np.sum((r_b + 1 + (i - 1) * slope) / (n_b + i))
        n_b += nd
        r_b += rd
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "n,r,k",
    [
        ([3, 2, 40, 9], [1, 2, 11, 4], 20),
        ([0, 7, 6000, 300], [0, 3, 700, 20], 1000),  # cut group of thousands: pmf accuracy
        ([50, 4000], [0, 3990], 1500),  # nearly all relevant in the cut group
        ([20, 3000], [0, 2], 500),  # few relevant, no relevant before the cut
    ],
)
def test_ap_at_k_matches_explicit_expectation(n, r, k):
    """AP@K equals the spec's hypergeometric expectation summed explicitly, also for big groups."""
    n, r = np.array(n), np.array(r)
    assert np.isclose(M.average_precision_at_k_tie_aware(n, r, k), explicit_ap_at_k(n, r, k),
                      rtol=1e-9, atol=1e-14)


def test_vectorised_over_queries_and_harmonic_reuse():
    """2-D histograms give one value per query, equal to the 1-D calls; a short table is refused."""
    rng = np.random.default_rng(4)
    rows = [hists(*random_case(rng, max_n=30), 6) for _ in range(8)]
    n = np.zeros((8, 6), dtype=int)
    r = np.zeros((8, 6), dtype=int)
    for q, (nq, rq) in enumerate(rows):
        n[q], r[q] = nq, rq
    h = M.harmonic_numbers(30)
    ap = M.average_precision_tie_aware(n, r, h)
    assert ap.shape == (8,)
    assert np.allclose(ap, [M.average_precision_tie_aware(nq, rq) for nq, rq in rows])
    apk = M.average_precision_at_k_tie_aware(n, r, 4, h)
    assert np.allclose(apk, [M.average_precision_at_k_tie_aware(nq, rq, 4) for nq, rq in rows])
    with pytest.raises(VsbError, match="harmonic"):
        M.average_precision_tie_aware(n, r, M.harmonic_numbers(3))


def test_harmonic_numbers():
    h = M.harmonic_numbers(4)
    assert np.allclose(h, [0, 1, 1.5, 1.5 + 1 / 3, 1.5 + 1 / 3 + 0.25])


def test_precision_recall_radius():
    """Precision 0 when nothing is within the radius; recall 0 without relevant items."""
    n = np.array([[0, 2, 3, 1], [1, 0, 0, 2]])
    r = np.array([[0, 1, 3, 0], [0, 0, 0, 0]])
    prec, rec = M.precision_recall_radius(n, r)
    assert np.allclose(prec, [[0, 0.5, 0.8, 4 / 6], [0, 0, 0, 0]])
    assert np.allclose(rec, [[0, 0.25, 1, 1], [0, 0, 0, 0]])


def test_histogram_validation():
    with pytest.raises(VsbError):
        M.average_precision_tie_aware([1, 2], [2, 0])
    with pytest.raises(VsbError):
        M.average_precision_tie_aware([1, 2], [1, 0, 0])
    with pytest.raises(VsbError):
        M.average_precision_at_k_tie_aware([1, 2], [1, 0], 0)


# ----------------------------------------------------------------------------- evaluate

def brute_evaluate(dist, rel, topk, ks, bits):
    """Reference for evaluate() from a (Q, N) distance matrix and relevance matrix."""
    per_q = [brute(dq, rq, sorted(set(topk) | set(ks))) for dq, rq in zip(dist, rel)]
    big_r = rel.sum(axis=1)
    prec_r, rec_r = [], []
    for radius in range(bits + 1):
        inside = dist <= radius
        hits = (inside & rel.astype(bool)).sum(axis=1)
        cnt = inside.sum(axis=1)
        prec_r.append(np.mean([h / c if c else 0.0 for h, c in zip(hits, cnt)]))
        rec_r.append(np.mean([h / t if t else 0.0 for h, t in zip(hits, big_r)]))
    return {
        "map": np.mean([p["ap"] for p in per_q]),
        "map_optimistic": np.mean([p["ap_max"] for p in per_q]),
        "map_pessimistic": np.mean([p["ap_min"] for p in per_q]),
        **{f"map@{k}": np.mean([p["ap@k"][k] for p in per_q]) for k in topk},
        "p@k": [np.mean([p["p@k"][k] for p in per_q]) for k in ks],
        "pr_precision": prec_r,
        "pr_recall": rec_r,
        "no_relevant": int((big_r == 0).sum()),
    }


def check_against_brute(res, q_codes, db_codes, rel, topk, ks):
    bits = q_codes.shape[1] * 8
    q_pm = np.unpackbits(q_codes, axis=1).astype(int)
    db_pm = np.unpackbits(db_codes, axis=1).astype(int)
    dist = np.abs(q_pm[:, None, :] - db_pm[None, :, :]).sum(axis=2)
    ref = brute_evaluate(dist, rel, topk, ks, bits)
    for key in ["map", "map_optimistic", "map_pessimistic", *[f"map@{k}" for k in topk]]:
        assert np.isclose(res[key], ref[key]), key
    assert np.allclose(res["precision_at_k"]["precision"], ref["p@k"])
    assert np.allclose(res["pr_curve"]["precision"], ref["pr_precision"])
    assert np.allclose(res["pr_curve"]["recall"], ref["pr_recall"])
    assert np.isclose(res["precision_radius2"], ref["pr_precision"][2])
    assert res["n_queries_without_relevant"] == ref["no_relevant"]


def small_code_pool(rng, n_items, pool=3, bits=8):
    """Codes drawn from a tiny pool so that distances tie heavily."""
    patterns = pack_codes(rng.standard_normal((pool, bits)))
    return patterns[rng.integers(0, pool, size=n_items)]


@pytest.mark.parametrize("seed", range(6))
def test_evaluate_single_label_matches_brute_force(seed):
    """End to end from packed codes and class ids, several queries, heavy ties."""
    rng = np.random.default_rng(10 + seed)
    db = small_code_pool(rng, 6, pool=int(rng.integers(2, 5)))
    q = small_code_pool(rng, 4)
    db_labels = rng.integers(0, 3, size=6)
    q_labels = rng.integers(0, 4, size=4)  # label 3 never occurs in the database
    topk, ks = (1, 2, 4, 100), [1, 2, 3, 5, 100]
    res = M.evaluate(q, db, q_labels, db_labels, topk=topk, precision_ks=ks)
    rel = (q_labels[:, None] == db_labels[None, :]).astype(int)
    check_against_brute(res, q, db, rel, topk, [1, 2, 3, 5, 6])
    assert res["precision_at_k"]["k"] == [1, 2, 3, 5, 6]
    assert res["n_queries"] == 4 and res["n_database"] == 6 and res["bits"] == 8
    assert len(res["pr_curve"]["radius"]) == 9
    json.dumps(res)


@pytest.mark.parametrize("seed", range(4))
def test_evaluate_multilabel_matches_brute_force(seed):
    """2-D 0/1 labels: relevant iff at least one shared label."""
    rng = np.random.default_rng(20 + seed)
    db = small_code_pool(rng, 6, bits=16)
    q = small_code_pool(rng, 3, bits=16)
    db_labels = (rng.random((6, 4)) < 0.35).astype(np.int64)
    q_labels = (rng.random((3, 4)) < 0.35).astype(bool)
    res = M.evaluate(q, db, q_labels, db_labels, topk=(3, 6), precision_ks=[1, 4])
    rel = ((q_labels.astype(int) @ db_labels.T) > 0).astype(int)
    check_against_brute(res, q, db, rel, (3, 6), [1, 4])


def test_query_without_relevant_counts_as_zero():
    """AP = 0 for a query whose class is absent; it stays in the mean and is counted."""
    db = codes_at_distance([0, 1, 2])
    q = codes_at_distance([0, 0])
    res = M.evaluate(q, db, np.array([5, 9]), np.array([5, 7, 7]), topk=(2,))
    assert res["n_queries_without_relevant"] == 1
    assert np.isclose(res["map"], 0.5)
    assert np.isclose(res["map@2"], 0.5)
    assert np.isclose(res["map_pessimistic"], 0.5)


def test_everything_tied_end_to_end():
    """All database items at one distance: mAP is the all-tied closed form."""
    db = np.repeat(codes_at_distance([3]), 7, axis=0)
    q = codes_at_distance([0])
    labels = np.array([1, 0, 1, 0, 0, 1, 0])
    res = M.evaluate(q, db, np.array([1]), labels)
    assert np.isclose(res["map"], float(expected_ap_all_tied(7, 3)))
    assert np.isclose(res["map_optimistic"], 1.0)
    assert np.isclose(res["map_pessimistic"], (1 / 5 + 2 / 6 + 3 / 7) / 3)


def test_k_larger_than_database_is_clipped():
    """map@K with K > N equals mAP@all (every query has a relevant item); P@K uses K = N."""
    rng = np.random.default_rng(5)
    db = small_code_pool(rng, 5)
    q = small_code_pool(rng, 3)
    db_labels = np.array([0, 1, 2, 0, 1])
    q_labels = np.array([0, 1, 2])
    res = M.evaluate(q, db, q_labels, db_labels, topk=(1000,), precision_ks=[1000])
    assert np.isclose(res["map@1000"], res["map"])
    assert res["precision_at_k"]["k"] == [5]
    assert np.isclose(res["precision_at_k"]["precision"][0], np.mean([2 / 5, 2 / 5, 1 / 5]))


@pytest.mark.parametrize("label,expected", [(4, 1.0), (3, 0.0)])
def test_one_item_database(label, expected):
    """A single database item: AP, AP@K and P@K are 1 if it is relevant, else 0."""
    db = codes_at_distance([2])
    q = codes_at_distance([0])
    res = M.evaluate(q, db, np.array([label]), np.array([4]))
    for key in ("map", "map_optimistic", "map_pessimistic", "map@100", "map@1000"):
        assert res[key] == pytest.approx(expected)
    assert res["precision_at_k"] == {"k": [1], "precision": [pytest.approx(expected)]}
    assert res["precision_radius2"] == pytest.approx(expected)


def test_chunked_equals_unchunked():
    """Tiny chunks give the same result as one chunk (and distance_histograms agrees)."""
    rng = np.random.default_rng(6)
    db = pack_codes(rng.standard_normal((300, 16)))
    q = pack_codes(rng.standard_normal((23, 16)))
    db_labels = rng.integers(0, 5, size=300)
    q_labels = rng.integers(0, 5, size=23)
    full = M.evaluate(q, db, q_labels, db_labels, topk=(10, 100))
    for chunk in (1, 4, 1000):
        part = M.evaluate(q, db, q_labels, db_labels, topk=(10, 100), chunk_size=chunk)
        for key, value in full.items():
            if isinstance(value, float):
                assert np.isclose(part[key], value), key
        assert np.allclose(part["pr_curve"]["precision"], full["pr_curve"]["precision"])
        assert np.allclose(part["precision_at_k"]["precision"], full["precision_at_k"]["precision"])
    n1, r1 = M.distance_histograms(q, db, q_labels, db_labels, 16, chunk_size=1)
    n2, r2 = M.distance_histograms(q, db, q_labels, db_labels)
    assert np.array_equal(n1, n2) and np.array_equal(r1, r2)


def test_distance_histograms_match_naive():
    """n[q, d] and r[q, d] count items / relevant items at each distance."""
    rng = np.random.default_rng(7)
    x_db = rng.standard_normal((40, 24))
    x_q = rng.standard_normal((5, 24))
    db_labels = rng.integers(0, 3, size=40)
    q_labels = rng.integers(0, 3, size=5)
    n, r = M.distance_histograms(pack_codes(x_q), pack_codes(x_db), q_labels, db_labels, 24)
    assert n.shape == r.shape == (5, 25)
    dist = ((x_q[:, None, :] >= 0) != (x_db[None, :, :] >= 0)).sum(axis=2)
    for qi in range(5):
        for d in range(25):
            at_d = dist[qi] == d
            assert n[qi, d] == at_d.sum()
            assert r[qi, d] == (at_d & (db_labels == q_labels[qi])).sum()


def test_evaluate_accepts_torch_labels():
    torch = pytest.importorskip("torch")
    db = codes_at_distance([0, 1])
    res = M.evaluate(db, db, torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert res["map"] == pytest.approx(1.0)


def test_tie_rule_is_reported():
    db = codes_at_distance([0, 1])
    res = M.evaluate(db, db, np.array([0, 1]), np.array([0, 1]))
    assert "expectation" in res["tie_rule"] and "top K" in res["tie_rule"]


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: dict(a, db=a["db"].astype(np.int32)), "uint8"),
        (lambda a: dict(a, db=pack_codes(np.ones((4, 16)))), "bits"),
        (lambda a: dict(a, db_labels=a["db_labels"][:3]), "database labels"),
        (lambda a: dict(a, q_labels=a["q_labels"][:1]), "query labels"),
        (lambda a: dict(a, db=a["db"][:0], db_labels=a["db_labels"][:0]), "empty"),
        (lambda a: dict(a, q=a["q"][:0], q_labels=a["q_labels"][:0]), "empty"),
        (lambda a: dict(a, q_labels=np.eye(2, 3, dtype=int)), "both 1-D"),
        (lambda a: dict(a, q_labels=np.full((2, 3), 2), db_labels=np.ones((4, 3))), "0/1"),
        (lambda a: dict(a, q_labels=np.ones((2, 3)), db_labels=np.ones((4, 2))), "columns"),
        (lambda a: dict(a, q_labels=np.array([0.0, np.nan])), "NaN"),
        (lambda a: dict(a, kw={"chunk_size": 0}), "chunk_size"),
        (lambda a: dict(a, kw={"topk": (0,)}), "topk"),
        (lambda a: dict(a, kw={"precision_ks": [1, -3]}), "precision_ks"),
    ],
)
def test_evaluate_validation(mutate, match):
    """Bad inputs raise VsbError with a message naming the problem."""
    args = {
        "q": codes_at_distance([0, 1]),
        "db": codes_at_distance([0, 1, 2, 3]),
        "q_labels": np.array([0, 1]),
        "db_labels": np.array([0, 1, 1, 0]),
        "kw": {},
    }
    a = mutate(args)
    with pytest.raises(VsbError, match=match):
        M.evaluate(a["q"], a["db"], a["q_labels"], a["db_labels"], **a["kw"])


def test_distance_histograms_bits_mismatch():
    db = codes_at_distance([0, 1])
    with pytest.raises(VsbError, match="bits"):
        M.distance_histograms(db, db, np.array([0, 1]), np.array([0, 1]), 16)


def test_all_zero_histogram_rows_give_zero_without_warnings():
    """A histogram row with no items (possible from direct callers) yields 0, not NaN."""
    n = np.array([[0, 0, 0], [1, 2, 0]])
    r = np.array([[0, 0, 0], [1, 1, 0]])
    with np.errstate(all="raise"):
        assert np.allclose(M.average_precision_at_k_tie_aware(n, r, 2), [0.0, 1.0])
        assert np.allclose(M.average_precision_tie_aware(n, r), [0.0, (1 + (1 + 2 / 3) / 2) / 2])
        assert np.allclose(M.precision_at_k_tie_aware(n, r, [1, 3]), [[0, 0], [1, 2 / 3]])


def test_asymmetric_ap_is_the_ap_of_ranking_by_the_real_valued_code():
    from vsb2net.evaluation.retrieval import asymmetric_average_precision, distance_histograms

    rng = np.random.default_rng(0)
    u = rng.normal(size=(6, 16))
    db = pack_codes(rng.normal(size=(60, 16)))
    ql, dl = rng.integers(0, 3, 6), rng.integers(0, 3, 60)
    ap = asymmetric_average_precision(u, db, ql, dl)
    b = np.where(np.unpackbits(db, axis=1) > 0, 1.0, -1.0)
    for i in range(6):  # continuous scores: no ties but identical codes, which random codes lack here
        rel = dl[np.argsort(-(b @ u[i]), kind="stable")] == ql[i]
        assert ap[i] == pytest.approx((np.cumsum(rel) / np.arange(1, 61) * rel).sum() / rel.sum())
    # a query that keeps only its signs ranks by Hamming distance: the symmetric tie-aware AP
    n, r = distance_histograms(pack_codes(u), db, ql, dl)
    np.testing.assert_allclose(asymmetric_average_precision(np.sign(u), db, ql, dl),
                               M.average_precision_tie_aware(n, r))
    # identical database codes are one tie group, whatever the query
    same = np.repeat(db[:1], 10, axis=0)
    tied = asymmetric_average_precision(u[:1], same, ql[:1], np.r_[ql[:1], (ql[:1] + 1) % 3, ql[:1].repeat(8)])
    assert tied[0] == pytest.approx(M.average_precision_tie_aware(np.array([10]), np.array([9])))


@pytest.mark.parametrize("within", [False, True])
@pytest.mark.parametrize("multi", [False, True])
def test_asymmetric_ap_of_a_database_of_repeated_codes_is_the_ap_of_its_items(within, multi):
    """The asymmetric AP scores each distinct database code once (a trained model's database repeats
    its codes); item by item, every item's (distance, score) key and the tie groups they form give
    the same AP, multi-label relevance included."""
    from vsb2net.evaluation.retrieval import asymmetric_average_precision

    rng = np.random.default_rng(3)
    u = np.round(rng.normal(size=(9, 16)), 1)  # rounded: codes of equal score, not only identical ones
    db = pack_codes(rng.normal(size=(12, 16)))[rng.integers(0, 12, 150)]
    ql, dl = (rng.integers(0, 2, (9, 3)), rng.integers(0, 2, (150, 3))) if multi else \
        (rng.integers(0, 3, 9), rng.integers(0, 3, 150))
    ap = asymmetric_average_precision(u, db, ql, dl, chunk=4, within_hamming=within)
    b = np.where(np.unpackbits(db, axis=1) > 0, 1.0, -1.0)
    for i in range(9):
        score = np.round(b @ u[i], 6)
        dist = (b != np.where(u[i] >= 0, 1.0, -1.0)).sum(1) if within else np.zeros(150)
        rel = (dl @ ql[i] > 0) if multi else dl == ql[i]
        keys = sorted({(d, -s) for d, s in zip(dist, score)})
        n = np.array([sum((dist == d) & (score == -s)) for d, s in keys])
        r = np.array([sum(rel & (dist == d) & (score == -s)) for d, s in keys])
        assert ap[i] == pytest.approx(M.average_precision_tie_aware(n, r), abs=1e-12)


def test_asymmetric_ap_within_hamming_is_the_ap_of_the_served_ranking():
    """within_hamming=True: the AP of HammingIndex.search(..., real=u)'s order, (distance, score)."""
    from vsb2net.evaluation.retrieval import asymmetric_average_precision
    from vsb2net.index import HammingIndex

    rng = np.random.default_rng(1)
    u = rng.normal(size=(5, 16)).astype(np.float32)
    db = pack_codes(rng.normal(size=(80, 16)))
    ql, dl = rng.integers(0, 3, 5), rng.integers(0, 3, 80)
    ap = asymmetric_average_precision(u, db, ql, dl, within_hamming=True)
    index = HammingIndex(16)
    index.add(db)
    for i, hits in enumerate(index.search(pack_codes(u), 80, real=u)):
        rel = dl[hits.positions] == ql[i]
        assert ap[i] == pytest.approx((np.cumsum(rel) / np.arange(1, 81) * rel).sum() / rel.sum())
    # a ranking other than the score alone gives
    assert not np.allclose(ap, asymmetric_average_precision(u, db, ql, dl))


def test_the_evaluations_ranking_and_search_agree_item_for_item_on_ties():
    """The served order is defined once (vsb2net.served_order): the metric's ranking with
    within_hamming=True and HammingIndex.search(..., real=u) list the same positions, ties included
    (identical codes: equal distance and score, ordered by the fixed shuffle of positions)."""
    from vsb2net.evaluation.retrieval import asymmetric_ranking
    from vsb2net.index import HammingIndex

    rng = np.random.default_rng(3)
    db = pack_codes(rng.normal(size=(12, 16)))[rng.integers(0, 12, 90)]  # 90 items, 12 distinct codes
    u = rng.normal(size=(6, 16)).astype(np.float32)
    ranking = asymmetric_ranking(u, db)
    index = HammingIndex(16)
    index.add(db)
    hits = index.search(pack_codes(u), len(db), real=u)
    for i in range(len(u)):
        assert hits[i].positions.tolist() == ranking[i].tolist()
        # true ties are there, and not in position order
        assert (np.diff(hits[i].distances) == 0).sum() > 40 and not np.all(np.diff(hits[i].positions[:20]) > 0)
    # the cut list of a smaller search is the head of the same order
    for i, short in enumerate(index.search(pack_codes(u), 10, real=u)):
        assert short.positions.tolist() == ranking[i, :10].tolist()
