"""The compiled Hamming kernel (``_hamming.c``, built by ``pip install`` / ``make``), loaded with
ctypes: k nearest neighbours (the ``flat`` index backend), distance histograms (the evaluation's
counts) and a popcount-only pass (the benchmark's floor).  ctypes releases the GIL during a call,
so callers split queries over threads, one per core (``VSB2NET_SCAN_THREADS`` sets another number).

Where the library was not built (no C compiler at install time) :func:`kernel` is None and the
callers take their numpy or faiss paths, with the same results.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

log = logging.getLogger("vsb2net")

#: below this many (query, code) pairs a second thread costs more than it saves
PARALLEL_MIN_PAIRS = 1 << 20


@cache
def kernel() -> ctypes.CDLL | None:
    """The compiled kernel, or None where it was not built (said once, in the log)."""
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_hamming{suffix}"
        if path.is_file():
            lib = ctypes.CDLL(str(path))
            ptr, i64, cint = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
            lib.hamming_knn.argtypes = [ptr, i64, ptr, i64, cint, cint, ptr, ptr]
            lib.hamming_knn.restype = cint
            lib.hamming_hist.argtypes = [ptr, i64, ptr, i64, cint, ptr, cint]
            lib.hamming_hist.restype = cint
            lib.hamming_popcount_pass.argtypes = [ptr, i64, ptr, i64, cint]
            lib.hamming_popcount_pass.restype = i64
            return lib
    log.warning("the Hamming kernel (vsb2net/_hamming*.so) is not built; search and evaluation use their "
                "slower paths. Reinstall with a C compiler present (make install).")
    return None


@cache
def pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="vsb2net-scan")


def query_slices(nq: int, n: int, threads: int | None = None) -> list[slice]:
    """The queries split over the threads (one slice where the work is too small to share)."""
    threads = threads or int(os.environ.get("VSB2NET_SCAN_THREADS", 0)) or os.cpu_count() or 1
    if nq * n < PARALLEL_MIN_PAIRS:
        threads = 1
    bounds = np.linspace(0, nq, min(threads, max(nq, 1)) + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def in_threads(run, nq: int, n: int, threads: int | None = None) -> list:
    """``run(slice)`` over the query slices, in the pool when there are several."""
    parts = query_slices(nq, n, threads)
    if len(parts) == 1:
        return [run(parts[0])]
    return [f.result() for f in [pool(len(parts)).submit(run, part) for part in parts]]


def histograms(lib: ctypes.CDLL, q: np.ndarray, db: np.ndarray, nbins: int) -> np.ndarray:
    """``counts[i, d]`` = codes of ``db`` at distance d from ``q[i]``; int64 (Q, nbins).  Codes
    padded to :func:`vsb2net.codes.padded_bytes` (4 bytes or a multiple of 8)."""
    out = np.zeros((len(q), nbins), np.int64)

    def run(part: slice) -> None:
        qq = np.ascontiguousarray(q[part])
        if lib.hamming_hist(qq.ctypes.data, len(qq), db.ctypes.data, len(db), q.shape[1],
                            out[part].ctypes.data, nbins) != 0:
            raise MemoryError("the Hamming histogram kernel failed (out of memory, or codes over 1024 bits)")

    if len(q) and len(db):
        in_threads(run, len(q), len(db))
    return out
