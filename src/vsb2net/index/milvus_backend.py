"""Milvus behind the ``HammingIndex`` interface, for collections that outgrow one machine.

A collection with an INT64 primary key ``pos`` (the insertion position) and a ``BINARY_VECTOR``
field ``code``, indexed ``BIN_FLAT`` (exact) or ``BIN_IVF_FLAT`` (``nlist`` lists, ``nprobe``
scanned), metric ``HAMMING``.  The codes live on the server; the index file keeps the ids,
metadata, and where the collection is (``uri``, ``collection``), never the token.

``uri`` is a Milvus server or cluster (``http://host:19530``, a Zilliz Cloud endpoint) or a local
``*.db`` file, which starts an embedded Milvus Lite.  The token (``user:password`` or an API key)
comes from the environment variable ``VSB2NET_MILVUS_TOKEN``, so it is never written to disk.

Milvus Lite (a ``*.db`` uri) supports BIN_FLAT only; BIN_IVF_FLAT needs a server.

Needs the ``milvus`` extra (``pip install 'vsb2net[milvus]'``): pymilvus and a milvus-lite that
still accepts binary vectors (milvus-lite 3.x rejects BINARY_VECTOR; 2.5.x accepts it).

Milvus returns at most 16,384 hits per query (its topk limit); a larger k or a radius that
holds more items is an error rather than a silently cut list.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from vsb2net.errors import VsbError

from .backend import BACKENDS, Backend, Param
from .file_format import SUFFIX

TOKEN_ENV = "VSB2NET_MILVUS_TOKEN"
MAX_TOPK = 16384
INDEX_TYPES = ("BIN_FLAT", "BIN_IVF_FLAT")
INSERT_BATCH = 50_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")


def _client_class():
    try:
        with warnings.catch_warnings():
            # milvus-lite 2.5 imports pkg_resources, which warns that it is deprecated.
            warnings.simplefilter("ignore")
            from pymilvus import MilvusClient
    except ImportError:
        raise VsbError("the milvus backend needs pymilvus and milvus-lite: pip install 'vsb2net[milvus]' "
                       "(or pip install pymilvus==2.5.18 milvus-lite==2.5.1 'setuptools<81').") from None
    # pymilvus logs every failed call at ERROR before raising; the VsbError raised here carries
    # the same detail, and the command line promises one line per error.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    return MilvusClient


def _milvus_error(exc: Exception, what: str, uri: str) -> VsbError:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return VsbError(f"Milvus at {uri}: {what} failed ({text}). Check that the server is up, the uri and "
                    f"the token (environment variable {TOKEN_ENV}).")


@BACKENDS.register("milvus", help="a Milvus server/cluster or Milvus Lite file (BIN_FLAT or BIN_IVF_FLAT)")
class MilvusBackend(Backend):
    """Parameters: ``uri`` (required), ``collection`` (default "vsb2net_codes"),
    ``index_type`` BIN_FLAT (default) or BIN_IVF_FLAT, ``nlist`` (default 128), ``nprobe``
    (default 16), ``overwrite`` (drop an existing collection of that name when building)."""

    parameters = (
        Param("uri", f"Milvus server (http://host:19530) or Milvus Lite file (*.db; default: beside the index "
                     f"file); token from ${TOKEN_ENV}", kind=str, flag="milvus-uri", metavar="URI"),
        Param("collection", "collection name (default from the index file name)", kind=str, flag="milvus-collection",
              metavar="NAME"),
        Param("index_type", f"Milvus index type (default {INDEX_TYPES[0]}, exact)", kind=str, choices=INDEX_TYPES,
              flag="milvus-index"),
        Param("nlist", "BIN_IVF_FLAT: number of lists (default 128)"),
        Param("nprobe", "BIN_IVF_FLAT: lists scanned per query (default 16)", search_time=True),
        Param("overwrite", "replace an existing collection of that name", kind=bool, flag="milvus-overwrite"),
    )
    max_k = MAX_TOPK - 1  # Milvus returns at most MAX_TOPK hits per query

    @classmethod
    def exact_params(cls, bits: int) -> None:
        return None  # needs a uri: tests/test_milvus.py runs it on Milvus Lite

    @classmethod
    def file_defaults(cls, index_path: Path, source: str) -> dict:
        name = index_path.name[:-len(SUFFIX)] if index_path.name.endswith(SUFFIX) else index_path.stem
        collection = re.sub(r"[^A-Za-z0-9_.-]+", "_", "vsb2net_" + source).strip("_")
        collection = collection.replace("-", "_").replace(".", "_")
        return {"uri": str(index_path.parent / f"{name}.db"), "collection": collection}

    def __init__(self, bits: int, uri: str | None = None, collection: str = "vsb2net_codes",
                 index_type: str = "BIN_FLAT", nlist: int = 128, nprobe: int = 16, overwrite: bool = False,
                 _existing: bool = False, **params: Any):
        if params:
            raise VsbError(f"backend milvus takes uri, collection, index_type, nlist, nprobe, overwrite; "
                           f"not {', '.join(sorted(params))}.")
        super().__init__(bits)
        if not uri:
            raise VsbError("the milvus backend needs a uri: a server (http://host:19530) or a local file "
                           "ending in .db for Milvus Lite.")
        if not _NAME.match(collection or ""):
            raise VsbError(f"Milvus collection name {collection!r} is invalid: use letters, digits and _, "
                           "starting with a letter or _.")
        if index_type not in INDEX_TYPES:
            raise VsbError(f"Milvus index_type {index_type!r} is not supported; use {' or '.join(INDEX_TYPES)}.")
        for name, value in (("nlist", nlist), ("nprobe", nprobe)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise VsbError(f"Milvus {name} must be a positive integer, got {value!r}.")
        self.uri = self._resolve(uri)
        if "://" not in self.uri and index_type != "BIN_FLAT":
            raise VsbError(f"Milvus Lite ({self.uri}) supports only the BIN_FLAT index; {index_type} needs a Milvus "
                           "server (give its http:// uri).")
        self.collection = collection
        self.index_type = index_type
        self.nlist, self.nprobe = int(nlist), int(nprobe)
        self._count = 0
        self._client = self._connect()
        if not _existing:
            self._create(overwrite)

    @staticmethod
    def _resolve(uri: str) -> str:
        # A Lite file is found again from any working directory only by its absolute path.
        if "://" not in uri:
            return str(Path(uri).expanduser().resolve())
        return uri

    def _connect(self):
        client_cls = _client_class()
        token = os.environ.get(TOKEN_ENV, "")
        if "://" not in self.uri:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return client_cls(uri=self.uri, token=token) if token else client_cls(uri=self.uri)
        except Exception as exc:  # pymilvus raises many types; all mean "cannot connect"
            raise _milvus_error(exc, "connecting", self.uri) from None

    def _create(self, overwrite: bool) -> None:
        from pymilvus import DataType, MilvusClient

        c = self._client
        try:
            if c.has_collection(self.collection):
                if not overwrite:
                    raise VsbError(f"Milvus at {self.uri} already has a collection {self.collection!r}; choose "
                                   "another name, or overwrite it (--milvus-overwrite).")
                c.drop_collection(self.collection)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("pos", DataType.INT64, is_primary=True)
            schema.add_field("code", DataType.BINARY_VECTOR, dim=self.bits)
            ip = c.prepare_index_params()
            extra = {"nlist": self.nlist} if self.index_type == "BIN_IVF_FLAT" else {}
            ip.add_index(field_name="code", index_type=self.index_type, metric_type="HAMMING", params=extra)
            c.create_collection(self.collection, schema=schema, index_params=ip)
        except VsbError:
            raise
        except Exception as exc:
            raise _milvus_error(exc, f"creating collection {self.collection!r}", self.uri) from None

    @property
    def params(self) -> dict:
        return {"uri": self.uri, "collection": self.collection, "index_type": self.index_type,
                "nlist": self.nlist, "nprobe": self.nprobe}

    def __len__(self) -> int:
        return self._count

    def add(self, codes: np.ndarray) -> None:
        start = self._count
        try:
            for lo in range(0, len(codes), INSERT_BATCH):
                rows = [{"pos": start + lo + i, "code": codes[lo + i].tobytes()}
                        for i in range(min(INSERT_BATCH, len(codes) - lo))]
                # upserted, keyed by position: a build that resumes after a crash sends rows again
                # and replaces them instead of adding them twice
                self._client.upsert(self.collection, rows)
            self._client.flush(self.collection)
            self._client.load_collection(self.collection)
        except Exception as exc:
            raise _milvus_error(exc, f"inserting into {self.collection!r}", self.uri) from None
        self._count += len(codes)

    def _rows(self) -> int:
        """Rows the collection holds now (its statistics count replaced rows until a compaction)."""
        res = self._client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def _search(self, queries: np.ndarray, limit: int, extra: dict):
        params = {"metric_type": "HAMMING", "params": {"nprobe": self.nprobe, **extra}}
        try:
            # Strong: a search sees every row inserted before it
            return self._client.search(self.collection, data=[q.tobytes() for q in queries], anns_field="code",
                                       limit=limit, search_params=params, output_fields=["pos"],
                                       consistency_level="Strong")
        except Exception as exc:
            raise _milvus_error(exc, "search", self.uri) from None

    @staticmethod
    def _arrays(hits) -> tuple[np.ndarray, np.ndarray]:
        dist = np.array([int(round(h["distance"])) for h in hits], dtype=np.int32)
        pos = np.array([int(h["entity"]["pos"]) for h in hits], dtype=np.int64)
        return dist, pos

    def search(self, queries: np.ndarray, k: int):
        if k > MAX_TOPK:
            raise VsbError(f"Milvus returns at most {MAX_TOPK} hits per query; ask for k <= {MAX_TOPK}.")
        res = self._search(queries, k, {})
        dist = np.full((len(queries), k), -1, dtype=np.int32)
        pos = np.full((len(queries), k), -1, dtype=np.int64)
        for i, hits in enumerate(res):
            d, p = self._arrays(hits)
            dist[i, :len(d)], pos[i, :len(p)] = d, p
        return dist, pos

    def range_search(self, queries: np.ndarray, radius: int):
        limit = min(MAX_TOPK, max(1, self._count))
        # HAMMING is "smaller is better": Milvus keeps range_filter <= distance < radius.
        res = self._search(queries, limit, {"radius": radius + 1, "range_filter": 0})
        out = []
        for hits in res:
            if len(hits) >= MAX_TOPK and self._count > MAX_TOPK:
                raise VsbError(f"more than {MAX_TOPK} items lie within radius {radius}, more than Milvus returns "
                               "for one query; use a smaller radius (or k-NN search).")
            out.append(self._arrays(hits))
        return out

    def set_search_params(self, nprobe: Any = None, **_: Any) -> None:
        if nprobe is not None:
            if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or nprobe < 1:
                raise VsbError(f"nprobe must be a positive integer, got {nprobe!r}.")
            self.nprobe = int(nprobe)

    def to_bytes(self) -> bytes:
        return b""

    @classmethod
    def from_bytes(cls, bits: int, params: dict, payload: bytes, count: int, where: str):
        if payload:
            raise VsbError(f"index {where}: a milvus index file carries no code data, but this one does; rebuild it.")
        self = cls(bits, _existing=True, **{k: v for k, v in params.items() if k != "overwrite"})
        try:
            if not self._client.has_collection(self.collection):
                raise VsbError(f"index {where}: Milvus at {self.uri} has no collection {self.collection!r} (dropped "
                               "or another server?); rebuild the index.")
            self._client.load_collection(self.collection)
            self._count = self._rows()
        except VsbError:
            raise
        except Exception as exc:
            raise _milvus_error(exc, f"opening collection {self.collection!r}", self.uri) from None
        if self._count != count:
            raise VsbError(f"index {where}: Milvus collection {self.collection!r} holds {self._count} codes but the "
                           f"index file lists {count}; it changed since the index was built. Rebuild the index.")
        return self

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a dead connection is not the user's problem
            pass
