"""The backend interface (:class:`Backend`) and the registry of backends (:data:`BACKENDS`).

A backend stores packed codes under consecutive positions 0, 1, 2, ... and finds them by Hamming
distance; ``HammingIndex`` maps positions to the caller's ids and metadata and orders the results.
Each backend's file registers itself with ``@BACKENDS.register(name)`` and is imported by
``vsb2net/index/__init__.py``.  A backend declares its parameters (:class:`Param`, as a faiss
factory string carries them): ``index build`` makes a flag of each, ``search`` and ``serve`` of the
search-time ones, and the index file saves their values; no caller names a backend.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsb2net.errors import VsbError
from vsb2net.registry import Registry

BACKENDS: Registry = Registry("index backend")
DEFAULT_BACKEND = "flat"


@dataclass(frozen=True)
class Param:
    """One parameter of a backend, as the backend declares it.

    ``index build`` gets a flag ``--<flag>`` (default: the name with dashes) and passes the value to
    the backend's constructor as ``name``; with ``search_time`` the parameter is also a flag of
    ``search`` and ``serve``, passed to ``set_search_params``.  Backends that share a name share the
    flag, so they must agree on ``kind``, ``minimum``, ``choices`` and ``search_time``.
    """

    name: str
    help: str
    kind: type = int                     # int (at least ``minimum``), str, or bool (a switch)
    minimum: int = 1
    choices: tuple[str, ...] | None = None
    search_time: bool = False
    flag: str | None = None
    metavar: str | None = None

    @property
    def option(self) -> str:
        return "--" + (self.flag or self.name.replace("_", "-"))

    @property
    def dest(self) -> str:
        return self.option[2:].replace("-", "_")


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
    #: the parameters the constructor takes (flags of ``index build``; search-time ones of ``search``/``serve``)
    parameters: ClassVar[tuple[Param, ...]] = ()
    #: the largest k one query may ask for (None: no limit); ``serve`` caps its ``--max-k`` there
    max_k: ClassVar[int | None] = None

    @classmethod
    def exact_params(cls, bits: int) -> dict | None:
        """Parameters under which k-NN search returns the true nearest items on a small in-memory
        index (the shared tests in tests/test_index.py run each backend with them); None where
        there are none (approximate, or it needs a server)."""
        return {} if cls.exact else None

    @classmethod
    def file_defaults(cls, index_path: Path, source: str) -> dict:
        """Defaults of parameters that depend on where ``index build`` writes the index file and
        what it indexes (``source``: a short name of the items, e.g. the dataset's)."""
        return {}

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
