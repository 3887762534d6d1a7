"""Class knowledge that ships with vsb2net for the built-in datasets (``class_knowledge/``).

* ``<dataset>.attributes.csv``: class attributes written by hand in the manner of the
  Animals-with-Attributes annotations, 0 to 1 per property, from general knowledge of what the
  class looks like (each file's header says who wrote it, when, and that no image of the dataset
  was looked at to write it).  ``data.class_vectors=attributes`` uses them.
* ``<dataset>.descriptions.csv``: one line per class saying what it looks like, the text that
  ``data.class_vectors=minilm`` embeds (:mod:`vsb2net.data.sentence`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError

from .vector_files import load_class_vectors

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
    path = knowledge_file(dataset, "attributes")
    return None if path is None else load_class_vectors(path, list(class_names), normalize=False)


def read_descriptions(path: str | os.PathLike) -> dict[str, str]:
    """``class -> description`` from a CSV with the header ``class,description``.

    Blank lines and lines starting with ``#`` are skipped; fields follow CSV quoting (a
    description with commas is quoted).  Class names must be unique (case-insensitively).
    """
    path = Path(path)
    line_no = 0

    def lines(fh):
        nonlocal line_no
        for n, line in enumerate(fh, 1):
            line_no = n  # read by the error messages below, through nonlocal
            if line.strip() and not line.lstrip().startswith("#"):
                yield line

    out: dict[str, str] = {}
    seen: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = csv.reader(lines(fh))
            header = [c.strip().lower() for c in next(rows, [])]
            if header[:2] != ["class", "description"]:
                raise VsbError(f"{path}, line {line_no}: expected the header 'class,description', got "
                               f"{','.join(header)!r}.")
            for row in rows:
                cells = [c.strip() for c in row]
                if len(cells) != 2 or not all(cells):
                    raise VsbError(f"{path}, line {line_no}: expected 'class,description' (quote a description "
                                   f"that holds commas), got {len(cells)} field(s) {row!r}.")
                key = cells[0].lower()
                if key in seen:
                    raise VsbError(f"{path}, line {line_no}: class {cells[0]!r} appears twice (first on line "
                                   f"{seen[key]}).")
                seen[key] = line_no
                out[cells[0]] = cells[1]
    except UnicodeDecodeError:
        raise VsbError(f"{path} is not a UTF-8 text CSV file.") from None
    except csv.Error as e:
        raise VsbError(f"{path}, line {line_no}: malformed CSV ({e}).") from None
    if not out:
        raise VsbError(f"{path} holds no descriptions; expected rows 'class,description'.")
    return out


def class_descriptions(dataset: str) -> dict[str, str] | None:
    """The hand-written descriptions of ``dataset``'s classes, or None when it has none."""
    path = knowledge_file(dataset, "descriptions")
    return None if path is None else read_descriptions(path)
