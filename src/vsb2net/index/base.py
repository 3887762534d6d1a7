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

Backends (registry :data:`BACKENDS`): ``flat`` (vsb2net's exact scan with a counting k-NN
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
order of positions (``_ranked``).

Radius: ``range_search(q, r)`` returns the items at distance **<= r** (a Hamming ball of radius
r, as "precision within Hamming radius 2" uses it).  faiss and Milvus take an exclusive bound,
which the backends translate.

File format (``save``/``load``), little-endian::

    8 bytes   magic b"VSB2HIX\\n"
    4 bytes   header length H (uint32)
    H bytes   header, UTF-8 JSON: format, version, bits, backend, backend_params, model,
              count, info, and for each section (ids, metadata, payload) its length and SHA-256
    sections  ids (count x int64), metadata (UTF-8 JSON list), payload (the backend's bytes:
              faiss.serialize_index_binary output; empty for Milvus, whose data lives on the server)

``load`` checks the magic, the header, the expected bit length and model, the file length and
every checksum before the payload reaches faiss: faiss's deserialiser trusts its input, so a
damaged file must never get that far.  Nothing is unpickled.
"""
from __future__ import annotations

import hashlib
import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsb2net.codes import _check_packed
from vsb2net.errors import VsbError, check_count
from vsb2net.io import atomic_path
from vsb2net.registry import Registry

MAGIC = b"VSB2HIX\n"
FORMAT = "vsb2net-hamming-index"
VERSION = 1
SUFFIX = ".vsbidx"
# A header is a few hundred bytes; anything far larger is not a header of ours.
MAX_HEADER = 1 << 20
SECTIONS = ("ids", "metadata", "payload")

BACKENDS: Registry = Registry("index backend")
DEFAULT_BACKEND = "flat"
#: how many items past the k-th hit a search with tie groups scores at most (per query)
MAX_TIES = 10_000
#: the distance of an empty result slot: sorts after every real distance
EMPTY = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- results

@dataclass
class Hits:
    """The hits of one query, nearest first: ``ids``, ``distances`` and ``metadata`` align.

    ``scores`` (asymmetric search only): each hit's inner product with the query's real-valued code,
    the order within a distance.  ``groups`` (asymmetric or ``ties=True`` search): distance -> how
    many items the index holds at that distance, for every distance up to the last hit's (a range
    search: up to the radius); ``groups_exact`` is False when the last distance held more items than
    the search counted (``max_ties``), so its count is a lower bound.
    """

    ids: np.ndarray                      # int64
    distances: np.ndarray                # int32
    positions: np.ndarray                # int64, insertion positions inside the index
    metadata: list = field(default_factory=list)
    scores: np.ndarray | None = None     # float32, asymmetric search only
    groups: dict[int, int] | None = None
    groups_exact: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def first(self, k: int) -> Hits:
        """The first k hits (the tie-group counts stay: they count the index, not the list)."""
        if len(self) <= k:
            return self
        return Hits(self.ids[:k], self.distances[:k], self.positions[:k], self.metadata[:k],
                    None if self.scores is None else self.scores[:k], self.groups, self.groups_exact)

    def tie_groups(self) -> list[dict]:
        """One entry per distance among the hits, nearest first: how many items the index holds at
        that distance (``count``; a lower bound where ``exact`` is false) and how many are listed
        (``shown``).  Without counted groups (a plain search) the listed ones are all it knows."""
        shown: dict[int, int] = {}
        for d in self.distances.tolist():
            shown[d] = shown.get(d, 0) + 1
        groups = self.groups or {}
        last = max(shown) if shown else None
        return [{"distance": d, "count": int(groups.get(d, n)), "shown": n,
                 "exact": bool(self.groups is not None and (self.groups_exact or d != last))}
                for d, n in shown.items()]

    def rows(self) -> list[dict]:
        out = [{"rank": i + 1, "id": int(self.ids[i]), "distance": int(self.distances[i]),
                "metadata": self.metadata[i]} for i in range(len(self))]
        if self.scores is not None:
            for row, s in zip(out, self.scores.tolist()):
                row["score"] = round(s, 4)
        return out


# ----------------------------------------------------------------------------- backends

class Backend(ABC):
    """Stores codes under consecutive positions 0, 1, 2, ... and finds them by Hamming distance.

    Subclasses register with ``@BACKENDS.register(name)``; ``params`` must be plain JSON data, as
    they are saved in the index header and passed back to ``from_bytes``.
    """

    name: ClassVar[str]
    #: whether k-NN search with the default parameters returns the true nearest items
    exact: ClassVar[bool] = True
    #: whether :meth:`codes` returns stored codes (asymmetric search orders ties with them)
    returns_codes: ClassVar[bool] = False

    def __init__(self, bits: int, **params: Any):
        self.bits = bits

    @property
    @abstractmethod
    def params(self) -> dict:
        """The parameters to save (effective values, e.g. a trained nlist)."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def add(self, codes: np.ndarray) -> None:
        """Append codes; the first gets position ``len(self)`` before the call."""

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances int32 (Q, k'), positions int64 (Q, k')), k' <= k; position -1 = no hit."""

    @abstractmethod
    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (distances, positions) of every item at distance <= ``radius``, any order."""

    @abstractmethod
    def to_bytes(self) -> bytes: ...

    @classmethod
    @abstractmethod
    def from_bytes(cls, bits: int, params: dict, payload: bytes, count: int, where: str) -> Backend:
        """Rebuild from ``to_bytes`` output; ``count`` is the header's item count, to cross-check."""

    def set_search_params(self, **params: Any) -> None:  # noqa: B027  (optional hook: a no-op by default)
        """Search-time knobs (e.g. ``nprobe``); unknown or None values are ignored."""

    def close(self) -> None:  # noqa: B027  (optional hook: a no-op by default)
        """Release connections (Milvus); a no-op for in-memory backends."""

    def codes(self, positions: np.ndarray) -> np.ndarray:
        """The stored packed codes (len(positions), bits // 8) at ``positions``; backends that
        declare ``returns_codes`` implement it."""
        raise VsbError(f"the {self.name} backend does not return stored codes, so it cannot order tied hits by "
                       "the query's real-valued code; use the flat or a faiss backend for that.")


def backend_names() -> list[str]:
    """The registered backends (each backend's module registers itself; ``vsb2net.index`` imports them)."""
    return BACKENDS.names()


def get_backend(name: str) -> type[Backend]:
    return BACKENDS.get(name)


# ----------------------------------------------------------------------------- the index

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

    @staticmethod
    def _sorted(dist: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Q, k) backend results sorted by (distance, position) row by row, with the number of
        filled slots per row: position -1 marks an empty slot, which sorts last (distance EMPTY)."""
        dist = np.asarray(dist, dtype=np.int32).reshape(len(pos), -1)
        pos = np.asarray(pos, dtype=np.int64).reshape(len(dist), -1)
        valid = pos >= 0
        dist = np.where(valid, dist, EMPTY)
        order = np.lexsort((pos, dist), axis=-1)
        return np.take_along_axis(dist, order, axis=1), np.take_along_axis(pos, order, axis=1), valid.sum(axis=1)

    def _sorted_rows(self, dist: np.ndarray, pos: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(distances, positions) per row, sorted by (distance, position), empty slots dropped."""
        dist, pos, counts = self._sorted(dist, pos)
        return [(dist[i, :c], pos[i, :c]) for i, c in enumerate(counts.tolist())]

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
        table lookup per code byte (:func:`asymmetric_scores`).
        """
        q = self._queries(queries)
        k = check_count(k, "k", 0)
        u = self._real(real, len(q))
        if k == 0 or len(self) == 0:
            return self._empty(len(q))
        if u is None and not ties:
            dist, pos = self._backend.search(q, min(k, len(self)))
            return [self._hits(d, p) for d, p in self._sorted_rows(dist, pos)]
        self._require_codes(u)
        return self._with_ties(q, u, k, check_count(max_ties, "max_ties", 0))

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
            if u is not None or ties:  # _ranked orders them itself; everything within the radius counts
                out += self._ranked(d, p, np.full(1, radius, np.int32), None if u is None else u[i:i + 1], first,
                                    np.array([True]))
            else:
                (d, p), = self._sorted_rows(d, p)
                out.append(self._hits(d, p).first(first))
        return out

    def _require_codes(self, u: np.ndarray | None) -> None:
        if u is not None and not self._backend.returns_codes:
            self._backend.codes(np.zeros(0, np.int64))  # raises the backend's own explanation

    def _with_ties(self, q: np.ndarray, u: np.ndarray | None, k: int, max_ties: int) -> list[Hits]:
        """Every hit up to the k-th distance, ranked (:meth:`_ranked`), per query.  Asks the backend
        for more hits, four times as many each round, only for the queries whose group at the k-th
        distance ran past the list (at most k + max_ties: then the group is counted that far)."""
        n = len(self)
        limit = min(n, k + max_ties)
        want = min(limit, max(2 * k, k + 32))
        out: list[Any] = [None] * len(q)
        todo = np.arange(len(q))
        while len(todo):
            dist, pos, counts = self._sorted(*self._backend.search(q[todo], want))
            rows = np.arange(len(todo))
            # the k-th distance (-1 for a query the backend found nothing for: it keeps nothing)
            kth = np.where(counts > 0, dist[rows, np.clip(np.minimum(k, counts) - 1, 0, None)], -1)
            complete = (want >= n) | (counts < want) | (dist[rows, np.maximum(counts - 1, 0)] > kth)
            done = complete | (want >= limit)
            ranked = self._ranked(dist[done], pos[done], kth[done], None if u is None else u[todo[done]], k,
                                  complete[done])
            for i, hits in zip(todo[done].tolist(), ranked):
                out[i] = hits
            todo = todo[~done]
            want = min(limit, 4 * want)
        return out

    def _ranked(self, d: np.ndarray, p: np.ndarray, kth: np.ndarray, u: np.ndarray | None, k: int,
                exact: np.ndarray) -> list[Hits]:
        """Rows of candidates (d, p) (empty slots: distance EMPTY) cut at their k-th distance
        ``kth``: the first k by (distance, score descending) where the queries' real-valued codes
        ``u`` are given, else by distance, with each distance's group counted.

        Items that nothing tells apart (at one distance with equal scores: identical codes, or any
        two items at one distance from a code query) come in a fixed shuffled order of their
        positions, not by position: the k shown are then a fair sample of their group, where
        position order let the class stored first fill the list."""
        keep = d <= kth[:, None]
        rows, cols = np.nonzero(keep)
        width = self.bits + 1
        hist = np.bincount(rows * width + d[rows, cols], minlength=len(d) * width).reshape(len(d), width)
        d = np.where(keep, d, EMPTY)
        keys = [_shuffled(p)]
        scores = None
        if u is not None and len(rows):
            scores = np.zeros(d.shape)
            scores[rows, cols] = asymmetric_scores(self._backend.codes(p[rows, cols]), u, rows)
            keys.append(-scores)
        order = np.lexsort((*keys, d), axis=-1)[:, :k]
        d, p = np.take_along_axis(d, order, axis=1), np.take_along_axis(p, order, axis=1)
        if scores is not None:
            scores = np.take_along_axis(scores, order, axis=1)
        out = []
        for i, c in enumerate((d != EMPTY).sum(axis=1).tolist()):
            groups = {int(v): int(hist[i, v]) for v in np.flatnonzero(hist[i])}
            out.append(self._hits(d[i, :c], p[i, :c], scores=None if scores is None else scores[i, :c],
                                  groups=groups, groups_exact=bool(exact[i])))
        return out

    def set_search_params(self, **params: Any) -> None:
        self._backend.set_search_params(**params)

    def close(self) -> None:
        self._backend.close()

    # -- files ----------------------------------------------------------------------------------
    def header(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "bits": self.bits, "backend": self.backend_name,
                "backend_params": self._backend.params, "model": self.model, "count": len(self),
                "info": self.info}

    def save(self, path: str | Path) -> Path:
        """Write the index atomically (a reader never sees a half-written file)."""
        path = Path(path)
        try:
            meta = json.dumps(self.metadata, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise VsbError(f"index metadata is not JSON-serialisable ({exc}); give plain values "
                           "(str, numbers, lists, dicts, None).") from None
        sections = {"ids": self.ids.astype("<i8").tobytes(), "metadata": meta,
                    "payload": self._backend.to_bytes()}
        header = self.header()
        header["sections"] = {name: {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                              for name, data in sections.items()}
        head = json.dumps(header, sort_keys=True).encode("utf-8")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(MAGIC)
                fh.write(struct.pack("<I", len(head)))
                fh.write(head)
                for name in SECTIONS:
                    fh.write(sections[name])
        return path

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


def asymmetric_scores(codes: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """b.u for each packed code b (as +-1) and a real-valued query code u, float64 (len(codes),):
    ``u`` one code (bits,), or one per query (Q, bits) with ``rows`` naming each code's query.

    Summed from one table per byte (256 partial sums of u's 8 components), so identical codes get
    bit-identical scores whatever their place in the array: ties stay ties."""
    nbytes = codes.shape[1]
    signs = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float64) * 2 - 1  # (256, 8)
    u = np.asarray(u, np.float64)
    if rows is None:
        table = u.reshape(nbytes, 8) @ signs.T  # (nbytes, 256)
        return table[np.arange(nbytes), codes].sum(axis=1)
    tables = u.reshape(len(u), nbytes, 8) @ signs.T  # (Q, nbytes, 256)
    return tables[rows[:, None], np.arange(nbytes)[None, :], codes].sum(axis=1)


def _shuffled(positions: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key per position (a bijection of 32-bit values: Fibonacci hashing)."""
    return (positions.astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)


# ----------------------------------------------------------------------------- reading files

def _fingerprint_of(model: str | dict | None) -> str | None:
    if isinstance(model, dict):
        return model.get("fingerprint")
    return model


def read_index_file(path: Path, *, bits: int | None = None, model: str | dict | None = None) -> tuple[dict, dict]:
    """Validated (header, sections) of an index file; raises VsbError on any mismatch or damage."""
    rebuild = "rebuild it with `vsb2net index build`."
    if not path.is_file():
        raise VsbError(f"index file {path} does not exist; build one with `vsb2net index build RUN_DIR ...` "
                       "(it prints where it wrote the index).")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        magic = fh.read(len(MAGIC))
        if magic != MAGIC:
            raise VsbError(f"{path} is not a vsb2net index (it does not start with {MAGIC!r}); give a file "
                           "written by `vsb2net index build`.")
        raw_len = fh.read(4)
        if len(raw_len) < 4:
            raise VsbError(f"index {path} is truncated (it ends inside the header); {rebuild}")
        (head_len,) = struct.unpack("<I", raw_len)
        if head_len > MAX_HEADER:
            raise VsbError(f"index {path} is damaged (header length {head_len} bytes is implausible); {rebuild}")
        head = fh.read(head_len)
        if len(head) < head_len:
            raise VsbError(f"index {path} is truncated (it ends inside the header); {rebuild}")
        try:
            header = json.loads(head.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise VsbError(f"index {path} is damaged (its header is not valid JSON); {rebuild}") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise VsbError(f"{path} is not a vsb2net index (header format {found!r}); {rebuild}")
        if header.get("version") != VERSION:
            raise VsbError(f"index {path} has format version {header.get('version')!r}; this vsb2net reads version "
                           f"{VERSION}; {rebuild}")
        _check_header_fields(header, path, rebuild)
        if bits is not None and header["bits"] != int(bits):
            raise VsbError(f"index {path} holds {header['bits']}-bit codes but the run codes queries with {bits} "
                           f"bits; use an index built from this run, or {rebuild}")
        want = _fingerprint_of(model)
        have = _fingerprint_of(header.get("model"))
        if want is not None and have != want:
            made_by = header.get("model") or {}
            origin = f" (run {made_by.get('run')})" if isinstance(made_by, dict) and made_by.get("run") else ""
            raise VsbError(f"index {path} was built with another model{origin}, fingerprint {have}, not this run's "
                           f"{want}; codes of different models are not comparable. Use the run that built it, "
                           f"or {rebuild}")
        secs = header["sections"]
        body = head_len + len(MAGIC) + 4
        expected = body + sum(secs[name]["length"] for name in SECTIONS)
        if size != expected:
            state = "truncated" if size < expected else "longer than its header says"
            raise VsbError(f"index {path} is {state} ({size} bytes, expected {expected}); {rebuild}")
        sections = {}
        for name in SECTIONS:
            data = fh.read(secs[name]["length"])
            if hashlib.sha256(data).hexdigest() != secs[name]["sha256"]:
                raise VsbError(f"index {path} is corrupt (checksum of its {name} section does not match); {rebuild}")
            sections[name] = data
    if header["backend"] not in backend_names():
        raise VsbError(f"index {path} uses backend {header['backend']!r}, which this vsb2net does not know "
                       f"(known: {', '.join(backend_names())}).")
    return header, sections


def _check_header_fields(header: dict, path: Path, rebuild: str) -> None:
    def bad(what: str) -> VsbError:
        return VsbError(f"index {path} is damaged ({what}); {rebuild}")

    b = header.get("bits")
    if isinstance(b, bool) or not isinstance(b, int) or b <= 0 or b % 8:
        raise bad(f"bits = {b!r}")
    c = header.get("count")
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise bad(f"count = {c!r}")
    if not isinstance(header.get("backend"), str):
        raise bad("no backend name")
    secs = header.get("sections")
    if not isinstance(secs, dict) or any(
            not isinstance(secs.get(name), dict)
            or not isinstance(secs[name].get("length"), int) or secs[name]["length"] < 0
            or not isinstance(secs[name].get("sha256"), str) for name in SECTIONS):
        raise bad("section table missing or malformed")
    if secs["ids"]["length"] != 8 * c:
        raise bad(f"{secs['ids']['length']} bytes of ids for {c} codes")
    if header.get("model") is not None and not isinstance(header["model"], dict):
        raise bad("model entry is not an object")
