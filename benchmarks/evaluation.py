"""Tie-aware mAP@all: the histogram method of vsb2net.evaluation.retrieval against an argsort reference.

    .venv/bin/python benchmarks/evaluation.py                      # 10,000 x 1,000,000 x 64 bits
    .venv/bin/python benchmarks/evaluation.py --queries 1000 --database 100000   # a quick look

Random codes and labels (--classes classes, uniform).  The histogram method
(vsb2net.evaluation.retrieval.distance_histograms + average_precision_tie_aware, the code behind
``evaluate``) scores every query; the reference, per query: Hamming distances to the whole
database, a stable argsort, the tie groups of the sorted list and the same closed-form
tie-aware AP per group, with numpy's default argsort (as popular hashing evaluation code does)
and with its stable radix sort (its fastest for small integers), runs on the first --ref-queries
queries only and its time is scaled up
linearly to all queries (it is linear in the number of queries).  The histogram method as
vsb2net.evaluation.retrieval did it before its faiss kernels (numpy popcounts, np.bincount over a query x
database matrix) runs on those queries too.  The methods take turns, --rounds times, each on its
next slice of queries, so that a busy shared machine slows all alike.  All must give the same APs
on the reference's queries.  Prints queries per second, the speed-up, and
peak memory: tracemalloc's peak of the histogram method's own allocations (numpy reports its
buffers to tracemalloc) and the process's maximum resident set size.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vsb2net.codes import hamming_distances  # noqa: E402
from vsb2net.evaluation import retrieval as metrics  # noqa: E402


def histogram_map(q, db, ql, dl, bits):
    n, r = metrics.distance_histograms(q, db, ql, dl, bits)
    return metrics.average_precision_tie_aware(n, r, metrics.harmonic_numbers(len(db)))


def numpy_histogram_ap(q, db, ql, dl, h, bits, chunk=8):
    """The histogram method as vsb2net.evaluation.retrieval did it before faiss's kernels: per chunk a
    (queries x database) bin-index matrix from numpy popcounts, counted by np.bincount, and a
    boolean relevance mask for the relevant-item histogram."""
    out = []
    for lo in range(0, len(q), chunk):
        qc, lc = q[lo:lo + chunk], ql[lo:lo + chunk]
        idx = hamming_distances(qc, db).astype(np.intp)
        idx += (np.arange(len(qc), dtype=np.intp) * (bits + 1))[:, None]
        size = len(qc) * (bits + 1)
        n = np.bincount(idx.ravel(), minlength=size).reshape(len(qc), bits + 1)
        r = np.bincount(idx[lc[:, None] == dl[None, :]], minlength=size).reshape(len(qc), bits + 1)
        out.append(metrics.average_precision_tie_aware(n, r, h))
    return np.concatenate(out)


REFERENCE_SORTS = {
    # numpy's default argsort, as popular hashing evaluation code calls it
    "default": None,
    # a radix sort for small integers: numpy's fastest argsort of uint16 distances
    "stable": "stable",
}


def reference_ap(q, db, ql, dl, h, kind=None):
    """Tie-aware AP of each query, by sorting the database by distance (no histograms)."""
    out = np.empty(len(q))
    for i in range(len(q)):
        d = hamming_distances(q[i:i + 1], db)[0]
        order = np.argsort(d, kind=kind)
        ds = d[order]
        rel = dl[order] == ql[i]
        starts = np.flatnonzero(np.concatenate(([True], ds[1:] != ds[:-1])))
        n = np.diff(np.append(starts, len(ds)))
        r = np.add.reduceat(rel.astype(np.int64), starts)
        out[i] = metrics.average_precision_tie_aware(n, r, h)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--database", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--ref-queries", type=int, default=200, help="queries the reference scores (time scaled up)")
    p.add_argument("--rounds", type=int, default=10, help="turns the two methods take (same load for both)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    rng = np.random.default_rng(a.seed)
    nb = a.bits // 8
    db = rng.integers(0, 256, (a.database, nb), dtype=np.uint8)
    q = rng.integers(0, 256, (a.queries, nb), dtype=np.uint8)
    dl = rng.integers(0, a.classes, a.database)
    ql = rng.integers(0, a.classes, a.queries)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start; numpy {np.__version__}")
    print(f"data: {a.queries} queries x {a.database} database codes x {a.bits} bits, {a.classes} classes")

    # The two methods take turns on slices of the queries, so that both see the same machine load
    # (this machine is shared); the histogram method pays its per-call set-up once per round.
    n_ref = min(a.ref_queries, a.queries)
    rounds = max(1, min(a.rounds, n_ref))
    h = metrics.harmonic_numbers(a.database)
    ap_hist, t_hist, ap_old, t_old_sub = [], 0.0, [], 0.0
    ap_ref = {name: [] for name in REFERENCE_SORTS}
    t_ref_sub = dict.fromkeys(REFERENCE_SORTS, 0.0)
    for r in range(rounds):
        sl = slice(r * a.queries // rounds, (r + 1) * a.queries // rounds)
        t0 = time.perf_counter()
        ap_hist.append(histogram_map(q[sl], db, ql[sl], dl, a.bits))
        t_hist += time.perf_counter() - t0
        sr = slice(r * n_ref // rounds, (r + 1) * n_ref // rounds)
        for name, kind in REFERENCE_SORTS.items():
            t0 = time.perf_counter()
            ap_ref[name].append(reference_ap(q[sr], db, ql[sr], dl, h, kind))
            t_ref_sub[name] += time.perf_counter() - t0
        t0 = time.perf_counter()
        ap_old.append(numpy_histogram_ap(q[sr], db, ql[sr], dl, h, a.bits))
        t_old_sub += time.perf_counter() - t0
    ap_hist = np.concatenate(ap_hist)
    print(f"histogram method: mAP@all {ap_hist.mean():.6f} in {t_hist:.1f} s "
          f"({a.queries / t_hist:.0f} queries/s, {t_hist / a.queries * 1e3:.2f} ms/query; {rounds} calls)")
    max_diff = 0.0
    for name in REFERENCE_SORTS:
        t_ref = t_ref_sub[name] * a.queries / n_ref
        diff = float(np.abs(np.concatenate(ap_ref[name]) - ap_hist[:n_ref]).max())
        max_diff = max(max_diff, diff)
        scaled = "" if n_ref == a.queries else f", scaled up linearly from {n_ref} queries ({t_ref_sub[name]:.1f} s)"
        print(f"argsort reference ({name} np.argsort): {t_ref:.1f} s for {a.queries} queries{scaled} "
              f"({n_ref / t_ref_sub[name]:.0f} queries/s, {t_ref_sub[name] / n_ref * 1e3:.2f} ms/query); "
              f"speed-up of the histogram method: {t_ref / t_hist:.1f}x; same APs: max |difference| {diff:.1e}")
    diff = float(np.abs(np.concatenate(ap_old) - ap_hist[:n_ref]).max())
    max_diff = max(max_diff, diff)
    print(f"numpy histogram method (before faiss kernels): {t_old_sub / n_ref * 1e3:.2f} ms/query on the same "
          f"{n_ref} queries; the histogram method is {t_old_sub * a.queries / n_ref / t_hist:.1f}x faster; "
          f"same APs: max |difference| {diff:.1e}")

    n_mem = min(a.queries, 1000)
    tracemalloc.start()
    histogram_map(q[:n_mem], db, ql[:n_mem], dl, a.bits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_mb = (db.nbytes + q.nbytes + dl.nbytes + ql.nbytes) / 2**20
    print(f"peak memory: histogram method allocates at most {peak / 2**20:.1f} MiB (tracemalloc, "
          f"{n_mem} queries; chunks bound it, it does not grow with the query count); process max RSS "
          f"{maxrss:.0f} MiB (input data {data_mb:.0f} MiB)")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0 if max_diff < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
