"""``HammingIndex``: search packed binary codes by Hamming distance, over a choice of backends.

One interface, whatever stores the codes::

    index = HammingIndex(bits=32, backend="faiss-flat", model=fingerprint)
    index.add(codes, ids=ids, metadata=[{"class": "cat"}, ...])
    hits = index.search(query_codes, k=10)          # one Hits per query, nearest first
    hits = index.range_search(query_codes, radius=2)  # everything at distance <= 2
    index.save("db.vsbidx");  HammingIndex.load("db.vsbidx", bits=32, model=fingerprint)

Codes are packed ``uint8`` arrays of shape (N, bits // 8) as :func:`vsb2net.codes.pack_codes`
makes them.  Each added code gets a *position* (0, 1, 2, ... in the order of ``add`` calls); the
backend stores positions, the index maps them to the caller's ``ids`` and ``metadata``.

Backends (registry :data:`~vsb2net.index.backend.BACKENDS`): ``flat`` (vsb2net's exact scan with a counting k-NN
kernel, the default; scan_backend.py), ``faiss-flat`` (faiss's exact scan, the reference), ``faiss-ivf``
(inverted lists; exact when ``nprobe == nlist``), ``faiss-mih`` (multi-index hashing; exact
range search, approximate k-NN), ``milvus`` (a Milvus server or cluster, or Milvus Lite).

Order of tied hits.  Hamming distances take few values, so ties are the rule.  What the backends
do on their own (faiss 1.15, checked in tests/test_index.py): ``IndexBinaryFlat`` keeps, among
items at the cut-off distance, the ones added first, and lists equal distances in insertion
order; ``IndexBinaryIVF`` and ``IndexBinaryMultiHash`` list ties in the order they scan their
inverted lists / hash buckets; ``range_search`` returns hits in storage order, not sorted; Milvus
makes no promise.  ``HammingIndex`` therefore sorts every result by (distance, position), so the
same index and query always give the same list, and for the exact backends the top k is exactly
the k first items by (distance, position).  Positions follow the ids wherever ``vsb2net index
build`` writes an index (ids are added in increasing order), so there ties are broken by id.
``search(..., real=u)`` and ``ties=True`` (what ``vsb2net search`` and ``serve`` use) order ties
otherwise: by the query's real-valued score, and items nothing tells apart in a fixed shuffled
order of positions (:mod:`vsb2net.served_order`).

Radius: ``range_search(q, r)`` returns the items at distance **<= r** (a Hamming ball of radius
r, as "precision within Hamming radius 2" uses it).  faiss and Milvus take an exclusive bound,
which the backends translate.

Split by job: hits.py (the result type), backend.py (the backend interface and registry),
ranking.py (candidates to ranked hits; the order itself is :mod:`vsb2net.served_order`),
file_format.py (the file).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsb2net.codes import _check_packed
from vsb2net.errors import VsbError, check_count

from . import ranking
from .backend import DEFAULT_BACKEND, Backend, get_backend
from .file_format import read_index_file, write_index_file
from .hits import Hits

#: how many items past the k-th hit a search with tie groups scores at most (per query)
MAX_TIES = 10_000


def _check_codes(codes: Any, bits: int, what: str) -> np.ndarray:
    arr = _check_packed(codes, what)
    if arr.shape[1] * 8 != bits:
        raise VsbError(f"{what} have {arr.shape[1] * 8} bits ({arr.shape[1]} bytes per code) but the index "
                       f"holds {bits}-bit codes; encode them with a model of {bits} bits.")
    return np.ascontiguousarray(arr)


class HammingIndex:
    """Packed binary codes with ids and metadata, searchable by Hamming distance."""

    def __init__(self, bits: int, backend: str = DEFAULT_BACKEND, *, model: dict | None = None,
                 info: dict | None = None, **params: Any):
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits <= 0 or bits % 8:
            raise VsbError(f"bits must be a positive multiple of 8, got {bits!r}.")
        self.bits = int(bits)
        self.backend_name = backend
        self.model = model
        self.info = dict(info or {})
        self._backend = get_backend(backend)(self.bits, **params)
        self.ids = np.zeros(0, dtype=np.int64)
        self.metadata: list = []

    @property
    def backend(self) -> Backend:
        return self._backend

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"HammingIndex({len(self)} codes, {self.bits} bits, backend={self.backend_name!r})"

    # -- building -------------------------------------------------------------------------------
    def add(self, codes: Any, ids: Sequence[int] | np.ndarray | None = None,
            metadata: Sequence[Any] | None = None) -> None:
        """Add packed codes with their ids (default: consecutive from ``len(self)``) and metadata.

        ids must be unique integers (also across calls); metadata is one JSON-serialisable value
        per code (default None).
        """
        codes = _check_codes(codes, self.bits, "codes to add")
        n = len(codes)
        if ids is None:
            new_ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        else:
            raw = np.asarray(ids)
            if raw.ndim != 1 or len(raw) != n:
                raise VsbError(f"got {raw.size} ids for {n} codes; give one id per code.")
            if n and not np.issubdtype(raw.dtype, np.integer):
                raise VsbError(f"ids must be integers, got dtype {raw.dtype}.")
            new_ids = raw.astype(np.int64)
        all_ids = np.concatenate([self.ids, new_ids])
        if len(np.unique(all_ids)) != len(all_ids):
            uniq, counts = np.unique(all_ids, return_counts=True)
            raise VsbError(f"duplicate ids, e.g. {int(uniq[counts > 1][0])}; every code needs its own id.")
        if metadata is None:
            new_meta = [None] * n
        else:
            new_meta = list(metadata)
            if len(new_meta) != n:
                raise VsbError(f"got {len(new_meta)} metadata entries for {n} codes; give one per code.")
        if n == 0:
            return
        self._backend.add(codes)
        self.ids = all_ids
        self.metadata.extend(new_meta)

    # -- searching ------------------------------------------------------------------------------
    def _queries(self, queries: Any) -> np.ndarray:
        arr = np.asarray(queries)
        if arr.ndim == 1:
            arr = arr[None, :]
        return _check_codes(arr, self.bits, "query codes")

    def _hits(self, dist: np.ndarray, pos: np.ndarray, **extra: Any) -> Hits:
        return Hits(ids=self.ids[pos], distances=dist, positions=pos,
                    metadata=[self.metadata[j] for j in pos.tolist()], **extra)

    def _empty(self, n: int) -> list[Hits]:
        return [self._hits(np.zeros(0, np.int32), np.zeros(0, np.int64)) for _ in range(n)]

    def _real(self, real: Any, n: int) -> np.ndarray | None:
        if real is None:
            return None
        arr = np.asarray(real, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.shape != (n, self.bits):
            raise VsbError(f"real-valued query codes of shape {arr.shape} for {n} queries of {self.bits} bits; give "
                           f"one row of {self.bits} values per query (the model's output before the sign).")
        if not np.isfinite(arr).all():
            raise VsbError("real-valued query codes contain NaN or infinite values.")
        return arr

    def search(self, queries: Any, k: int = 10, *, real: Any = None, ties: bool = False,
               max_ties: int = MAX_TIES) -> list[Hits]:
        """The k nearest codes of each query (fewer when the index is smaller), nearest first.

        ``real`` (Q, bits): the queries' real-valued codes (a model's output before the sign;
        ``queries`` are their signs).  Hits at one distance are then ordered by their inner
        product with it, largest first, instead of by position, and the whole tie group at the
        k-th distance is scored, so the k hits are the best of it (asymmetric search).
        ``ties=True`` (implied by ``real``) counts the tie groups (``Hits.groups``).  Cost: the
        k-NN search asks the backend for more than k hits until the k-th distance's group is
        complete (at most k + ``max_ties`` hits: beyond that the group's first ``max_ties`` by
        position are scored and ``groups_exact`` is False), then the candidates' scores from one
        table lookup per code byte (:func:`vsb2net.served_order.asymmetric_scores`).
        """
        q = self._queries(queries)
        k = check_count(k, "k", 0)
        u = self._real(real, len(q))
        if k == 0 or len(self) == 0:
            return self._empty(len(q))
        if u is None and not ties:
            dist, pos = self._backend.search(q, min(k, len(self)))
            return [self._hits(d, p) for d, p in ranking.rows_by_distance(dist, pos)]
        self._require_codes(u)
        return ranking.with_ties(self._backend, len(self), q, u, k, check_count(max_ties, "max_ties", 0), self._hits)

    def range_search(self, queries: Any, radius: int, k: int | None = None, *, real: Any = None,
                     ties: bool = False) -> list[Hits]:
        """Every code within Hamming distance ``radius`` (inclusive) of each query, nearest first;
        with ``k``, only the first k of them.  ``real`` and ``ties`` as in :meth:`search` (the
        groups then count every distance up to the radius)."""
        q = self._queries(queries)
        radius = check_count(radius, "radius", 0)
        if k is not None:
            k = check_count(k, "k", 0)
        u = self._real(real, len(q))
        if len(self) == 0:
            return self._empty(len(q))
        self._require_codes(u)
        out = []
        for i, (dist, pos) in enumerate(self._backend.range_search(q, min(radius, self.bits))):
            d, p = np.asarray(dist, np.int32)[None, :], np.asarray(pos, np.int64)[None, :]
            first = d.shape[1] if k is None else k
            if u is not None or ties:  # ranked() orders them itself; everything within the radius counts
                out += ranking.ranked(self._backend, d, p, np.full(1, radius, np.int32),
                                      None if u is None else u[i:i + 1], first, np.array([True]), self._hits)
            else:
                (d, p), = ranking.rows_by_distance(d, p)
                out.append(self._hits(d, p).first(first))
        return out

    def _require_codes(self, u: np.ndarray | None) -> None:
        if u is not None and not self._backend.returns_codes:
            self._backend.codes(np.zeros(0, np.int64))  # raises the backend's own explanation

    def set_search_params(self, **params: Any) -> None:
        self._backend.set_search_params(**params)

    def close(self) -> None:
        self._backend.close()

    # -- files ----------------------------------------------------------------------------------
    def header(self) -> dict:
        return {"bits": self.bits, "backend": self.backend_name, "backend_params": self._backend.params,
                "model": self.model, "count": len(self), "info": self.info}

    def save(self, path: str | Path) -> Path:
        """Write the index atomically (a reader never sees a half-written file)."""
        try:
            meta = json.dumps(self.metadata, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise VsbError(f"index metadata is not JSON-serialisable ({exc}); give plain values "
                           "(str, numbers, lists, dicts, None).") from None
        return write_index_file(Path(path), self.header(), {"ids": self.ids.astype("<i8").tobytes(), "metadata": meta,
                                                            "payload": self._backend.to_bytes()})

    @classmethod
    def load(cls, path: str | Path, *, bits: int | None = None, model: str | dict | None = None,
             **search_params: Any) -> HammingIndex:
        """Read an index written by :meth:`save`.

        ``bits`` and ``model`` (a fingerprint, or a dict with one) are what the caller will
        query with; an index of another code length or made by another model is refused, as
        its distances would mean nothing.  ``search_params`` (e.g. ``nprobe``) are applied after
        loading.
        """
        path = Path(path)
        header, sections = read_index_file(path, bits=bits, model=model)
        self = cls.__new__(cls)
        self.bits = header["bits"]
        self.backend_name = header["backend"]
        self.model = header["model"]
        self.info = header.get("info") or {}
        count = header["count"]
        ids = np.frombuffer(sections["ids"], dtype="<i8").astype(np.int64)
        try:
            metadata = json.loads(sections["metadata"].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VsbError(f"index {path}: its metadata section is not valid JSON ({exc}); "
                           "rebuild the index.") from None
        if len(ids) != count or not isinstance(metadata, list) or len(metadata) != count:
            raise VsbError(f"index {path}: the header says {count} codes but the file holds "
                           f"{len(ids)} ids and {len(metadata) if isinstance(metadata, list) else '?'} "
                           "metadata entries; the file is damaged, rebuild the index.")
        self.ids, self.metadata = ids, metadata
        backend_cls = get_backend(self.backend_name)
        self._backend = backend_cls.from_bytes(self.bits, header.get("backend_params") or {},
                                               sections["payload"], count, str(path))
        if len(self._backend) != count:
            raise VsbError(f"index {path}: its {self.backend_name} data holds {len(self._backend)} codes but the "
                           f"header says {count}; rebuild the index.")
        self.set_search_params(**search_params)
        return self


def open_index(run: Any, path: str | Path, **search_params: Any) -> HammingIndex:
    """The index at ``path``, checked to hold codes of ``run``'s model and code length (``run``: a
    :class:`vsb2net.run.Run`, or anything with its ``bits`` and ``fingerprint``)."""
    return HammingIndex.load(Path(path), bits=run.bits, model=run.fingerprint, **search_params)
