"""faiss binary indexes behind the ``HammingIndex`` interface.

* ``faiss-flat``: ``IndexBinaryFlat``, an exact scan (popcount over all codes).  The default:
  on one machine it is fast enough for millions of codes (docs/PERFORMANCE.md).
* ``faiss-ivf``: ``IndexBinaryIVF``, codes split into ``nlist`` inverted lists by a binary
  k-means; a query scans the ``nprobe`` nearest lists.  Exact when ``nprobe == nlist``.
* ``faiss-mih``: ``IndexBinaryMultiHash``, multi-index hashing (Norouzi et al.): the code is cut
  into ``nhash`` substrings of ``b`` bits, each with a hash table; a query probes the buckets
  within ``nflip`` bit flips of its substrings.  Range search raises ``nflip`` to
  ``radius // nhash`` so that it is exact (pigeonhole: an item within radius r has a substring
  within floor(r / nhash) of the query's); k-NN search is approximate.

faiss labels are the insertion positions (codes are added without ids), which is what
``HammingIndex`` maps to its ids.  ``range_search`` in faiss keeps distances < radius, so the
backends pass radius + 1.

The flat and IVF backends store codes padded with zero bytes to 4 bytes or a multiple of 8
(distances are unchanged): faiss has popcount kernels for those sizes and a byte loop for the
rest, so 16- and 48-bit codes search 2x (k-NN) to 5x (range) faster padded.
"""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from vsb2net.codes import pad_codes, padded_bytes
from vsb2net.errors import VsbError

from .backend import BACKENDS, Backend, Param


def _faiss():
    import faiss

    return faiss


_DIRECT_MAP_LOCK = threading.Lock()


def _int_param(params: dict, name: str, default: Any, low: int = 1) -> Any:
    value = params.get(name, default)
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise VsbError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


class _FaissBackend(Backend):
    """Shared plumbing: the faiss index object, search, range search, (de)serialisation."""

    faiss_type: str = ""
    pad: bool = True

    def __init__(self, bits: int, **params: Any):
        super().__init__(bits)
        #: the faiss IndexBinary* object (which class: the subclass's ``_make``), made by the first add
        self._index: Any = None
        self.dim = padded_bytes(bits // 8) * 8 if self.pad else bits

    def _codes(self, codes: np.ndarray) -> np.ndarray:
        return pad_codes(codes, self.dim // 8)

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def _make(self, first_codes: np.ndarray):
        raise NotImplementedError

    def add(self, codes: np.ndarray) -> None:
        codes = self._codes(codes)
        if self._index is None:
            self._index = self._make(codes)
        self._index.add(codes)

    def search(self, queries: np.ndarray, k: int):
        dist, pos = self._index.search(self._codes(queries), k)
        return dist.astype(np.int32, copy=False), pos.astype(np.int64, copy=False)

    def range_search(self, queries: np.ndarray, radius: int):
        lims, dist, pos = self._index.range_search(self._codes(queries), radius + 1)
        return [(dist[lims[i]:lims[i + 1]], pos[lims[i]:lims[i + 1]]) for i in range(len(queries))]

    returns_codes = True

    def _storage(self) -> Any:
        """The IndexBinaryFlat holding the codes in position order (None: IVF, which has none)."""
        return self._index

    def codes(self, positions: np.ndarray) -> np.ndarray:
        nbytes = self.bits // 8
        if self._index is None or not len(positions):
            return np.zeros((0, nbytes), np.uint8)
        store = self._storage()
        if store is None:
            return np.stack([self._reconstruct(int(i)) for i in positions])[:, :nbytes]
        # a view of faiss's own array, made per call: a later add may move it
        flat = np.asarray(_faiss().rev_swig_ptr(store.xb.data(), store.ntotal * store.code_size))
        return flat.reshape(store.ntotal, store.code_size)[positions, :nbytes]

    def _reconstruct(self, position: int) -> np.ndarray:
        return self._index.reconstruct(position)

    def to_bytes(self) -> bytes:
        if self._index is None:
            return b""
        return _faiss().serialize_index_binary(self._index).tobytes()

    @classmethod
    def from_bytes(cls, bits: int, params: dict, payload: bytes, count: int, where: str):
        self = cls(bits, **params)
        if not payload:
            if count:
                raise VsbError(f"index {where}: no faiss data for {count} codes; rebuild the index.")
            return self
        faiss = _faiss()
        try:
            index = faiss.deserialize_index_binary(np.frombuffer(payload, dtype=np.uint8))
        except RuntimeError as exc:
            raise VsbError(f"index {where}: faiss could not read its data ({str(exc).splitlines()[0][:200]}); "
                           "rebuild the index.") from None
        if type(index).__name__ != cls.faiss_type or index.d != self.dim:
            raise VsbError(f"index {where}: expected a {self.dim}-bit {cls.faiss_type}, found a {index.d}-bit "
                           f"{type(index).__name__}; rebuild the index.")
        self._index = index
        self._after_load()
        return self

    def _after_load(self) -> None:
        pass


@BACKENDS.register("faiss-flat", help="exact scan over all codes (faiss IndexBinaryFlat); the default")
class FaissFlat(_FaissBackend):
    faiss_type = "IndexBinaryFlat"

    def __init__(self, bits: int, **params: Any):
        if params:
            raise VsbError(f"backend faiss-flat takes no parameters, got {', '.join(sorted(params))}.")
        super().__init__(bits)

    @property
    def params(self) -> dict:
        return {}

    def _make(self, first_codes):
        return _faiss().IndexBinaryFlat(self.dim)


@BACKENDS.register("faiss-ivf", help="inverted lists over a binary k-means (faiss IndexBinaryIVF); "
                                     "exact when nprobe = nlist")
class FaissIVF(_FaissBackend):
    """``nlist`` (default "auto": about sqrt(N) lists, set from the first ``add``) and ``nprobe``
    (lists scanned per query, default nlist // 8, at least 1)."""

    faiss_type = "IndexBinaryIVF"
    exact = False
    parameters = (Param("nlist", "number of inverted lists (default about sqrt(N), set from the first add)"),
                  Param("nprobe", "lists scanned per query (default nlist // 8; nprobe = nlist: exact)",
                        search_time=True))

    @classmethod
    def exact_params(cls, bits: int) -> dict:
        return {"nlist": 16, "nprobe": 16}

    def __init__(self, bits: int, nlist: Any = "auto", nprobe: Any = None, **params: Any):
        if params:
            raise VsbError(f"backend faiss-ivf takes nlist and nprobe, not {', '.join(sorted(params))}.")
        super().__init__(bits)
        self.nlist = _int_param({"nlist": nlist}, "nlist", "auto")
        self.nprobe = _int_param({"nprobe": nprobe}, "nprobe", None)
        self._quantizer = None

    @property
    def params(self) -> dict:
        return {"nlist": self.nlist, "nprobe": self.nprobe}

    def _make(self, first_codes):
        faiss = _faiss()
        n = len(first_codes)
        if self.nlist == "auto":
            self.nlist = max(1, min(n, int(round(math.sqrt(n)))))
        if self.nlist > n:
            raise VsbError(f"faiss-ivf with nlist={self.nlist} needs at least {self.nlist} codes in the first add "
                           f"to train its lists, got {n}; lower nlist or add more codes at once.")
        # The IVF index does not own a quantizer passed from Python: keep it alive with it.
        self._quantizer = faiss.IndexBinaryFlat(self.dim)
        index = faiss.IndexBinaryIVF(self._quantizer, self.dim, self.nlist)
        index.cp.seed = 1234  # k-means initialisation: same codes, same lists
        index.verbose = False
        index.train(first_codes)
        self._index = index
        self.set_search_params(nprobe=self.nprobe)
        return index

    def _after_load(self) -> None:
        self.nlist = int(self._index.nlist)
        self.set_search_params(nprobe=self.nprobe)

    def _storage(self) -> Any:
        return None

    def _reconstruct(self, position: int) -> np.ndarray:
        # IVF keeps codes in its lists; a position -> list map is made on first use (8 bytes a
        # code) and faiss keeps it up to date on later adds. serve reads codes from two threads
        # (searches, and searches by an item), so only one of them may make the map.
        if self._index.direct_map.no():
            with _DIRECT_MAP_LOCK:
                if self._index.direct_map.no():
                    self._index.make_direct_map()
        return self._index.reconstruct(position)

    def set_search_params(self, nprobe: Any = None, **_: Any) -> None:
        if nprobe is not None:
            self.nprobe = _int_param({"nprobe": nprobe}, "nprobe", None)
        if self._index is not None:
            effective = self.nprobe if self.nprobe is not None else max(1, self.nlist // 8)
            self._index.nprobe = min(effective, self.nlist)


@BACKENDS.register("faiss-mih", help="multi-index hashing (faiss IndexBinaryMultiHash): exact range search, "
                                     "approximate k-NN")
class FaissMIH(_FaissBackend):
    """``nhash`` hash tables (default bits // 16, at least 1) of ``bits // nhash`` bits each;
    ``nflip`` bit flips probed per table in k-NN search (default 2)."""

    faiss_type = "IndexBinaryMultiHash"
    exact = False
    pad = False  # the hash tables split the code itself; zero padding would only waste a table
    parameters = (Param("nhash", "number of hash tables (default bits/16)"),
                  Param("nflip", "bit flips probed per table in k-NN search (default 2)", minimum=0,
                        search_time=True))

    @classmethod
    def exact_params(cls, bits: int) -> dict:
        return {"nflip": bits // 2}  # every bucket within half the code of each substring: all of them

    def __init__(self, bits: int, nhash: Any = None, nflip: Any = 2, **params: Any):
        if params:
            raise VsbError(f"backend faiss-mih takes nhash and nflip, not {', '.join(sorted(params))}.")
        super().__init__(bits)
        nhash = _int_param({"nhash": nhash}, "nhash", None)
        self.nhash = max(1, bits // 16) if nhash is None else nhash
        if self.nhash > bits:
            raise VsbError(f"faiss-mih: nhash={self.nhash} tables cannot split {bits}-bit codes; use at most {bits}.")
        self.nflip = _int_param({"nflip": nflip}, "nflip", 2, low=0)

    @property
    def params(self) -> dict:
        return {"nhash": self.nhash, "nflip": self.nflip}

    def _make(self, first_codes):
        index = _faiss().IndexBinaryMultiHash(self.bits, self.nhash, self.bits // self.nhash)
        index.nflip = self.nflip
        return index

    def _after_load(self) -> None:
        self.nhash = int(self._index.nhash)
        self._index.nflip = self.nflip

    def _storage(self) -> Any:
        return self._index.storage

    def set_search_params(self, nflip: Any = None, **_: Any) -> None:
        if nflip is not None:
            self.nflip = _int_param({"nflip": nflip}, "nflip", 2, low=0)
            if self._index is not None:
                self._index.nflip = self.nflip

    def range_search(self, queries: np.ndarray, radius: int):
        b = self.bits // self.nhash
        self._index.nflip = max(self.nflip, min(b, radius // self.nhash))
        try:
            return super().range_search(queries, radius)
        finally:
            self._index.nflip = self.nflip
