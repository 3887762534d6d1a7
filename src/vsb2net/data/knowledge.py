"""Class knowledge that ships with vsb2net for the built-in datasets (``class_knowledge/``).

* ``<dataset>.attributes.csv``: class attributes written by hand in the manner of the
  Animals-with-Attributes annotations, 0 to 1 per property, from general knowledge of what the
  class looks like (each file's header says who wrote it, when, and that no image of the dataset
  was looked at to write it).  ``data.class_vectors=attributes`` uses them.
* ``<dataset>.descriptions.csv``: one line per class saying what it looks like, the text that
  ``data.class_vectors=minilm`` embeds (:mod:`vsb2net.data.sentence`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KNOWLEDGE_DIR = Path(__file__).resolve().with_name("class_knowledge")


def knowledge_file(dataset: str, kind: str) -> Path | None:
    """``class_knowledge/<dataset>.<kind>.csv`` when it exists (kind: attributes, descriptions)."""
    name = str(dataset).strip().lower()
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        return None
    path = KNOWLEDGE_DIR / f"{name}.{kind}.csv"
    return path if path.is_file() else None


def packaged_attributes(dataset: str, class_names: list[str]) -> np.ndarray | None:
    """The (C, A) attribute matrix shipped for ``dataset``, rows in class order; None if none ships."""
    from .semantics import load_class_vectors

    path = knowledge_file(dataset, "attributes")
    return None if path is None else load_class_vectors(path, list(class_names), normalize=False)
