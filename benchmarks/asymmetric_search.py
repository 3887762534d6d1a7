"""What asymmetric search costs: HammingIndex.search with the queries' real-valued codes against
the plain Hamming k-NN search, on codes clustered like a model's.

    .venv/bin/python benchmarks/asymmetric_search.py                  # 1,000 queries x 1,000,000 codes
    .venv/bin/python benchmarks/asymmetric_search.py --database 100000  # a quick look

The database: ``--clusters`` centre codes (classes), each item its centre with every bit flipped
with probability ``--flip``, so that items pile up at few distances as a trained model's codes do
(uniform random codes have far smaller tie groups).  A query's real-valued code is a centre's
+-1 code times |N(0, 1)| magnitudes plus N(0, ``--noise``) (its sign flips some bits).  For each
code length and k, on the default (flat) backend:

* ``plain``: ``index.search(q, k)``: k hits, ties by position;
* ``ties``: ``search(q, k, ties=True)``: the whole tie group at the k-th distance fetched and
  counted (up to k + max_ties hits asked of the backend);
* ``asymmetric``: ``search(q, k, real=u)``: as ``ties``, and every candidate scored by its inner
  product with the query's real-valued code, the order within each distance.

Printed: ms per query (a batch of all queries, best of ``--rounds``), the ratio to ``plain``, the
mean number of candidates per query (items at distances up to the k-th) and the share of queries
whose tie group passed max_ties (their order then covers the first max_ties of the group).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vsb2net.codes import pack_codes  # noqa: E402
from vsb2net.index import HammingIndex  # noqa: E402


def clustered(rng: np.random.Generator, n: int, bits: int, clusters: int, flip: float) -> tuple[np.ndarray, np.ndarray]:
    """(packed codes (n, bits/8), the +-1 centres (clusters, bits))."""
    centres = rng.choice([-1.0, 1.0], size=(clusters, bits)).astype(np.float32)
    out = np.empty((n, bits // 8), np.uint8)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        x = centres[rng.integers(0, clusters, m)]
        x *= np.where(rng.random((m, bits)) < flip, -1.0, 1.0).astype(np.float32)
        out[lo:lo + m] = pack_codes(x)
    return out, centres


def best_of(rounds: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--database", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, nargs="+", default=[32, 64])
    p.add_argument("-k", type=int, nargs="+", default=[10, 100])
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--flip", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(f"{a.queries:,} queries x {a.database:,} codes ({a.clusters} clusters, bit flips {a.flip}), "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("| bits | k | search | ms/query | x plain | candidates/query | groups over max_ties |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for bits in a.bits:
        rng = np.random.default_rng(a.seed)
        db, centres = clustered(rng, a.database, bits, a.clusters, a.flip)
        index = HammingIndex(bits)
        index.add(db)
        u = centres[rng.integers(0, a.clusters, a.queries)] * np.abs(rng.normal(size=(a.queries, bits)))
        u = (u + rng.normal(scale=a.noise, size=u.shape)).astype(np.float32)
        q = pack_codes(u)
        for k in a.k:
            runs = {"plain": {}, "ties": {"ties": True}, "asymmetric": {"real": u}}
            base = None
            for name, kw in runs.items():
                seconds, hits = best_of(a.rounds, partial(index.search, q, k, **kw))
                base = base or seconds
                if name == "plain":
                    cand, over = "", ""
                else:
                    cand = f"{np.mean([sum(h.groups.values()) for h in hits]):,.0f}"
                    over = f"{np.mean([not h.groups_exact for h in hits]):.1%}"
                print(f"| {bits} | {k} | {name} | {1000 * seconds / a.queries:.3f} | {seconds / base:.2f} | "
                      f"{cand} | {over} |", flush=True)
    print(f"load at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
