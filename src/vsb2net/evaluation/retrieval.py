"""Retrieval metrics for Hamming ranking, with an explicit tie rule.

Hamming distances take only K + 1 values, so many database items tie and the order inside a tie
is arbitrary; the choice moves mAP by several points.  Every metric here is therefore the **exact
expectation over uniformly random orders of tied items** ("tie-aware", McSherry & Najork, ECIR
2008; He et al., "Hashing as Tie-Aware Learning to Rank", CVPR 2018).  The optimistic
(relevant items first within each tie) and pessimistic (relevant items last) mAP are reported as
bounds.

Nothing is sorted.  For each query the database is histogrammed by distance:
``n[q, d]`` = items at distance d, ``r[q, d]`` = relevant items at distance d (d = 0..K), and
every metric is a closed form over these histograms, vectorised over (queries x distances).
Notation for one query and one distance group d: ``N_b``, ``R_b`` = items / relevant items at
smaller distances, ``R`` = relevant items in the whole database, ``H[m] = sum_{i<=m} 1/i``.

Rules (also returned as ``tie_rule`` by :func:`evaluate`):

* ``map`` (mAP@all): per group, expected sum of precisions at its relevant positions is
  ``(r_d/n_d) * sum_{i=1}^{n_d} (R_b + 1 + (i-1)(r_d-1)/(n_d-1)) / (N_b + i)`` (the
  ``(r_d-1)/(n_d-1)`` term is 0 when ``n_d = 1``); AP = sum over groups / R.
* A query with no relevant database item has AP = 0 (and AP@K = 0) and **counts** in the mean;
  their number is reported as ``n_queries_without_relevant``.
* ``map@K``: AP over the top K divided by the number of relevant items **in the top K**
  (0 when there are none), as most hashing code does.  Only the group cut by position K is
  random in membership: with n items, r relevant and m of them in the top K, the number j of its
  relevant items in the top K is hypergeometric(n, r, m) and given j those m items are in random
  order, so ``AP@K = sum_j P(j) (A_full + C(j)) / (R_full + j)``.  K larger than the database is
  clipped to the database size.
* ``precision@K`` = E[#relevant in top K] / K, exact because it is linear; K is clipped to the
  database size.
* Precision / recall within Hamming radius r: items at distance <= r (no ties issue: a radius
  takes whole groups).  Precision is 0 when nothing is within r; recall is 0 for a query without
  relevant items.  Both are averaged over queries.

Relevance: single-label (1-D label arrays, relevant iff equal) or multi-label (2-D 0/1 matrices,
relevant iff at least one shared label).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import gammaln

from vsb2net.codes import _check_packed, hamming_distances, pad_codes, to_numpy
from vsb2net.errors import VsbError, check_count
from vsb2net.hamming_kernel import histograms, kernel
from vsb2net.served_order import served_order

__all__ = [
    "DEFAULT_PRECISION_KS",
    "DEFAULT_TOPK",
    "TIE_RULE",
    "harmonic_numbers",
    "default_chunk_size",
    "relevance_matrix",
    "distance_histograms",
    "average_precision_tie_aware",
    "average_precision_optimistic",
    "average_precision_pessimistic",
    "average_precision_at_k_tie_aware",
    "asymmetric_average_precision",
    "asymmetric_ranking",
    "precision_at_k_tie_aware",
    "precision_recall_radius",
    "evaluate",
]

DEFAULT_TOPK: tuple[int, ...] = (100, 1000)
DEFAULT_PRECISION_KS: tuple[int, ...] = (1, 5, 10, 20, 50, 100, 200, 500, 1000)
# Budget for the largest per-chunk matrix (the int64 histogram-bin index, 8 bytes per pair).
CHUNK_BYTES = 64 * 2**20

TIE_RULE = (
    "Database ranked by Hamming distance; items at equal distance are in uniformly random order "
    "and every metric is its exact expectation over those orders (tie-aware; McSherry & Najork "
    "2008, He et al. CVPR 2018). map_optimistic / map_pessimistic put relevant items first / "
    "last within each tie. map is mAP over the whole database. map@K divides by the number of "
    "relevant items in the top K (AP@K = 0 when there are none); K larger than the database is "
    "clipped to the database size, as are precision@K cut-offs. Queries with no relevant "
    "database item have AP = 0 and count in every mean. pr_curve: precision and recall of the "
    "items within Hamming radius r (precision 0 when nothing is inside; recall 0 when the query "
    "has no relevant item), averaged over queries; precision_radius2 is its value at r = 2."
)


# ----------------------------------------------------------------------------- helpers

def harmonic_numbers(m: int) -> np.ndarray:
    """Table ``H`` of length ``m + 1`` with ``H[j] = sum_{i=1}^{j} 1/i`` (``H[0] = 0``), float64."""
    m = int(m)
    if m < 0:
        raise VsbError(f"harmonic_numbers needs m >= 0, got {m}.")
    h = np.zeros(m + 1, dtype=np.float64)
    if m:
        np.cumsum(1.0 / np.arange(1, m + 1, dtype=np.float64), out=h[1:])
    return h


def default_chunk_size(n_database: int, budget_bytes: int = CHUNK_BYTES) -> int:
    """Queries per chunk so that a chunk's (queries x database) int64 matrix is ~``budget_bytes``.

    Multi-label relevance needs that matrix (histogram-bin indices) and the uint64 XOR buffer of
    :func:`vsb2net.codes.hamming_distances`, 8 bytes per pair.  Single-label evaluation builds
    no such matrix and uses chunks of at least :data:`SINGLE_LABEL_CHUNK` queries.
    """
    return max(1, int(budget_bytes) // (8 * max(1, int(n_database))))


def _tie_sum(a: np.ndarray, b: np.ndarray, n0: np.ndarray, n: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``sum_{i=1}^{n} (a + (i-1) b) / (n0 + i)`` in O(1) via harmonic numbers.

    Uses ``(a + (i-1)b)/(n0+i) = (a - b(1+n0))/(n0+i) + b``.
    """
    return (a - b * (1.0 + n0)) * (h[n0 + n] - h[n0]) + b * n


def _as_hists(n_hist: Any, r_hist: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate (n, r) histograms; return them as int64 (Q, D) plus whether input was 1-D."""
    n = to_numpy(n_hist)
    r = to_numpy(r_hist)
    if n.shape != r.shape:
        raise VsbError(f"n and r histograms differ in shape: {n.shape} vs {r.shape}.")
    if n.ndim not in (1, 2) or n.shape[-1] == 0:
        raise VsbError(
            f"histograms must have shape (distances,) or (queries, distances), got {n.shape}."
        )
    for name, arr in (("n", n), ("r", r)):
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            if not np.array_equal(arr, np.round(arr)):
                raise VsbError(f"{name} histogram must hold integer counts, got dtype {arr.dtype}.")
    squeeze = n.ndim == 1
    n = np.atleast_2d(n).astype(np.int64)
    r = np.atleast_2d(r).astype(np.int64)
    if (r < 0).any() or (r > n).any():
        raise VsbError("histograms must satisfy 0 <= r <= n (relevant items are a subset).")
    return n, r, squeeze


def _harmonic_for(n: np.ndarray, harmonic: np.ndarray | None) -> np.ndarray:
    need = int(n.sum(axis=1).max()) + 1
    if harmonic is None:
        return harmonic_numbers(need - 1)
    harmonic = np.asarray(harmonic, dtype=np.float64)
    if harmonic.ndim != 1 or harmonic.shape[0] < need:
        raise VsbError(
            f"harmonic table too short: need length >= {need} (database size + 1), got "
            f"{harmonic.shape}; build it with harmonic_numbers(n_database)."
        )
    return harmonic


def _out(values: np.ndarray, squeeze: bool):
    return float(values[0]) if squeeze else values


def _group_precision_sums(n: np.ndarray, r: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Expected sum of precisions at the relevant positions of each group (Q, D), tie-aware."""
    nb = np.cumsum(n, axis=1) - n
    rb = np.cumsum(r, axis=1) - r
    b = np.where(n > 1, (r - 1) / np.maximum(n - 1, 1), 0.0)
    s = _tie_sum(rb + 1.0, b, nb, n, h)
    return np.where(r > 0, r / np.maximum(n, 1) * s, 0.0)


def _divide_by_relevant(total: np.ndarray, r: np.ndarray) -> np.ndarray:
    big_r = r.sum(axis=1)
    return np.where(big_r > 0, total / np.maximum(big_r, 1), 0.0)


# ----------------------------------------------------------------------------- per-query metrics

def average_precision_tie_aware(n_hist: Any, r_hist: Any, harmonic: np.ndarray | None = None):
    """Tie-aware AP over the whole database (expectation over random tie orders).

    Parameters
    ----------
    n_hist, r_hist : int arrays, shape (Q, D) or (D,)
        Items / relevant items at each Hamming distance 0..D-1 (from :func:`distance_histograms`).
    harmonic : optional float64 table from :func:`harmonic_numbers`, length >= database size + 1
        (computed when omitted; pass it to reuse across calls).

    Returns
    -------
    np.ndarray (Q,) of float64, or a float for 1-D input.  0 for a query without relevant items.
    """
    n, r, squeeze = _as_hists(n_hist, r_hist)
    h = _harmonic_for(n, harmonic)
    ap = _divide_by_relevant(_group_precision_sums(n, r, h).sum(axis=1), r)
    return _out(ap, squeeze)


def average_precision_optimistic(n_hist: Any, r_hist: Any, harmonic: np.ndarray | None = None):
    """AP when relevant items come first within each tie (upper bound of the tie-aware AP).

    The r relevant items of a group sit at ranks N_b + i, i = 1..r, each with precision
    (R_b + i) / (N_b + i).  Same arguments and return as :func:`average_precision_tie_aware`.
    """
    return _bound_ap(n_hist, r_hist, harmonic, relevant_last=False)


def average_precision_pessimistic(n_hist: Any, r_hist: Any, harmonic: np.ndarray | None = None):
    """AP when relevant items come last within each tie (lower bound of the tie-aware AP).

    The r relevant items of a group sit at ranks N_b + n - r + i, i = 1..r, with precision
    (R_b + i) / (N_b + n - r + i).  Same arguments and return as
    :func:`average_precision_tie_aware`.
    """
    return _bound_ap(n_hist, r_hist, harmonic, relevant_last=True)


def _bound_ap(n_hist: Any, r_hist: Any, harmonic: np.ndarray | None, relevant_last: bool):
    """The optimistic/pessimistic AP: a group's r relevant items occupy r consecutive ranks after
    ``start`` items, where ``start`` is N_b (first) or N_b + n - r (last)."""
    n, r, squeeze = _as_hists(n_hist, r_hist)
    h = _harmonic_for(n, harmonic)
    start = np.cumsum(n, axis=1) - (r if relevant_last else n)
    rb = np.cumsum(r, axis=1) - r
    s = _tie_sum(rb + 1.0, np.ones_like(start, dtype=np.float64), start, r, h)
    return _out(_divide_by_relevant(s.sum(axis=1), r), squeeze)


def _cut_group(n: np.ndarray, r: np.ndarray, k_eff: np.ndarray):
    """For each query, the group containing rank ``k_eff`` and what lies before it.

    Returns (c, nb_c, rb_c, n_c, r_c, m): group index, items / relevant items before it, its size,
    its relevant count, and m = how many of its items are in the top k_eff (1 <= m <= n_c when
    k_eff >= 1).
    """
    rows = np.arange(n.shape[0])
    cum_n = np.cumsum(n, axis=1)
    cum_r = np.cumsum(r, axis=1)
    c = np.argmax(cum_n >= k_eff[:, None], axis=1)
    n_c = n[rows, c]
    r_c = r[rows, c]
    nb_c = cum_n[rows, c] - n_c
    rb_c = cum_r[rows, c] - r_c
    return c, nb_c, rb_c, n_c, r_c, k_eff - nb_c


def _log_comb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)


def _hypergeom_pmf(j: np.ndarray, n: np.ndarray, r: np.ndarray, m: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """P(j relevant among m drawn from n items with r relevant), rows = queries, columns = j.

    Log-gamma form (scipy.stats.hypergeom.pmf is ~100x slower for groups of thousands of
    items); out-of-support entries are 0, and each row is renormalised to sum to 1, which
    cancels the rounding of the shared log C(n, m) term.
    """
    n, r, m = n[:, None], r[:, None], m[:, None]
    j_safe = np.clip(j, np.maximum(0, m - (n - r)), np.minimum(r, m))
    log_p = _log_comb(r, j_safe) + _log_comb(n - r, m - j_safe) - _log_comb(n, m)
    p = np.where(valid, np.exp(log_p), 0.0)
    total = p.sum(axis=1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def average_precision_at_k_tie_aware(
    n_hist: Any, r_hist: Any, k: int, harmonic: np.ndarray | None = None
):
    """Tie-aware AP@K, denominator = number of relevant items in the top K.

    ``AP@K = sum_j P(j) (A_full + C(j)) / (R_full + j)``: A_full, R_full are the expected
    precision sum and relevant count of the groups entirely inside the top K; the cut group (n
    items, r relevant, m inside the top K) holds j ~ hypergeometric(n, r, m) relevant items in
    the top K, in random order, contributing
    ``C(j) = (j/m) sum_{i=1}^{m} (R_b + 1 + (i-1)(j-1)/(m-1)) / (N_b + i)``.
    A term with no relevant item in the top K is 0.  K is clipped to the database size.

    Returns np.ndarray (Q,) or a float for 1-D histograms.
    """
    k = check_count(k, "K")
    n, r, squeeze = _as_hists(n_hist, r_hist)
    h = _harmonic_for(n, harmonic)
    n_db = n.sum(axis=1)
    k_eff = np.minimum(k, n_db)
    c, nb_c, rb_c, n_c, r_c, m = _cut_group(n, r, k_eff)

    contrib = _group_precision_sums(n, r, h)
    before_cut = np.arange(n.shape[1])[None, :] < c[:, None]
    a_full = np.where(before_cut, contrib, 0.0).sum(axis=1)

    j_hi = np.minimum(r_c, m)
    j_lo = np.maximum(0, m - (n_c - r_c))
    j = np.arange(int(j_hi.max()) + 1)[None, :]
    valid = (j >= j_lo[:, None]) & (j <= j_hi[:, None])
    p_j = _hypergeom_pmf(j, n_c, r_c, m, valid)

    mm = m[:, None]
    slope = np.where(mm > 1, (j - 1) / np.maximum(mm - 1, 1), 0.0)
    s = _tie_sum((rb_c + 1.0)[:, None], slope, nb_c[:, None], mm, h)
    c_j = j / np.maximum(mm, 1) * s
    denom = rb_c[:, None] + j
    terms = np.where(valid & (denom > 0), p_j * (a_full[:, None] + c_j) / np.maximum(denom, 1), 0.0)
    ap = np.where(n_db > 0, terms.sum(axis=1), 0.0)
    return _out(ap, squeeze)


def precision_at_k_tie_aware(n_hist: Any, r_hist: Any, ks: Sequence[int]) -> np.ndarray:
    """Tie-aware precision@K for each K in ``ks``: E[#relevant in top K] / K.

    Exact by linearity: relevant items in the groups fully inside the top K plus
    ``(K - N_b) * r / n`` for the cut group.  Each K is clipped to that query's database size.

    Returns np.ndarray of shape (Q, len(ks)), or (len(ks),) for 1-D histograms.
    """
    ks = [check_count(k, "precision K") for k in ks]
    n, r, squeeze = _as_hists(n_hist, r_hist)
    n_db = n.sum(axis=1)
    out = np.zeros((n.shape[0], len(ks)), dtype=np.float64)
    for col, k in enumerate(ks):
        k_eff = np.maximum(np.minimum(k, n_db), 1)
        _, _, rb_c, n_c, r_c, m = _cut_group(n, r, k_eff)
        expected = rb_c + m * r_c / np.maximum(n_c, 1)
        out[:, col] = np.where(n_db > 0, expected / k_eff, 0.0)
    return out[0] if squeeze else out


def precision_recall_radius(n_hist: Any, r_hist: Any) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of the items within Hamming radius r, for r = 0..D-1.

    Precision(r) = relevant within r / items within r (0 when nothing is within r);
    recall(r) = relevant within r / all relevant (0 when the query has no relevant item).
    Returns two arrays of shape (Q, D), or (D,) for 1-D histograms.
    """
    n, r, squeeze = _as_hists(n_hist, r_hist)
    cum_n = np.cumsum(n, axis=1)
    cum_r = np.cumsum(r, axis=1)
    big_r = cum_r[:, -1:]
    prec = np.where(cum_n > 0, cum_r / np.maximum(cum_n, 1), 0.0)
    rec = np.where(big_r > 0, cum_r / np.maximum(big_r, 1), 0.0)
    return (prec[0], rec[0]) if squeeze else (prec, rec)


# ----------------------------------------------------------------------------- relevance / histograms

def _check_labels(q_labels: Any, db_labels: Any, n_q: int, n_db: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate labels; return (query labels, database labels, is_multilabel)."""
    ql = to_numpy(q_labels)
    dl = to_numpy(db_labels)
    if ql.ndim != dl.ndim or ql.ndim not in (1, 2):
        raise VsbError(
            f"labels must be both 1-D (single-label class ids) or both 2-D (multi-label 0/1 "
            f"matrices); got query labels of shape {ql.shape} and database labels of shape "
            f"{dl.shape}."
        )
    if ql.shape[0] != n_q:
        raise VsbError(f"{ql.shape[0]} query labels for {n_q} query codes; they must match.")
    if dl.shape[0] != n_db:
        raise VsbError(f"{dl.shape[0]} database labels for {n_db} database codes; they must match.")
    multi = ql.ndim == 2
    if multi:
        if ql.shape[1] != dl.shape[1]:
            raise VsbError(
                f"multi-label matrices have {ql.shape[1]} (query) and {dl.shape[1]} (database) "
                "label columns; both must use the same label set."
            )
        for name, arr in (("query", ql), ("database", dl)):
            if arr.dtype != np.bool_ and not ((arr == 0) | (arr == 1)).all():
                raise VsbError(
                    f"{name} multi-label matrix must contain only 0/1; for class ids pass a 1-D "
                    "array instead."
                )
    else:
        for name, arr in (("query", ql), ("database", dl)):
            if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
                raise VsbError(f"{name} labels contain NaN; every item needs a class id.")
    return ql, dl, multi


def relevance_matrix(q_labels: Any, db_labels: Any) -> np.ndarray:
    """Boolean (Q, N) relevance: equal labels (1-D), or at least one shared label (2-D 0/1)."""
    ql = to_numpy(q_labels)
    dl = to_numpy(db_labels)
    ql, dl, multi = _check_labels(ql, dl, ql.shape[0], dl.shape[0])
    return _relevance(ql, dl, multi)


def asymmetric_average_precision(q_real: Any, db_packed: Any, q_labels: Any, db_labels: Any,
                                 chunk: int = 64, within_hamming: bool = False) -> np.ndarray:
    """Tie-aware AP of the asymmetric ranking: the binary database codes ordered by their inner
    product with each query's real-valued code (its code before the sign), largest first.

    The database stays binary; the query keeps what the sign throws away, so items at one Hamming
    distance are ordered by how much the bits they differ in matter to the query.  Items with equal
    scores (identical codes) form one tie group, scored like a Hamming tie group (the expectation
    over their random orders).  Returns AP per query, float64 (Q,); 0 for a query without relevant
    items.  Costs one (Q x N) float product and a sort per query.

    ``within_hamming``: rank by Hamming distance to the query's signs first and by the score only
    within a distance: the served order (:func:`vsb2net.served_order.served_order`, called here), the
    ranking that ``HammingIndex.search(..., real=...)`` (``vsb2net search`` and ``serve``) gives.
    """
    db = _check_packed(db_packed, "database codes")
    u = np.asarray(to_numpy(q_real), dtype=np.float64)
    bits = db.shape[1] * 8
    if u.ndim != 2 or u.shape[1] != bits:
        raise VsbError(f"real-valued query codes of shape {u.shape} for {bits}-bit database codes; "
                       f"give one row of {bits} values per query.")
    ql, dl, multi = _check_labels(q_labels, db_labels, len(u), len(db))
    n_db = len(db)
    # identical database codes always share a tie group: each distinct code is scored and sorted
    # once, carrying its item count and, per query, its relevant items (a trained model's database
    # holds a fifth to two thirds as many distinct codes as items)
    codes, inverse, counts = np.unique(db, axis=0, return_inverse=True, return_counts=True)
    member = sparse.csr_matrix((np.ones(n_db, np.float32), (inverse.ravel(), np.arange(n_db))),
                               shape=(len(codes), n_db))
    b = np.unpackbits(codes, axis=1).astype(np.float64) * 2 - 1  # bit 1 = +1, as pack_codes packs
    n_codes = len(codes)
    h = harmonic_numbers(n_db)
    out = np.zeros(len(u))
    for lo in range(0, len(u), chunk):
        order, s, d = _asymmetric_groups(u[lo:lo + chunk], b, within_hamming)
        ss = np.take_along_axis(s, order, axis=1)
        relevant = np.rint(member @ _relevance(ql[lo:lo + chunk], dl, multi).T.astype(np.float32)).T
        rel = np.take_along_axis(relevant, order, axis=1)
        change = ss[:, 1:] != ss[:, :-1]
        if d is not None:
            dd = np.take_along_axis(d, order, axis=1)
            change |= dd[:, 1:] != dd[:, :-1]
        group = np.concatenate([np.zeros((len(ss), 1), np.int64), np.cumsum(change, axis=1)], axis=1)
        idx = (group + (np.arange(len(ss)) * n_codes)[:, None]).ravel()
        n = np.bincount(idx, weights=counts[order].ravel(), minlength=len(ss) * n_codes)
        r = np.bincount(idx, weights=rel.ravel(), minlength=len(ss) * n_codes)
        out[lo:lo + chunk] = average_precision_tie_aware(n.reshape(len(ss), n_codes).astype(np.int64),
                                                         r.reshape(len(ss), n_codes).astype(np.int64), h)
    return out


def asymmetric_ranking(q_real: Any, db_packed: Any, chunk: int = 64, within_hamming: bool = True) -> np.ndarray:
    """The database positions in the order :func:`asymmetric_average_precision` (same ``chunk``)
    ranks them, per query (Q, N): with ``within_hamming`` the served order of
    :mod:`vsb2net.served_order`, as ``HammingIndex.search(..., real=...)`` lists it."""
    db = _check_packed(db_packed, "database codes")
    u = np.asarray(to_numpy(q_real), dtype=np.float64).reshape(-1, db.shape[1] * 8)
    b = np.unpackbits(db, axis=1).astype(np.float64) * 2 - 1
    return np.concatenate([_asymmetric_order(u[lo:lo + chunk], b, within_hamming)[0]
                           for lo in range(0, len(u), chunk)]) if len(u) else np.zeros((0, len(db)), np.int64)


def _asymmetric_keys(u: np.ndarray, b: np.ndarray, within_hamming: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(scores, distances or None) of the +-1 database codes ``b`` for real-valued queries ``u``."""
    s = u @ b.T
    # a code's score is a sum of +-u_i: identical codes give one value, but BLAS may round the
    # same sum differently in different columns; 9 significant digits merge only those
    s = np.round(s, 9 - int(np.ceil(np.log10(np.abs(s).max() + 1e-30))))
    if not within_hamming:
        return s, None
    # distance to the query's signs (pack_codes: x >= 0 is bit 1): the bits where they differ
    sign = np.where(u >= 0, 1.0, -1.0)
    return s, np.rint((b.shape[1] - sign @ b.T) / 2)


def _asymmetric_order(u: np.ndarray, b: np.ndarray, within_hamming: bool
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(order, scores, distances or None): the served order of the database codes ``b``."""
    s, d = _asymmetric_keys(u, b, within_hamming)
    if d is None:
        return np.argsort(-s, axis=1, kind="stable"), s, None
    return served_order(d, np.broadcast_to(np.arange(b.shape[0]), d.shape), s), s, d


def _asymmetric_groups(u: np.ndarray, b: np.ndarray, within_hamming: bool
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """As :func:`_asymmetric_order`, but items of one tie group (equal distance and score) in any
    order: the tie-aware AP reads only the groups."""
    s, d = _asymmetric_keys(u, b, within_hamming)
    by_score = np.argsort(-s, axis=1)
    if d is None:
        return by_score, s, None
    # then by distance, keeping the score order within a distance (a stable radix sort of int16)
    by_distance = np.argsort(np.take_along_axis(d, by_score, axis=1).astype(np.int16), axis=1, kind="stable")
    return np.take_along_axis(by_score, by_distance, axis=1), s, d


def _relevance(ql: np.ndarray, dl: np.ndarray, multi: bool) -> np.ndarray:
    if multi:
        # float32 matmul is exact for counts below 2**24 and uses BLAS.
        return (ql.astype(np.float32) @ dl.astype(np.float32).T) > 0
    return ql[:, None] == dl[None, :]


def _check_codes(q_packed: Any, db_packed: Any, bits: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    q = _check_packed(q_packed, "query codes")
    db = _check_packed(db_packed, "database codes")
    if q.shape[1] != db.shape[1]:
        raise VsbError(
            f"query codes have {q.shape[1] * 8} bits but database codes have {db.shape[1] * 8}; "
            "encode both with the same code length."
        )
    if q.shape[0] == 0:
        raise VsbError("the query set is empty; pass at least one query code.")
    if db.shape[0] == 0:
        raise VsbError("the database is empty; pass at least one database code.")
    code_bits = q.shape[1] * 8
    if bits is not None and int(bits) != code_bits:
        raise VsbError(
            f"bits={bits} but the packed codes have {q.shape[1]} bytes = {code_bits} bits; "
            f"pass bits={code_bits}."
        )
    return q, db, code_bits


# Single-label chunks hold no (queries x database) matrix, only (queries x bits) histograms; a
# large chunk spreads the per-chunk Python and thread start-up cost over many queries.
SINGLE_LABEL_CHUNK = 1024


def _check_chunk(chunk_size: Any, n_db: int, multi: bool = True) -> int:
    if chunk_size is None:
        return default_chunk_size(n_db) if multi else max(default_chunk_size(n_db), SINGLE_LABEL_CHUNK)
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise VsbError(f"chunk_size must be a positive integer (queries per chunk), got {chunk_size!r}.")
    return int(chunk_size)


# Pairs per block of the counting kernel: 2**17 int32 distances (512 KiB) stay in the L2 cache
# between faiss writing them and ivec_hist counting them.
_BLOCK_PAIRS = 1 << 17
_QUERY_BLOCK = 4
# Below this many (query, database) pairs a second thread costs more than it saves.
_PARALLEL_MIN_PAIRS = 1 << 22


def _count_into(out: np.ndarray, q: np.ndarray, db: np.ndarray, bits: int) -> None:
    import faiss

    nq, nb = len(q), len(db)
    n_bytes = q.shape[1]
    qb = min(nq, _QUERY_BLOCK)
    block = max(1024, _BLOCK_PAIRS // qb)
    dis = np.empty(qb * min(block, nb), dtype=np.int32)
    tmp = np.empty((qb, bits + 1), dtype=np.int32)
    ptr = faiss.swig_ptr
    for lo in range(0, nb, block):
        part = db[lo:lo + block]
        e = len(part)
        for a in range(0, nq, qb):
            m = min(qb, nq - a)
            # (faiss's bundled stubs leave out hammings and ivec_hist, which its SWIG module exports)
            faiss.hammings(ptr(q[a:a + m]), ptr(part), m, e, n_bytes, ptr(dis))  # type: ignore[attr-defined]
            d = dis[:m * e].reshape(m, e)
            for i in range(m):
                faiss.ivec_hist(e, ptr(d[i]), bits + 1, ptr(tmp[i]))  # type: ignore[attr-defined]
            out[a:a + m] += tmp[:m]


def _distance_counts(q: np.ndarray, db: np.ndarray, bits: int) -> np.ndarray:
    """``counts[i, d]`` = database codes at Hamming distance d from ``q[i]``; int64 (Q, bits + 1).

    vsb2net's compiled kernel counts them where it is built (:mod:`vsb2net.hamming_kernel`: popcount
    straight into per-query histograms, no distance matrix; AVX-512 VPOPCNTDQ where the CPU has it).
    Else faiss's C++ kernels do the work: ``hammings`` (XOR + popcount into int32 distances) and
    ``ivec_hist`` (a counting loop), a block of queries x database rows at a time.  numpy needs
    four passes per pair for the same (XOR, popcount, bin offset, bincount, whose counting loop
    alone costs about as much as both faiss kernels; docs/PERFORMANCE.md).  faiss releases the
    GIL, so large inputs are split over ``faiss.omp_get_max_threads()`` threads (the cores, or
    OMP_NUM_THREADS), each counting its own slice of the database.
    """
    nq, nb = len(q), len(db)
    out = np.zeros((nq, bits + 1), dtype=np.int64)
    if nq == 0 or nb == 0:
        return out
    q = np.ascontiguousarray(pad_codes(q))
    db = np.ascontiguousarray(pad_codes(db))
    lib = kernel()
    if lib is not None:
        return histograms(lib, q, db, bits + 1)
    import faiss

    threads = min(max(1, faiss.omp_get_max_threads()), max(1, nb // 1024))
    if threads == 1 or nq * nb < _PARALLEL_MIN_PAIRS:
        _count_into(out, q, db, bits)
        return out
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, nb, threads + 1).astype(int)
    parts = [np.zeros_like(out) for _ in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(_count_into, parts[t], q, db[bounds[t]:bounds[t + 1]], bits) for t in range(threads)]:
            f.result()
    return sum(parts[1:], parts[0])


class _LabelGroups:
    """The database sorted by label, so that a label's items are one contiguous slice.

    With it, the relevant-item histogram of a single-label query costs a scan of its own class
    only, not of the whole database with a (queries x database) relevance mask.
    """

    def __init__(self, db: np.ndarray, dl: np.ndarray):
        order = np.argsort(dl, kind="stable")
        self.db = np.ascontiguousarray(pad_codes(db)[order])
        self.labels = dl[order]

    def counts(self, q: np.ndarray, ql: np.ndarray, bits: int) -> np.ndarray:
        r = np.zeros((len(q), bits + 1), dtype=np.int64)
        for label in np.unique(ql):
            lo = np.searchsorted(self.labels, label, side="left")
            hi = np.searchsorted(self.labels, label, side="right")
            if hi > lo:
                rows = np.flatnonzero(ql == label)
                r[rows] = _distance_counts(q[rows], self.db[lo:hi], bits)
        return r


def _histograms(q: np.ndarray, db: np.ndarray, ql: np.ndarray, dl: np.ndarray, multi: bool, bits: int,
                groups: _LabelGroups | None = None):
    """(n, r) histograms of one query chunk; ``groups`` (single-label only) is reused across chunks."""
    n = _distance_counts(q, db, bits)
    if not multi:
        return n, (groups or _LabelGroups(db, dl)).counts(q, ql, bits)
    # Multi-label relevance is not a slice of the database: mask the (chunk x database) distances.
    n_bins = bits + 1
    idx = hamming_distances(q, db).astype(np.intp)
    idx += (np.arange(q.shape[0], dtype=np.intp) * n_bins)[:, None]
    r = np.bincount(idx[_relevance(ql, dl, multi)], minlength=q.shape[0] * n_bins).reshape(q.shape[0], n_bins)
    return n, r.astype(np.int64)


def distance_histograms(
    q_packed: Any,
    db_packed: Any,
    q_labels: Any,
    db_labels: Any,
    bits: int | None = None,
    *,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-query histograms of the database by Hamming distance.

    Returns ``(n, r)``, int64 arrays of shape (Q, bits + 1): ``n[q, d]`` items and ``r[q, d]``
    relevant items at distance d from query q.  ``bits`` defaults to 8 x bytes per code and must
    equal it when given.  Queries are processed ``chunk_size`` at a time (default
    :func:`default_chunk_size`) to bound memory.
    """
    q, db, bits = _check_codes(q_packed, db_packed, bits)
    ql, dl, multi = _check_labels(q_labels, db_labels, q.shape[0], db.shape[0])
    step = _check_chunk(chunk_size, db.shape[0], multi)
    n_out = np.empty((q.shape[0], bits + 1), dtype=np.int64)
    r_out = np.empty_like(n_out)
    q, db = pad_codes(q), pad_codes(db)
    groups = None if multi else _LabelGroups(db, dl)
    for lo in range(0, q.shape[0], step):
        sl = slice(lo, lo + step)
        n_out[sl], r_out[sl] = _histograms(q[sl], db, ql[sl], dl, multi, bits, groups)
    return n_out, r_out


# ----------------------------------------------------------------------------- evaluation

def _k_list(ks: Any, name: str) -> list[int]:
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, (bool, np.bool_)):
        ks = [ks]
    try:
        ks = list(ks)
    except TypeError:
        raise VsbError(f"{name} must be a positive integer or a list of them, got {ks!r}.") from None
    return [check_count(k, name) for k in ks]


def _unique(values: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(values))


def _given_histograms(histograms: Any, n_q: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        n, r = (to_numpy(x) for x in histograms)
    except (TypeError, ValueError):
        raise VsbError("histograms must be the (n, r) pair that distance_histograms returns.") from None
    if n.shape != (n_q, bits + 1) or r.shape != n.shape:
        raise VsbError(f"histograms of shape {n.shape} and {r.shape} for {n_q} queries of {bits} bits; "
                       f"distance_histograms gives two of shape ({n_q}, {bits + 1}).")
    return n, r


class _Sums:
    """Per-query metrics summed chunk by chunk (the sums run in chunk order, so a caller's
    histograms give bit-identical means) and their means over the queries."""

    def __init__(self, topk: list[int], p_ks: list[int], bits: int, h: np.ndarray):
        self.topk, self.p_ks, self.bits, self.h = topk, p_ks, bits, h
        self.sums = {"map": 0.0, "map_optimistic": 0.0, "map_pessimistic": 0.0}
        self.sums.update({f"map@{k}": 0.0 for k in topk})
        self.prec_k = np.zeros(len(p_ks))
        self.pr_prec = np.zeros(bits + 1)
        self.pr_rec = np.zeros(bits + 1)
        self.no_relevant = 0

    def add(self, n: np.ndarray, r: np.ndarray) -> None:
        h, sums = self.h, self.sums
        sums["map"] += average_precision_tie_aware(n, r, h).sum()
        sums["map_optimistic"] += average_precision_optimistic(n, r, h).sum()
        sums["map_pessimistic"] += average_precision_pessimistic(n, r, h).sum()
        for k in self.topk:
            sums[f"map@{k}"] += average_precision_at_k_tie_aware(n, r, k, h).sum()
        if self.p_ks:
            self.prec_k += precision_at_k_tie_aware(n, r, self.p_ks).sum(axis=0)
        prec, rec = precision_recall_radius(n, r)
        self.pr_prec += prec.sum(axis=0)
        self.pr_rec += rec.sum(axis=0)
        self.no_relevant += int((r.sum(axis=1) == 0).sum())

    def result(self, n_q: int, n_db: int) -> dict:
        result: dict[str, Any] = {key: float(value / n_q) for key, value in self.sums.items()}
        pr_prec = self.pr_prec / n_q
        result.update(
            precision_at_k={"k": self.p_ks, "precision": (self.prec_k / n_q).tolist()},
            pr_curve={
                "radius": list(range(self.bits + 1)),
                "precision": pr_prec.tolist(),
                "recall": (self.pr_rec / n_q).tolist(),
            },
            precision_radius2=float(pr_prec[2]),
            n_queries=int(n_q),
            n_database=int(n_db),
            n_queries_without_relevant=self.no_relevant,
            bits=int(self.bits),
            tie_rule=TIE_RULE,
        )
        return result


def evaluate(
    query_codes: Any,
    db_codes: Any,
    query_labels: Any,
    db_labels: Any,
    *,
    topk: Sequence[int] | int = DEFAULT_TOPK,
    precision_ks: Sequence[int] | None = None,
    chunk_size: int | None = None,
    histograms: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Evaluate Hamming-ranking retrieval with tie-aware metrics (see the module docstring).

    Parameters
    ----------
    query_codes, db_codes : uint8 arrays (Q, B), (N, B)
        Packed codes from :func:`vsb2net.codes.pack_codes`.
    query_labels, db_labels : 1-D class ids, or 2-D 0/1 multi-label matrices
    topk : K values for ``map@K`` (keys use the requested K; values clip K to N)
    precision_ks : K values of the precision@K curve (default :data:`DEFAULT_PRECISION_KS`);
        clipped to N and deduplicated, the effective list is returned.
    chunk_size : queries per chunk (default: ~64 MiB per chunk, :func:`default_chunk_size`)
    histograms : the ``(n, r)`` of :func:`distance_histograms` for these codes and labels, for a
        caller that needs them too: read instead of counted again.  The metrics are bit-identical
        to counting here: the counts are integers and the float sums run over this call's chunks.

    Returns
    -------
    dict of plain Python values: ``map``, ``map_optimistic``, ``map_pessimistic``, ``map@K``
    for each K, ``precision_at_k`` {"k", "precision"}, ``pr_curve`` {"radius", "precision",
    "recall"} (length bits + 1), ``precision_radius2``, ``n_queries``, ``n_database``,
    ``n_queries_without_relevant``, ``bits``, ``tie_rule``.
    """
    q, db, bits = _check_codes(query_codes, db_codes, None)
    ql, dl, multi = _check_labels(query_labels, db_labels, q.shape[0], db.shape[0])
    n_q, n_db = q.shape[0], db.shape[0]
    topk_list = _unique(_k_list(topk, "topk"))
    p_ks = _unique(min(k, n_db) for k in _k_list(
        DEFAULT_PRECISION_KS if precision_ks is None else precision_ks, "precision_ks"))
    step = _check_chunk(chunk_size, n_db, multi)
    h = harmonic_numbers(n_db)
    given = None if histograms is None else _given_histograms(histograms, n_q, bits)
    if given is None:
        q, db = pad_codes(q), pad_codes(db)
        groups = None if multi else _LabelGroups(db, dl)

    sums = _Sums(topk_list, p_ks, bits, h)
    for lo in range(0, n_q, step):
        sl = slice(lo, lo + step)
        if given is None:
            sums.add(*_histograms(q[sl], db, ql[sl], dl, multi, bits, groups))
        else:
            sums.add(given[0][sl], given[1][sl])
    return sums.result(n_q, n_db)
