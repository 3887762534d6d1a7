"""Retrieval engine: a Hamming-distance index over packed codes, with faiss or Milvus backends.

``HammingIndex`` (base.py) is the interface; faiss_backend.py and milvus_backend.py register
the backends; runs.py turns a trained run and user input (images, class names, class vectors,
hex codes) into codes; cli.py adds ``vsb2net index build`` and ``vsb2net search``;
evaluation.py scores class-name queries for ``vsb2net evaluate``.
"""
from .base import BACKENDS, DEFAULT_BACKEND, Backend, HammingIndex, Hits, backend_names, read_index_file

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "HammingIndex", "Hits", "backend_names", "read_index_file"]
