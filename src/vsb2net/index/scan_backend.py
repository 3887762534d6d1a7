"""``flat``: the exact scan of vsb2net, the default backend.

k-NN comes from a small C kernel (``vsb2net/_hamming.c`` through :mod:`vsb2net.hamming_kernel`): selection by
counting over the few possible distances instead of a heap, and tiles of queries scanning a block
of the database while it is in cache.  Ties are broken by position (the order codes were added),
so the top k is one exact set, not any k of the tied items.  One call per core, on slices of the
queries (ctypes releases the GIL; ``VSB2NET_SCAN_THREADS`` sets another number).
``benchmarks/search.py`` measures it against faiss ``IndexBinaryFlat`` and a popcount-only pass.

Range search counts distances with numpy's popcount in blocks.  Where the kernel was not built
(no C compiler at install time), k-NN falls back to numpy with the same results, more slowly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vsb2net.codes import hamming_distances, pad_codes, padded_bytes
from vsb2net.errors import VsbError
from vsb2net.hamming_kernel import in_threads, kernel

from .backend import BACKENDS, Backend


def knn(queries: np.ndarray, codes: np.ndarray, k: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (distance, position) pairs of each query over ``codes`` (both padded to
    :func:`vsb2net.codes.padded_bytes`): int32 distances and int64 positions (Q, k), -1 past the end."""
    nq, nbytes = queries.shape
    dist = np.empty((nq, k), np.int32)
    pos = np.empty((nq, k), np.int64)
    lib = kernel()
    if lib is None:
        return _numpy_knn(queries, codes, k, dist, pos)

    def run(part: slice) -> None:
        q = np.ascontiguousarray(queries[part])
        if lib.hamming_knn(q.ctypes.data, len(q), codes.ctypes.data, len(codes), nbytes, k,
                           dist[part].ctypes.data, pos[part].ctypes.data) != 0:
            raise MemoryError("the Hamming k-NN kernel ran out of memory")

    in_threads(run, nq, len(codes), threads)
    return dist, pos


def popcount_pass(queries: np.ndarray, codes: np.ndarray, threads: int | None = None) -> int:
    """Every distance computed and summed, nothing selected: the floor a scan cannot beat."""
    lib = kernel()
    if lib is None:
        raise VsbError("the Hamming kernel is not built; reinstall with a C compiler (make install).")
    def run(part: slice) -> int:
        q = np.ascontiguousarray(queries[part])
        return int(lib.hamming_popcount_pass(q.ctypes.data, len(q), codes.ctypes.data, len(codes), queries.shape[1]))

    return sum(in_threads(run, len(queries), len(codes), threads))


def _numpy_knn(queries: np.ndarray, codes: np.ndarray, k: int, dist: np.ndarray, pos: np.ndarray):
    dist.fill(-1)
    pos.fill(-1)
    kk = min(k, len(codes))
    for lo in range(0, len(queries), 64):
        d = hamming_distances(queries[lo:lo + 64], codes)
        # a stable sort keeps the earlier position first among equal distances
        order = np.argsort(d, axis=1, kind="stable")[:, :kk]
        dist[lo:lo + 64, :kk] = np.take_along_axis(d, order, axis=1)
        pos[lo:lo + 64, :kk] = order
    return dist, pos


@BACKENDS.register("flat", help="exact scan: vsb2net's counting k-NN kernel; the default")
class FlatScan(Backend):
    name = "flat"

    def __init__(self, bits: int, **params: Any):
        super().__init__(bits)
        self.nbytes = padded_bytes(bits // 8)
        self._parts: list[np.ndarray] = []
        self._codes = np.zeros((0, self.nbytes), np.uint8)

    @property
    def params(self) -> dict:
        return {}

    def _all(self) -> np.ndarray:
        if self._parts:
            self._codes = np.ascontiguousarray(np.concatenate([self._codes, *self._parts]))
            self._parts = []
        return self._codes

    def __len__(self) -> int:
        return len(self._codes) + sum(len(p) for p in self._parts)

    def add(self, codes: np.ndarray) -> None:
        if len(self) + len(codes) >= 2**31:
            raise VsbError("the flat backend holds at most 2^31 - 1 codes; split the collection into several indexes.")
        self._parts.append(pad_codes(np.asarray(codes, np.uint8), self.nbytes))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return knn(pad_codes(queries, self.nbytes), self._all(), k)

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        codes, out = self._all(), []
        q = pad_codes(queries, self.nbytes)
        for lo in range(0, len(q), 64):
            for row in hamming_distances(q[lo:lo + 64], codes):
                hit = np.flatnonzero(row <= radius)
                out.append((row[hit].astype(np.int32), hit.astype(np.int64)))
        return out

    returns_codes = True

    def codes(self, positions: np.ndarray) -> np.ndarray:
        return self._all()[positions, :self.bits // 8]

    def to_bytes(self) -> bytes:
        return self._all().tobytes()

    @classmethod
    def from_bytes(cls, bits: int, params: dict, payload: bytes, count: int, where: str) -> FlatScan:
        self = cls(bits, **params)
        if len(payload) != count * self.nbytes:
            raise VsbError(f"index {where}: {len(payload)} bytes of codes for {count} codes of {self.nbytes} bytes; "
                           "rebuild the index.")
        self._codes = np.frombuffer(payload, np.uint8).reshape(count, self.nbytes).copy()
        return self
