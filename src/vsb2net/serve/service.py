"""What ``vsb2net serve`` answers, without HTTP: queries to codes, codes to hits, hits to JSON.

``SearchService`` holds the run (model on the CPU), the index, the micro-batcher and a thread
pool for model work (image decoding and the visual branch, class and text vectors through the
semantic branch), so none of it runs on the event loop.  ``vsb2net.serve.app`` puts HTTP around
it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsb2net.codes import hexes_to_codes
from vsb2net.data.images import MAX_PIXELS, decode_image
from vsb2net.data.semantics import TEXT_SOURCES
from vsb2net.errors import VsbError
from vsb2net.index.hamming_index import open_index
from vsb2net.index.hits import Hits
from vsb2net.index.items import ItemPictures
from vsb2net.run import Run

from .batching import CallBatcher, MicroBatcher

log = logging.getLogger("vsb2net.serve")


def one_line(text: Any, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."

QUERY_KINDS = ("image", "class", "text", "code", "item")


def item_labels(metadata: Any) -> list[str]:
    """The classes an index knows of an item: a dataset's ``{"class": "Cow"}`` (``"a, b"`` for
    several labels), or the sub-folder of an image folder's ``{"file": "cow/3.jpg"}``; [] when none."""
    if not isinstance(metadata, dict):
        return []
    if isinstance(metadata.get("class"), str):
        return [c.strip() for c in metadata["class"].split(",") if c.strip()]
    file = metadata.get("file")
    if isinstance(file, str) and "/" in file.strip("/") and not file.startswith("/"):
        return [file.split("/", 1)[0]]
    return []


def _key(name: str) -> str:
    return " ".join(str(name).split()).lower()


class _LRU:
    """A small least-recently-used cache (not thread-safe: the event loop's own)."""

    def __init__(self, size: int):
        self.size = size
        self.data: OrderedDict = OrderedDict()

    def get(self, key):
        value = self.data.get(key)
        if value is not None:
            self.data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask; every one is checked before any work is done."""

    max_upload_bytes: int = 8 * 1024 * 1024
    max_pixels: int = MAX_PIXELS
    max_k: int = 1000
    max_text_chars: int = 500
    thumb_size: int = 96


class SearchService:
    def __init__(self, run_dir: str | Path, index_path: str | Path, *, limits: Limits = Limits(),
                 batch_window_s: float = 0.002, max_batch: int = 64, model_threads: int = 2,
                 **search_params: Any):
        self.run = Run.load(run_dir)
        self.index_path = Path(index_path)
        self.index = open_index(self.run, self.index_path, **search_params)
        self.identity = self.run.identity()
        self.source = self.run.vector_source()
        backend_max = self.index.backend.max_k  # e.g. Milvus returns at most 16,384 hits per query
        max_k = limits.max_k if backend_max is None else min(limits.max_k, backend_max)
        self.limits = Limits(**{**limits.__dict__, "max_k": max_k})
        self.batcher = MicroBatcher(self.index, window_s=batch_window_s, max_batch=max_batch)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=model_threads,
                                                          thread_name_prefix="vsb2net-model")
        self.pictures = ItemPictures(self.run, self.index)
        # uploads are decoded one by one in the pool, then coded together: one forward pass a batch
        self.image_batcher = CallBatcher(self._encode_images, self.pool, window_s=batch_window_s,
                                         max_batch=max_batch)
        self._pictures_lock = threading.Lock()
        self.kinds = self._supported_kinds()
        # what /info says of the run's split and measured class-name mAP: read once, like the model,
        # not on every request (metrics.json holds the run's curves too)
        split = self.run.split_info()
        self._split_classes = split.get("seen"), split.get("unseen")
        self.quality = self.run.class_name_quality()
        self._class_name_map = (None if self.quality is None else
                                {"unseen": self.quality["map"], "chance": self.quality["chance"]})
        self._known_classes = {_key(n) for n in self.run.class_names}
        #: the classes the index knows of its items (lower case -> as written): hits of a class query
        #: are marked as of that class or not where the queried name is one of them
        self.index_labels = {_key(c): c for meta in self.index.metadata for c in item_labels(meta)}
        #: what `index build` found wrong with the indexed images (colour photos for a greyscale model, ...);
        #: `vsb2net serve` prints them once at start, /info lists them
        self.index_warnings = [str(w) for w in (self.index.info or {}).get("warnings") or []]
        # repeated class names, texts and thumbnails cost one model call each; the caches are read
        # and written on the event loop only, so a hit needs no trip to the thread pool
        self._class_codes = _LRU(1024)
        self._text_codes = _LRU(1024)
        self._thumbnails = _LRU(4096)

    # -- what this run can answer -----------------------------------------------------------------
    def _supported_kinds(self) -> dict[str, str | None]:
        """Query kind -> None when supported, else the one-line reason why not (``self.plain_reasons``:
        the same for a person, without the API's terms)."""
        semantic = bool(getattr(self.run.model, "codes_classes", False))
        no_branch = (f"the run's method {self.identity['method']!r} has no semantic branch, so it codes images "
                     "only; query by image or code.")
        plain_no_branch = "This model was trained without class names, so it can only search by picture or code."
        shape = self.run.in_shape
        image_ok = len(shape) == 3 and shape[0] in (1, 3)
        text = plain_text = None
        if not semantic:
            text, plain_text = no_branch, plain_no_branch
        elif self.source.lower() not in TEXT_SOURCES:
            text = (f"the run's class vectors come from {self.source}, which has no text encoder; free text works for "
                    "runs on glove or minilm vectors. Query by class name instead (GET /search/class; GET /info "
                    "lists the run's classes).")
            plain_text = (f"This model knows its classes by their {self.source}, not by words, so it cannot read free "
                          "text. Search by a class name instead.")
        item = None if self.index.backend.returns_codes else (
            f"the {self.index.backend_name} backend returns no stored codes, so hits cannot be searched by.")
        image = None if image_ok else f"the run's model takes inputs of shape {shape}, not images."
        self.plain_reasons = {
            "image": None if image_ok else "This model reads feature vectors, not pictures.",
            "class": None if semantic else plain_no_branch, "text": plain_text, "code": None,
            "item": None if item is None else (f"This index ({self.index.backend_name}) cannot hand back its codes, "
                                               "so a hit cannot be searched by.")}
        return {"image": image, "class": None if semantic else no_branch, "text": text, "code": None, "item": item}

    def require(self, kind: str) -> None:
        reason = self.kinds.get(kind)
        if reason:
            raise VsbError(reason)

    def warm_up(self) -> None:
        """Load what the first query of each kind would otherwise wait for (GloVe, MiniLM)."""
        if self.kinds["text"] is None:
            try:
                self.run.text_vectors(["cat"])
            except VsbError as exc:  # reported when a text query comes; the server still starts
                log.warning("text queries will fail: %s", exc)

    def info(self) -> dict:
        seen, unseen = self._split_classes
        source = (self.index.info or {}).get("source") or {}
        return {
            "method": self.identity["method"], "bits": self.run.bits, "backend": self.index.backend_name,
            "backend_params": self.index.backend.params, "count": len(self.index), "run": str(self.run.path),
            "index": str(self.index_path), "model": self.identity["fingerprint"],
            "dataset": self.identity["dataset"],
            # the folder's name only: the API shows no server paths
            "index_source": {k: Path(source[k]).name if k == "folder" else source.get(k)
                             for k in ("kind", "name", "split", "folder") if k in source},
            "class_vectors": self.source, "class_names": self.run.class_names, "seen": seen, "unseen": unseen,
            # how well class-name search works for this run, as its evaluation measured it on the
            # unseen classes (null before `vsb2net evaluate`): a figure to read beside its chance,
            # and the same judged in words (vsb2net.run.class_name_quality)
            "class_name_map": self._class_name_map,
            "class_name_quality": self.quality,
            # the classes hits are marked by (of the queried class or not); [] when the index knows none
            "index_classes": sorted(self.index_labels.values(), key=str.lower),
            # why the indexed images may not fit the model (from `index build`): [] when they do
            "index_warnings": self.index_warnings,
            "queries": {kind: {"supported": reason is None,
                               **({"reason": reason, "plain": self.plain_reasons[kind]} if reason else {})}
                        for kind, reason in self.kinds.items()},
            "thumbnails": self.pictures.available,
            "limits": {"max_k": self.limits.max_k, "max_radius": self.run.bits,
                       "max_upload_bytes": self.limits.max_upload_bytes, "max_pixels": self.limits.max_pixels,
                       "max_text_chars": self.limits.max_text_chars},
            "batching": {"window_ms": self.batcher.window_s * 1000, "max_batch": self.batcher.max_batch,
                         "index_calls": self.batcher.calls, "queries": self.batcher.queries,
                         "image_model_calls": self.image_batcher.calls, "images": self.image_batcher.items},
        }

    # -- queries to codes (in the model pool) ---------------------------------------------------------
    async def _in_pool(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _cached(self, cache: _LRU, key, fn):
        value = cache.get(key)
        if value is None:
            value = await self._in_pool(fn, key)
            if value is not None:
                cache.put(key, value)
        return value

    def _decode(self, data: bytes) -> np.ndarray:
        return decode_image(data, self.run.in_shape, max_pixels=self.limits.max_pixels, name="the upload")

    def _encode_images(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.run.image_outputs(np.stack(images)))

    # a query is the model's real-valued code (bits,) float32: its signs are the code searched,
    # and the index orders items at one distance by their inner product with it

    async def image_code(self, data: bytes) -> np.ndarray:
        self.require("image")
        if not data:
            raise VsbError("the upload is empty; send an image file (PNG, JPEG, ...).")
        return await self.image_batcher(await self._in_pool(self._decode, data))

    def _class_code(self, key: str) -> np.ndarray:
        return self.run.class_name_outputs([key])[0]

    async def class_code(self, name: str) -> np.ndarray:
        self.require("class")
        key = _key(name)
        if not key:
            raise VsbError(f"the class name is empty; give one, e.g. {self._class_list()}.")
        if len(key) > self.limits.max_text_chars:
            raise VsbError(f"the class name is {len(key)} characters long, more than the limit of "
                           f"{self.limits.max_text_chars}.")
        if self.source.lower() != "glove" and key not in self._known_classes:
            raise VsbError(f"{one_line(name, 80)!r} is not one of the run's classes{self._nearest(key)}; the run's "
                           f"classes are {self._class_list()} (its class vectors come from {self.source}, so other "
                           "names have none).")
        try:
            return await self._cached(self._class_codes, key, self._class_code)
        except VsbError as exc:
            if key in self._known_classes or not any(w in str(exc) for w in ("no GloVe vector", "no words to look up")):
                raise
            # GloVe's own message speaks of renaming training classes: say what a searcher can do
            raise VsbError(f"{one_line(name, 80)!r} is neither one of the run's classes{self._nearest(key)} nor made "
                           f"of words GloVe knows; try one of {self._class_list()}, or other English words.") from None

    def _class_list(self, most: int = 30) -> str:
        names = self.run.class_names
        return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")

    def _nearest(self, key: str) -> str:
        """' (did you mean A or B?)' for the run's class names closest in spelling to ``key``, else ''."""
        by_key = {_key(n): n for n in self.run.class_names}
        close = [by_key[k] for k in difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.6)]
        return f" (did you mean {' or '.join(close)}?)" if close else ""

    def _text_code(self, text: str) -> np.ndarray:
        return self.run.text_outputs([text])[0]

    async def text_code(self, text: str) -> np.ndarray:
        self.require("text")
        text = " ".join(str(text).split())
        if not text:
            raise VsbError("the text is empty; describe what to find, e.g. 'a striped horse'.")
        if len(text) > self.limits.max_text_chars:
            raise VsbError(f"the text is {len(text)} characters long, more than the limit of "
                           f"{self.limits.max_text_chars}.")
        return await self._cached(self._text_codes, text, self._text_code)

    def hex_code(self, text: str) -> np.ndarray:
        """The packed code (uint8) of a hex string: a code query has no real-valued code."""
        if len(text) > 2 * self.run.bits:  # do not echo an arbitrarily long string back
            raise VsbError(f"hex code has {len(text)} characters but a {self.run.bits}-bit code needs "
                           f"{self.run.bits // 4} hex digits; check the code length.")
        return hexes_to_codes([text], self.run.bits)[0]

    def _item_code(self, item_id: int) -> np.ndarray:
        from vsb2net.codes import pack_codes

        pos = self.pictures.position(item_id)
        if pos is None:  # answered 404, like /thumb of an id the index does not hold
            raise LookupError(f"the index holds no item with id {item_id}; search by the ids that hits show.")
        if not self.index.backend.returns_codes:
            raise VsbError(f"the {self.index.backend_name} backend returns no stored codes, so it cannot search by an "
                           "item; search by its picture or its code instead.")
        stored = self.index.backend.codes(np.array([pos], np.int64))[0]
        # the item's picture through the visual branch gives its real-valued code, which orders the
        # ties; only where its signs are the stored code (the same model coded the same picture)
        picture = self.pictures.model_input(item_id) if self.kinds["image"] is None else None
        if picture is not None:
            try:
                real = self.run.image_outputs(picture[None])[0]
            except VsbError:
                return stored
            if np.array_equal(pack_codes(real[None])[0], stored):
                return real
        return stored

    async def item_code(self, item_id: int) -> np.ndarray:
        """The stored code of an indexed item (as a real-valued code from its picture where one
        gives the same code), so that a click on a hit searches by it."""
        return await self._in_pool(self._item_code, item_id)

    # -- codes to hits --------------------------------------------------------------------------------
    def check_k_radius(self, k: int | None, radius: int | None) -> tuple[int, int | None]:
        """(k, radius) after the range checks; k defaults to 10 (k-NN) or max_k (radius)."""
        if radius is not None and not 0 <= radius <= self.run.bits:
            raise VsbError(f"radius must be between 0 and {self.run.bits} (the code length), got {radius}.")
        if k is not None and not 1 <= k <= self.limits.max_k:
            raise VsbError(f"k must be between 1 and {self.limits.max_k}, got {k}.")
        return (k if k is not None else (10 if radius is None else self.limits.max_k)), radius

    async def search(self, kind: str, query: str, code: np.ndarray, k: int | None, radius: int | None) -> dict:
        """``code``: a real-valued query code (float, (bits,)) or a packed one (uint8, a hex query)."""
        from vsb2net.codes import codes_to_hex, pack_codes

        k, radius = self.check_k_radius(k, radius)
        real = None
        if code.dtype != np.uint8:
            real = np.asarray(code, np.float32)
            code = pack_codes(real[None, :])[0]
            if not self.index.backend.returns_codes:
                real = None  # a backend without stored codes (Milvus): ties in a fixed shuffled order
        hits = await self.batcher.search(code, k, radius, real)
        nearest = None
        if radius is not None and len(hits) == 0 and len(self.index):
            # nothing within the radius: how far the nearest item lies says what radius would reach it
            nearest = int((await self.batcher.search(code, 1, None, None)).distances[0])
        return {"query": {"kind": kind, "query": query, "code": codes_to_hex(code)}, "k": k, "radius": radius,
                # the score of an item with the query's own code: scores run from -score_max to score_max
                "score_max": None if real is None else round(float(np.abs(real).sum()), 4),
                "nearest_distance": nearest, **self.hits_json(hits, radius, self.query_class(kind, query))}

    def query_class(self, kind: str, query: str) -> str | None:
        """The class a query asks for, as the index writes it, where hits can be marked by it: a class
        query naming one of the index's classes, or an item query for an item of one class."""
        if kind == "class":
            return self.index_labels.get(_key(query))
        if kind == "item" and self.index_labels:
            pos = self.pictures.position(int(query))
            labels = [] if pos is None else item_labels(self.index.metadata[pos])
            return labels[0] if len(labels) == 1 else None
        return None

    def hits_json(self, hits: Hits, radius: int | None, query_class: str | None = None) -> dict:
        groups = hits.tie_groups()
        size = {g["distance"]: g["count"] for g in groups}
        thumbs = self.pictures.available
        scores = None if hits.scores is None else hits.scores.tolist()
        wanted = None if query_class is None else _key(query_class)
        rows = []
        for i, (item, d) in enumerate(zip(hits.ids.tolist(), hits.distances.tolist())):
            labels = item_labels(hits.metadata[i])
            rows.append({"rank": i + 1, "id": item, "distance": d,
                         "score": None if scores is None else round(scores[i], 4),
                         "metadata": hits.metadata[i], "tie": size[d] > 1,
                         "thumbnail": f"/thumb/{item}" if thumbs else None,
                         "classes": labels,
                         "of_query_class": None if wanted is None else any(_key(c) == wanted for c in labels)})
        last = groups[-1] if groups else None
        return {"count": len(rows), "hits": rows, "ties_by": "score" if scores is not None else "shuffle",
                "groups": groups,
                # the last distance continues past the list: more items lie at that distance
                "more_at_last_distance": bool(last and last["count"] > last["shown"]),
                # radius search: more items lie within the radius than k (null for k-nearest search)
                "truncated": None if radius is None else sum((hits.groups or {}).values()) > len(rows),
                "query_class": None if query_class is None else {
                    "name": query_class, "hits": sum(bool(r["of_query_class"]) for r in rows), "of": len(rows)}}

    # -- thumbnails -----------------------------------------------------------------------------------
    def _thumbnail_png(self, item_id: int) -> bytes | None:
        from PIL import Image

        with self._pictures_lock:  # the dataset is loaded once, by the first request that needs it
            pic = self.pictures.get(item_id, size=self.limits.thumb_size, max_pixels=self.limits.max_pixels)
        if pic is None:
            return None
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pic)).save(buf, format="PNG")
        return buf.getvalue()

    async def thumbnail(self, item_id: int) -> bytes:
        if not self.pictures.available:
            raise LookupError("this index was built from codes, which have no pictures.")
        if self.pictures.position(item_id) is None:
            raise LookupError(f"the index holds no item with id {item_id}.")
        png = await self._cached(self._thumbnails, item_id, self._thumbnail_png)
        if png is None:
            raise LookupError(f"the picture of item {item_id} cannot be read (its file moved or is not an image).")
        return png

    async def close(self) -> None:
        await self.image_batcher.stop()
        await self.batcher.stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.index.close()
