"""How ``HammingIndex`` turns a backend's candidates into ranked hits.

A plain search sorts each result by (distance, position), so the same index and query always give
the same list and, for the exact backends, the top k is exactly the k first items by (distance,
position).  A search with tie groups (``ties=True``, or ``real=u``: what ``vsb2net search`` and
``serve`` use) grows the candidate list until the group at the k-th distance is complete, counts
each distance's group and ranks the candidates in the served order, which
:func:`vsb2net.served_order.served_order` defines for the index and the evaluation alike.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vsb2net.served_order import EMPTY, asymmetric_scores, served_order

from .backend import Backend
from .hits import Hits

#: builds one query's Hits from (distances, positions) and Hits' optional fields
MakeHits = Callable[..., Hits]


def by_distance(dist: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Q, k) backend results sorted by (distance, position) row by row, with the number of
    filled slots per row: position -1 marks an empty slot, which sorts last (distance EMPTY)."""
    dist = np.asarray(dist, dtype=np.int32).reshape(len(pos), -1)
    pos = np.asarray(pos, dtype=np.int64).reshape(len(dist), -1)
    valid = pos >= 0
    dist = np.where(valid, dist, EMPTY)
    order = np.lexsort((pos, dist), axis=-1)
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(pos, order, axis=1), valid.sum(axis=1)


def rows_by_distance(dist: np.ndarray, pos: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(distances, positions) per row, sorted by (distance, position), empty slots dropped."""
    dist, pos, counts = by_distance(dist, pos)
    return [(dist[i, :c], pos[i, :c]) for i, c in enumerate(counts.tolist())]


def with_ties(backend: Backend, n: int, q: np.ndarray, u: np.ndarray | None, k: int, max_ties: int,
              make_hits: MakeHits) -> list[Hits]:
    """Every hit up to the k-th distance, ranked (:func:`ranked`), per query, from a backend holding
    ``n`` codes.  Asks the backend for more hits, four times as many each round, only for the queries
    whose group at the k-th distance ran past the list (at most k + max_ties: then the group is
    counted that far)."""
    limit = min(n, k + max_ties)
    want = min(limit, max(2 * k, k + 32))
    out: list[Any] = [None] * len(q)
    todo = np.arange(len(q))
    while len(todo):
        dist, pos, counts = by_distance(*backend.search(q[todo], want))
        rows = np.arange(len(todo))
        # the k-th distance (-1 for a query the backend found nothing for: it keeps nothing)
        kth = np.where(counts > 0, dist[rows, np.clip(np.minimum(k, counts) - 1, 0, None)], -1)
        complete = (want >= n) | (counts < want) | (dist[rows, np.maximum(counts - 1, 0)] > kth)
        done = complete | (want >= limit)
        hits = ranked(backend, dist[done], pos[done], kth[done], None if u is None else u[todo[done]], k,
                      complete[done], make_hits)
        for i, h in zip(todo[done].tolist(), hits):
            out[i] = h
        todo = todo[~done]
        want = min(limit, 4 * want)
    return out


def ranked(backend: Backend, d: np.ndarray, p: np.ndarray, kth: np.ndarray, u: np.ndarray | None, k: int,
           exact: np.ndarray, make_hits: MakeHits) -> list[Hits]:
    """Rows of candidates (d, p) (empty slots: distance EMPTY) cut at their k-th distance ``kth``:
    the first k in the served order (scored with the queries' real-valued codes ``u`` where given),
    with each distance's group counted (``exact``: whether the row's last group is complete)."""
    keep = d <= kth[:, None]
    rows, cols = np.nonzero(keep)
    width = backend.bits + 1
    hist = np.bincount(rows * width + d[rows, cols], minlength=len(d) * width).reshape(len(d), width)
    d = np.where(keep, d, EMPTY)
    scores = None
    if u is not None and len(rows):
        scores = np.zeros(d.shape)
        scores[rows, cols] = asymmetric_scores(backend.codes(p[rows, cols]), u, rows)
    order = served_order(d, p, scores)[:, :k]
    d, p = np.take_along_axis(d, order, axis=1), np.take_along_axis(p, order, axis=1)
    if scores is not None:
        scores = np.take_along_axis(scores, order, axis=1)
    out = []
    for i, c in enumerate((d != EMPTY).sum(axis=1).tolist()):
        groups = {int(v): int(hist[i, v]) for v in np.flatnonzero(hist[i])}
        out.append(make_hits(d[i, :c], p[i, :c], scores=None if scores is None else scores[i, :c],
                             groups=groups, groups_exact=bool(exact[i])))
    return out
