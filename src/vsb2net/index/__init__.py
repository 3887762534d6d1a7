"""Retrieval engine: a Hamming-distance index over packed codes, with faiss or Milvus backends.

``HammingIndex`` (hamming_index.py) is the interface and :data:`BACKENDS` (backend.py) the registry; each backend's
file registers itself with ``@BACKENDS.register(name)`` and is imported here (faiss_backend.py,
milvus_backend.py; adding a backend: one file plus its import line below).  items.py says what
goes into an index (a run's dataset split, an image folder, a codes file) and shows the pictures
of indexed items; cli.py adds ``vsb2net index build`` and ``vsb2net search``.
"""
from . import faiss_backend, milvus_backend, scan_backend  # noqa: F401,I001  (each registers its backends)
from .backend import BACKENDS, DEFAULT_BACKEND, Backend, backend_names
from .file_format import read_index_file
from .hamming_index import HammingIndex, open_index
from .hits import Hits

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "HammingIndex", "Hits", "backend_names", "open_index",
           "read_index_file"]
