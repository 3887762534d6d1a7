"""Files of vectors (.npy, .csv): the one reader for training's class vectors, the attributes that
ship with the package and the class vectors a search query gives.

A ``.npy`` file is a plain numeric matrix (n, D) (pickles are refused).  A ``.csv`` file holds
rows of numbers, either bare or each preceded by a name (``zebra,0.1,0.3,...``), with an optional
header row (``class,a1,a2``); blank lines and lines starting with ``#`` are skipped.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError


@dataclass
class VectorRows:
    """What a vector file holds: rows of numbers (of equal width once :meth:`matrix` is called),
    their names (None where the file names none) and, for a CSV file, the line of each row."""

    rows: list[list[float]] | np.ndarray
    names: list[str] | None
    lines: list[int] | None
    path: Path

    def matrix(self, pick: list[int] | None = None) -> np.ndarray:
        """The rows ``pick`` (all by default) as a float64 matrix; rows of different widths are refused."""
        pick = list(range(len(self.rows))) if pick is None else pick
        if isinstance(self.rows, np.ndarray):
            return self.rows[pick]
        mat = [self.rows[i] for i in pick]
        widths = {len(v) for v in mat}
        if len(widths) > 1:
            ln = next((self.lines or [])[i] for i in pick if len(self.rows[i]) != len(mat[0]))
            raise VsbError(f"{self.path}, line {ln}: rows have different numbers of values ({sorted(widths)}).")
        return np.asarray(mat, dtype=np.float64).reshape(len(mat), -1)


def normalize_rows(m: np.ndarray, where: str, names: list[str]) -> np.ndarray:
    """Rows scaled to unit L2 norm; an all-zero row (no direction) is refused, naming its row."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    zero = [names[i] for i in np.flatnonzero(norms[:, 0] == 0)]
    if zero:
        raise VsbError(
            f"{where}: all-zero vector for class(es) {', '.join(zero)}; a zero vector has no "
            "direction and cannot be normalised. Fix those rows or load with normalize=False."
        )
    return m / norms


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [(i + 1, [c.strip() for c in r]) for i, r in enumerate(csv.reader(fh))]
    except UnicodeDecodeError:
        raise VsbError(f"{path} is not a UTF-8 text CSV file.") from None
    except csv.Error as e:
        raise VsbError(f"{path}: malformed CSV ({e}).") from None
    return [(ln, r) for ln, r in rows if any(r) and not r[0].startswith("#")]


def _parse_floats(cells: list[str], path: Path, line: int, first_col: int) -> list[float]:
    vals = []
    for j, c in enumerate(cells):
        try:
            vals.append(float(c))
        except ValueError:
            raise VsbError(f"{path}, line {line}, column {j + first_col}: {c!r} is not a number.") from None
    return vals


def _read_csv(path: Path) -> VectorRows:
    rows = _read_csv_rows(path)
    if not rows:
        raise VsbError(f"{path} holds no rows; expected one row of numbers per class.")
    named = not _is_number(rows[0][1][0])
    head = rows[0][1]
    if named and len(head) > 1 and not any(_is_number(c) for c in head[1:]):
        rows = rows[1:]  # a header row, e.g. "class,attr1,attr2"
    first = 1 if named else 0
    return VectorRows([_parse_floats(r[first:], path, ln, first + 1) for ln, r in rows],
                      [r[0] for _, r in rows] if named else None, [ln for ln, _ in rows], path)


def _read_npy(path: Path, allow_vector: bool) -> VectorRows:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic != b"\x93NUMPY":
        # numpy would take it for a pickle and suggest allow_pickle, which is not the problem
        raise VsbError(f"cannot read {path}: it is not a .npy file (it does not start with the .npy magic "
                       "bytes); save the matrix with np.save(path, matrix), or give a .csv file.")
    try:
        m = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise VsbError(f"{path} is not a plain numeric .npy file ({e}); save it with np.save(path, "
                       "matrix) where matrix is a float array of shape (classes, D).") from None
    except (OSError, EOFError) as e:
        raise VsbError(f"cannot read {path} as .npy ({e}).") from None
    if not isinstance(m, np.ndarray) or not (
        np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer) or m.dtype == np.bool_
    ):
        raise VsbError(f"{path}: expected a numeric matrix, got dtype {getattr(m, 'dtype', '?')}.")
    if allow_vector and m.ndim == 1:
        m = m[None]
    if m.ndim != 2:
        shapes = "a vector (D,) or a 2-D matrix (n, D)" if allow_vector else "a 2-D matrix (classes, D)"
        raise VsbError(f"{path}: expected {shapes}, got shape {m.shape}.")
    return VectorRows(m.astype(np.float64), None, None, path)


def read_vector_file(path: str | os.PathLike, *, what: str = "class vectors file",
                     allow_vector: bool = False, hint: str = "") -> VectorRows:
    """The rows of a .npy or .csv vector file, checked for existence, format, numbers and width
    (not for NaN or zero rows: the caller names rows its own way)."""
    path = Path(path)
    if not path.is_file():
        raise VsbError(f"{what} {path} does not exist.{hint}")
    if path.stat().st_size == 0:
        raise VsbError(f"cannot read {what} {path}: it is empty.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        rows = _read_npy(path, allow_vector)
    elif suffix == ".csv":
        rows = _read_csv(path)
    else:
        raise VsbError(f"{what} {path}: unsupported format {suffix or 'without an extension'!r}; use .npy or .csv.")
    return rows


def _check_width(m: np.ndarray, path: Path) -> np.ndarray:
    if m.shape[1] == 0:
        raise VsbError(f"{path}: the vectors have no components (D = 0).")
    return m


def _in_class_order(rows: VectorRows, path: Path, names: list[str]) -> np.ndarray:
    if rows.names is None:
        return rows.matrix()
    wanted = {n.strip().lower(): i for i, n in enumerate(names)}
    found: dict[int, int] = {}
    for r, (name, ln) in enumerate(zip(rows.names, rows.lines or [])):
        key = name.lower()
        if key not in wanted:
            continue  # vectors for other classes are allowed and ignored
        if wanted[key] in found:
            raise VsbError(f"{path}, line {ln}: class {name!r} appears twice (first on line "
                           f"{(rows.lines or [])[found[wanted[key]]]}).")
        found[wanted[key]] = r
    missing = [names[i] for i in range(len(names)) if i not in found]
    if missing:
        raise VsbError(f"{path}: no row for class(es) {', '.join(missing)}. Each class needs a row "
                       "'class_name,v1,v2,...' (names match case-insensitively).")
    return rows.matrix([found[i] for i in range(len(names))])


def load_class_vectors(path: str | os.PathLike, class_names: list[str], *, normalize: bool = True) -> np.ndarray:
    """Class vectors (word vectors or attributes) of ``class_names`` from a file, float32 (C, D).

    Bare rows are in class order; named rows are matched to the class names case-insensitively
    (rows for other classes are ignored, every class must be present).  With ``normalize`` the
    rows are scaled to unit L2 norm.
    """
    path = Path(path)
    names = list(class_names)
    rows = read_vector_file(path, hint=" Give a .npy or .csv file with one vector per class, or use 'glove'.")
    m = _check_width(_in_class_order(rows, path, names), path)
    if m.shape[0] != len(names):
        raise VsbError(f"{path} has {m.shape[0]} rows but there are {len(names)} classes "
                       f"({', '.join(names)}); give one row per class, in class order.")
    bad = [names[i] for i in np.flatnonzero(~np.isfinite(m).all(axis=1))]
    if bad:
        raise VsbError(f"{path}: NaN or infinite values in the rows of {', '.join(bad)}.")
    if normalize:
        m = normalize_rows(m, str(path), names)
    return m.astype(np.float32)


def read_query_vectors(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Query vectors from a file: a name per row (the file's, else ``file[i]``) and unit-norm rows,
    on the scale of training's class vectors.  A .npy file may hold one vector (D,)."""
    path = Path(path)
    rows = read_vector_file(path, what="class vector file", allow_vector=True)
    m = _check_width(rows.matrix(), path)
    names = rows.names or [f"{path.name}[{i}]" for i in range(len(m))]
    bad = [names[i] for i in np.flatnonzero(~np.isfinite(m).all(axis=1))]
    if bad:
        raise VsbError(f"{path}: NaN or infinite values in the rows of {', '.join(bad)}.")
    return names, normalize_rows(m, str(path), names).astype(np.float32)
