"""k-NN search speed over packed binary codes: vsb2net's flat kernel, faiss flat, numpy, HammingIndex.

    .venv/bin/python benchmarks/search.py                       # 1,000 queries x 1,000,000 codes
    .venv/bin/python benchmarks/search.py --database 100000 --bits 64   # a quick look
    .venv/bin/python benchmarks/search.py --approximate        # also faiss-ivf and faiss-mih

For each code length and k: random uniform codes, top k for every query, by

* ``faiss IndexBinaryFlat``: faiss's own exact scan (``index.search``, its defaults: a heap);
* ``faiss IndexBinaryFlat, use_heap=False``: the same with faiss's selection by counting;
* ``numpy popcount + argpartition``: vsb2net.codes.hamming_distances over a block of queries, then
  ``np.argpartition`` for the k smallest and a sort of those k (distance, then position);
* ``flat kernel``: vsb2net's C kernel alone (vsb2net/_hamming.c: selection by counting over
  the possible distances, query tiles over cached database blocks, one thread per core);
* ``popcount-only pass``: the same kernel's scan computing and summing every distance, selecting
  nothing: the floor a scan cannot beat; every method's time is given as a multiple of it;
* ``HammingIndex (flat)`` (the default backend) and ``HammingIndex (faiss-flat)``: the index API,
  including what it adds to the scan (tie order by position, id and metadata lookup, one Hits per
  query);
* with --approximate, HammingIndex over faiss-ivf (nlist = sqrt(N), default nprobe) and
  faiss-mih (default nhash/nflip), with their recall@k against the exact top k (as sets of
  distances, since ties make the id sets arbitrary).

The methods take turns, --rounds times, each on its next slice of the queries, so that a busy
shared machine slows all alike; the load average is printed at start and end.  Each exact method's
distances are checked against faiss's (the script exits 1 on a mismatch).  The measured memory
read bandwidth is printed for reference.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from vsb2net.codes import hamming_distances, pad_codes  # noqa: E402
from vsb2net.index import DEFAULT_BACKEND, HammingIndex  # noqa: E402
from vsb2net.index import scan_backend as scan  # noqa: E402


def memory_bandwidth(mib: int = 512, repeats: int = 5) -> float:
    """Read bandwidth in bytes/s: the best of ``repeats`` sums of a ``mib`` MiB array, one slice per core."""
    a = np.ones(mib * 2**20 // 8, dtype=np.float64)
    threads = os.cpu_count() or 1
    parts = np.array_split(a, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = min(best, time.perf_counter() - t0)
    return a.nbytes / best


def numpy_topk(q: np.ndarray, db: np.ndarray, k: int, block: int = 16) -> tuple[np.ndarray, np.ndarray]:
    dist = np.empty((len(q), k), dtype=np.int64)
    idx = np.empty((len(q), k), dtype=np.int64)
    for lo in range(0, len(q), block):
        d = hamming_distances(q[lo:lo + block], db)
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, pd), axis=1)
        idx[lo:lo + block] = np.take_along_axis(part, order, axis=1)
        dist[lo:lo + block] = np.take_along_axis(pd, order, axis=1)
    return dist, idx


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--database", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, nargs="+", default=[32, 64])
    p.add_argument("-k", type=int, nargs="+", default=[10, 100])
    p.add_argument("--approximate", action="store_true", help="also faiss-ivf and faiss-mih (slower to build)")
    p.add_argument("--rounds", type=int, default=5, help="turns the methods take (same load for all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--histograms", action="store_true",
                   help="instead: the evaluation's distance counts, the kernel against the faiss path")
    a = p.parse_args()
    if a.histograms:
        return histogram_counts(a)
    import faiss

    bw = memory_bandwidth()
    print(f"machine: {platform.machine()} ({_cpu()}), {os.cpu_count()} cores, faiss {faiss.__version__} with "
          f"{faiss.omp_get_max_threads()} threads, numpy {np.__version__}; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"measured memory read bandwidth: {bw / 1e9:.1f} GB/s")
    print(f"{a.queries} queries, {a.database} database codes; 'x faiss' = faiss IndexBinaryFlat's time / this "
          "method's, 'x popcount' = this method's time / the popcount-only pass's\n")
    print(f"{'bits':>4} {'k':>4}  {'method':<36} {'queries/s':>10} {'seconds':>8} {'x faiss':>8} {'x popcount':>10}"
          "  note")
    rng = np.random.default_rng(a.seed)
    failed = False
    for bits in a.bits:
        db = rng.integers(0, 256, (a.database, bits // 8), dtype=np.uint8)
        q = rng.integers(0, 256, (a.queries, bits // 8), dtype=np.uint8)
        for k in a.k:
            failed |= _one_setting(a, bits, k, db, q, faiss)
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 1 if failed else 0


def _methods(a, bits: int, k: int, db: np.ndarray, faiss) -> tuple[dict, dict]:
    flat = faiss.IndexBinaryFlat(bits)
    flat.add(db)
    counting = faiss.IndexBinaryFlat(bits)
    counting.add(db)
    counting.use_heap = False  # faiss's own selection by counting, not its default
    padded = pad_codes(db)
    methods = {"faiss IndexBinaryFlat": lambda x: flat.search(x, k)[0],
               "faiss IndexBinaryFlat, use_heap=False": lambda x: counting.search(x, k)[0],
               "numpy popcount + argpartition": lambda x: numpy_topk(x, db, k)[0],
               "flat kernel (scan_backend.knn)": lambda x: scan.knn(pad_codes(x), padded, k)[0],
               "popcount-only pass (the floor)": lambda x: scan.popcount_pass(pad_codes(x), padded)}
    flat.search(db[:8], k)  # start faiss's threads outside the timing
    notes = {}
    backends = [DEFAULT_BACKEND, "faiss-flat"] + (["faiss-ivf", "faiss-mih"] if a.approximate else [])
    for backend in backends:
        index = HammingIndex(bits, backend)
        _, t_build = timed(index.add, db)
        name = f"HammingIndex ({backend})"
        methods[name] = lambda x, index=index: [h.distances for h in index.search(x, k)]
        notes[name] = (f"{index.backend.params}; " if index.backend.params else "") + f"build {t_build:.1f} s"
    return methods, notes


def _one_setting(a, bits: int, k: int, db: np.ndarray, q: np.ndarray, faiss) -> bool:
    methods, notes = _methods(a, bits, k, db, faiss)
    # Methods take turns on slices of the queries, so that all see the same machine load.
    seconds = dict.fromkeys(methods, 0.0)
    found: dict[str, list] = {m: [] for m in methods}
    for r in range(a.rounds):
        sl = slice(r * a.queries // a.rounds, (r + 1) * a.queries // a.rounds)
        for m, fn in methods.items():
            out, t = timed(fn, q[sl])
            seconds[m] += t
            found[m].append(out)
    exact = np.sort(np.concatenate(found["faiss IndexBinaryFlat"]), axis=1)
    base, floor = seconds["faiss IndexBinaryFlat"], seconds["popcount-only pass (the floor)"]
    failed = False
    for m in methods:
        note = notes.get(m, "")
        if m.startswith("popcount"):
            note = "every distance computed and summed, nothing selected"
        elif m in ("HammingIndex (faiss-ivf)", "HammingIndex (faiss-mih)"):
            rows = [d for part in found[m] for d in part]  # approximate methods may return fewer than k
            note += f"; recall@{k} {np.mean([_recall(d, e) for d, e in zip(rows, exact, strict=True)]):.3f}"
        elif not all(np.array_equal(d, e) for d, e in zip([d for p in found[m] for d in p], exact, strict=True)):
            failed = True
            note += "; WRONG DISTANCES"
        print(f"{bits:>4} {k:>4}  {m:<36} {a.queries / seconds[m]:>10.0f} {seconds[m]:>8.2f} "
              f"{base / seconds[m]:>8.2f} {seconds[m] / floor:>10.2f}  {note}")
    print()
    return failed


def histogram_counts(a) -> int:
    """metrics._distance_counts (what every evaluation row counts) with vsb2net's kernel and with the
    faiss path it replaced (hammings + ivec_hist), on the same queries, taking turns."""
    from vsb2net.evaluation import retrieval as metrics

    kernel = metrics.kernel
    print(f"machine: {platform.machine()} ({_cpu()}), {os.cpu_count()} cores; load average "
          f"{os.getloadavg()[0]:.1f} at start")
    print(f"distance histograms of {a.queries} queries x {a.database} codes\n")
    rng = np.random.default_rng(a.seed)
    failed = False
    for bits in a.bits:
        db = rng.integers(0, 256, (a.database, bits // 8), dtype=np.uint8)
        q = rng.integers(0, 256, (a.queries, bits // 8), dtype=np.uint8)
        seconds = {"kernel": 0.0, "faiss": 0.0}
        out: dict[str, list] = {"kernel": [], "faiss": []}
        for r in range(a.rounds):
            sl = slice(r * a.queries // a.rounds, (r + 1) * a.queries // a.rounds)
            for name in seconds:
                metrics.kernel = kernel if name == "kernel" else (lambda: None)
                res, t = timed(metrics._distance_counts, q[sl], db, bits)
                seconds[name] += t
                out[name].append(res)
        metrics.kernel = kernel
        same = all(np.array_equal(x, y) for x, y in zip(out["kernel"], out["faiss"], strict=True))
        failed |= not same
        print(f"{bits:>4} bits: kernel {seconds['kernel']:.2f} s, faiss path {seconds['faiss']:.2f} s, "
              f"{seconds['faiss'] / seconds['kernel']:.2f}x; counts identical: {same}")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 1 if failed else 0


def _cpu() -> str:
    """The CPU model and the kernel path this process takes (AVX-512 VPOPCNTDQ or portable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    vector = "avx512_vpopcntdq" in text.split() and os.environ.get("VSB2NET_SCALAR_SCAN") != "1"
    return f"{model}; flat kernel path: {'AVX-512 VPOPCNTDQ' if vector else 'portable popcount'}"


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Fraction of the exact top-k distance multiset that the approximate list matches."""
    f_vals, f_counts = np.unique(found, return_counts=True)
    e_vals, e_counts = np.unique(exact, return_counts=True)
    common = dict(zip(e_vals.tolist(), e_counts.tolist()))
    return sum(min(c, common.get(v, 0)) for v, c in zip(f_vals.tolist(), f_counts.tolist())) / len(exact)


if __name__ == "__main__":
    sys.exit(main())
