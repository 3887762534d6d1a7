"""The backend interface (:class:`Backend`) and the registry of backends (:data:`BACKENDS`).

A backend stores packed codes under consecutive positions 0, 1, 2, ... and finds them by Hamming
distance; ``HammingIndex`` maps positions to the caller's ids and metadata and orders the results.
Each backend's file registers itself with ``@BACKENDS.register(name)`` and is imported by
``vsb2net/index/__init__.py``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from vsb2net.errors import VsbError
from vsb2net.registry import Registry

BACKENDS: Registry = Registry("index backend")
DEFAULT_BACKEND = "flat"


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
