"""NUS-WIDE (Chua et al., CIVR 2009) as distributed: low-level features + concept ground truth.

Reads, under ``--data-root NUS-WIDE``::

    Groundtruth/AllLabels/Labels_<concept>.txt       one 0/1 per line, one line per image
    ConceptsList/Concepts81.txt (or Concepts81.txt)  concept names (optional: else the label files)
    [NUS_WID_Low_Level_Features/]Low_Level_Features/*.dat
                                                     one image per line, space-separated numbers

The features are the distributed low-level ones (colour histogram, moments, correlogram, edge
histogram, wavelet texture, and the 500-d SIFT bag of words when present), concatenated in file
name order.  As in most hashing papers on NUS-WIDE, the 21 most frequent concepts are kept and
images carrying none of them are dropped.  Relevance is sharing at least one concept.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.errors import VsbError

ENV = "VSB2NET_NUS_WIDE_DIR"
TOP_CONCEPTS = 21
HOW = ("Get NUS-WIDE from its home page (lms.comp.nus.edu.sg/research/NUS-WIDE.htm): the Groundtruth, "
       "ConceptsList and Low-Level Features archives; unpack them into one directory and pass "
       f"--data-root DIR (or set {ENV}=DIR). Other features or images: save them as an `npy` dataset.")


def _root(root: str | None) -> Path | None:
    root = root if root is not None else os.environ.get(ENV)
    return None if root is None else Path(root)


def _feature_dir(d: Path) -> Path | None:
    for sub in ("Low_Level_Features", "NUS_WID_Low_Level_Features/Low_Level_Features"):
        if (d / sub).is_dir():
            return d / sub
    return None


def _probe(root: str | None = None) -> tuple[bool, str]:
    d = _root(root)
    if d is None:
        return False, f"no --data-root or ${ENV}"
    missing = [p for p, ok in (("Groundtruth/AllLabels/", (d / "Groundtruth" / "AllLabels").is_dir()),
                               ("Low_Level_Features/", _feature_dir(d) is not None)) if not ok]
    return (False, f"missing in {d}: {', '.join(missing)}") if missing else (True, str(d))


def _read_numbers(path: Path, dtype) -> np.ndarray:
    """A whitespace-separated text matrix, one row per line (faster than np.loadtxt on 270k lines)."""
    try:
        text = path.read_bytes()
    except OSError as e:
        raise VsbError(f"cannot read {path}: {e.strerror or e}.") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise VsbError(f"{path} is empty.")
    width = len(lines[0].split())
    try:
        values = np.array(b" ".join(lines).split(), dtype=dtype)
    except ValueError:
        raise VsbError(f"{path} holds something that is not a number; expected one row of numbers per image.") from None
    if values.size != width * len(lines):
        raise VsbError(f"{path}: rows have different numbers of values (the first has {width}); the file is "
                       "damaged or truncated.")
    return values.reshape(len(lines), width)


@register_dataset(
    "nus-wide",
    description=f"NUS-WIDE (multi-label): low-level features, the {TOP_CONCEPTS} most frequent of 81 concepts",
    how_to_get=HOW,
    probe=_probe,
)
def load_nus_wide(root: str | None = None, **_options) -> Dataset:
    d = _root(root)
    if d is None:
        raise VsbError(f"nus-wide: no directory given. {HOW}")
    label_dir = d / "Groundtruth" / "AllLabels"
    if not label_dir.is_dir():
        raise VsbError(f"nus-wide: {label_dir} does not exist. {HOW}")
    files = {p.stem[len("Labels_"):]: p for p in label_dir.glob("Labels_*.txt")}
    if not files:
        raise VsbError(f"nus-wide: {label_dir} holds no Labels_<concept>.txt files. {HOW}")
    concepts_file = next((p for p in (d / "ConceptsList" / "Concepts81.txt", d / "Concepts81.txt") if p.is_file()),
                         None)
    concepts = ([ln.strip() for ln in concepts_file.read_text().splitlines() if ln.strip()]
                if concepts_file else sorted(files))
    missing = [c for c in concepts if c not in files]
    if missing:
        raise VsbError(f"nus-wide: no label file for concept(s) {', '.join(missing[:5])} in {label_dir} "
                       f"(listed in {concepts_file}).")
    columns = [_read_numbers(files[c], np.uint8)[:, 0] for c in concepts]
    n = len(columns[0])
    bad = [c for c, col in zip(concepts, columns) if len(col) != n]
    if bad:
        raise VsbError(f"nus-wide: Labels_{bad[0]}.txt has a different number of lines than "
                       f"Labels_{concepts[0]}.txt ({n}); every label file lists every image.")
    labels = np.stack(columns, axis=1)
    if not np.isin(labels, (0, 1)).all():
        raise VsbError(f"nus-wide: the label files in {label_dir} must hold only 0 and 1.")
    fdir = _feature_dir(d)
    if fdir is None:
        raise VsbError(f"nus-wide: no Low_Level_Features directory in {d}. {HOW}")
    feature_files = sorted(p for p in fdir.glob("*.dat") if p.name.startswith(("Normalized_", "BoW")))
    if not feature_files:
        raise VsbError(f"nus-wide: {fdir} holds no Normalized_*.dat or BoW*.dat feature files. {HOW}")
    blocks = []
    for p in feature_files:
        block = _read_numbers(p, np.float32)
        if len(block) != n:
            raise VsbError(f"nus-wide: {p} has {len(block)} rows but the label files {n}; they must describe "
                           "the same images in the same order.")
        blocks.append(block)
    x = np.hstack(blocks)
    freq = labels.sum(axis=0)
    top = sorted(np.argsort(-freq, kind="stable")[:TOP_CONCEPTS].tolist())
    labels = labels[:, top]
    keep = np.flatnonzero(labels.any(axis=1))
    names = [concepts[c].replace("_", " ") for c in top]
    return Dataset(name="nus-wide", x=x[keep], labels=labels[keep], class_names=names, kind="features",
                   source=f"{d} ({', '.join(p.name for p in feature_files)}; {n - len(keep)} images without any "
                          f"of the {len(top)} concepts dropped)")
