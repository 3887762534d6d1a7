"""What goes into an index, and the pictures of what is in one.

* the items to index (``index build``, which codes them shard by shard: build.py): the run's
  database split, every image of another dataset, a folder of image files, or a file of codes;
* :class:`ItemPictures`: the pictures of an index's items by id (``search --grid`` and
  ``serve``'s thumbnails).

A loaded run (:class:`vsb2net.run.Run`) codes the items; image files are read by
:mod:`vsb2net.data.images`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsb2net.codes import pack_codes
from vsb2net.data.images import MAX_PIXELS, image_files, open_picture, read_images
from vsb2net.errors import VsbError
from vsb2net.run import Run

# ----------------------------------------------------------------------------- items to index

@dataclass
class Items:
    """What to put into an index: ids, metadata, a note of where they came from, and either the
    model inputs to code (read lazily, a slice at a time: ``inputs(rows)``, rows into ``ids``) or
    ready codes (``codes``, from a codes file)."""

    ids: np.ndarray
    metadata: list
    source: dict
    #: why the model may code these items badly (``index build`` prints them, the index keeps them)
    warnings: list[str] = field(default_factory=list)
    #: the model's inputs (uint8 pictures or the network's input tensor) of the items at ``rows``
    inputs: Callable[[np.ndarray], Any] | None = None
    codes: np.ndarray | None = None


def dataset_items(run: Run, name: str, root: str | None) -> Items:
    """The run's database split (its own dataset), or every item of another dataset.

    ids are indices into the dataset as the run sees it (after ``data.max_per_class``), the same
    indices as ``database_index`` in the run's codes.npz; metadata is the class name.
    """
    from vsb2net.data import load_dataset
    from vsb2net.models import images_to_tensor
    from vsb2net.pipeline import prepare

    if name.strip().lower() == str(run.cfg.data.dataset).lower() and root in (None, run.cfg.data.root):
        prep = prepare(run.cfg)
        ds, ids = prep.dataset, np.asarray(prep.split.database, dtype=np.int64)
        x = prep.x
        source = {"kind": "dataset", "name": ds.name, "root": run.cfg.data.root, "split": "database",
                  "data": run.cfg.to_dict()["data"]}
    else:
        ds = load_dataset(name, root)
        if ds.kind != "image":
            raise VsbError(f"dataset {name!r} holds features, not images; only image datasets can be indexed "
                           "with another dataset's model.")
        ids = np.arange(len(ds.labels), dtype=np.int64)
        x = images_to_tensor(ds.x)
        if tuple(x.shape[1:]) != run.in_shape:
            raise VsbError(f"dataset {name!r} has inputs of shape {tuple(x.shape[1:])} but the run's model takes "
                           f"{run.in_shape}; index a dataset of the same image size.")
        source = {"kind": "dataset", "name": ds.name, "root": root, "split": "all"}
    if ds.multilabel:
        metadata = [{"class": ", ".join(ds.class_names[c] for c in np.flatnonzero(row))} for row in ds.labels[ids]]
    else:
        metadata = [{"class": ds.class_names[int(c)]} for c in ds.labels[ids]]
    return Items(ids, metadata, source, inputs=lambda rows: x[ids[rows]])


def image_folder_items(run: Run, folder: Path) -> Items:
    files = image_files(folder)
    root = folder.resolve()
    # paths relative to the indexed folder: search results and the API show no server paths; the
    # index records the folder once, for the pictures
    metadata = [{"file": p.resolve().relative_to(root).as_posix()} for p in files]
    return Items(np.arange(len(files), dtype=np.int64), metadata, {"kind": "images", "folder": str(root)},
                 fit_warnings(run, files), inputs=lambda rows: read_images([files[i] for i in rows], run.in_shape))


def file_list_items(run: Run, listing: Path) -> Items:
    """The images a text file lists, one path a line (``#`` comments and blank lines skipped;
    relative paths are relative to the list's folder), ids 0.. in the list's order: how a
    collection too large to walk, or spread over several disks, is handed to ``index build``."""
    if not listing.is_file():
        raise VsbError(f"file list {listing} does not exist; give a text file with one image path a line.")
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise VsbError(f"file list {listing} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    root = listing.resolve().parent
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not names:
        raise VsbError(f"file list {listing} names no image; give one image path a line.")
    files = [(root / n).resolve() for n in names]
    missing = [n for n, p in zip(names, files) if not p.is_file()]
    if missing:
        raise VsbError(f"file list {listing}: {len(missing)} of {len(files)} listed files do not exist, e.g. "
                       f"{', '.join(missing[:3])} (relative paths are read from {root}).")
    # paths under the list's folder are kept relative to it (no server paths in answers), others as given
    metadata = [{"file": p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)} for p in files]
    return Items(np.arange(len(files), dtype=np.int64), metadata,
                 {"kind": "images", "folder": str(root), "list": str(listing.resolve())},
                 fit_warnings(run, files), inputs=lambda rows: read_images([files[i] for i in rows], run.in_shape))


#: images sampled for :func:`fit_warnings`
FIT_SAMPLE = 64
#: mean (max - min) over R, G, B of a picture's pixels above which it counts as colour
COLOUR_SPREAD = 12.0
#: how many times larger (shorter side) than the model's input images may be without a warning
SHRINK_LIMIT = 4.0


def fit_warnings(run: Run, files: list[Path]) -> list[str]:
    """Why images may not fit what the run's model was trained on: colour pictures for a
    greyscale model, pictures far larger than its input when its training images came at that
    size (no ``data.image_size``).  Looks at up to FIT_SAMPLE files (their headers, and a
    32-pixel thumbnail for colour); [] when they fit."""
    shape = run.in_shape
    if len(shape) != 3 or not files:
        return []
    channels, height, width = shape
    picks = [files[i] for i in np.linspace(0, len(files) - 1, min(FIT_SAMPLE, len(files))).astype(int)]
    colour, sides, sizes = 0, [], []
    for path in picks:
        try:
            with open_picture(path, name=f"image {path.name}") as im:
                sizes.append(im.size)
                sides.append(min(im.size))
                im.thumbnail((32, 32))
                rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
        except VsbError:
            continue
        colour += float((rgb.max(axis=2) - rgb.min(axis=2)).mean()) > COLOUR_SPREAD
    problems = []
    if channels == 1 and colour:
        problems.append(f"{colour} of {len(sides)} sampled images are in colour and will be turned grey")
    # a run that resized its training images (data.image_size) saw large pictures shrunk too
    shrink = float(np.median(sides)) / min(height, width) if sides else 1.0
    if shrink > SHRINK_LIMIT and run.cfg.data.image_size is None:
        w, h = sizes[len(sizes) // 2]
        problems.append(f"they are about {w}x{h} pixels and will be shrunk {shrink:.0f}x to {width}x{height}")
    if not problems:
        return []
    from vsb2net.models.backbones import resolve_backbone

    kind = "greyscale" if channels == 1 else "colour"
    backbone = resolve_backbone(str(run.cfg.model.backbone), shape)
    return [f"these images do not fit what the run's model was trained on: backbone {backbone} takes "
            f"{width}x{height} {kind} input ({channels} channel{'s' if channels != 1 else ''}) and was trained on "
            f"{run.cfg.data.dataset}; " + "; ".join(problems) + ". Their codes will mean little. For photos, train "
            "a run on photos (README: 'Index a folder of photos', model.backbone=efficientnet-lite0)."]


def code_file_items(run: Run, path: Path) -> Items:
    """Codes from a .npy file: packed uint8 (N, bits/8), or unpacked (N, bits) +-1/0-1/real values."""
    if not path.is_file():
        raise VsbError(f"codes file {path} does not exist.")
    if path.suffix.lower() != ".npy":
        raise VsbError(f"codes file {path}: give a .npy file (np.save of a codes matrix).")
    try:
        m = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise VsbError(f"cannot read {path} as a plain .npy array ({str(exc)[:200]}); pickled arrays "
                       "are refused.") from None
    bits = run.bits
    if m.ndim != 2:
        raise VsbError(f"{path}: expected a matrix of codes (N, {bits // 8}) packed or (N, {bits}) unpacked, "
                       f"got shape {m.shape}.")
    if m.dtype == np.uint8 and m.shape[1] == bits // 8:
        codes = np.ascontiguousarray(m)
    elif m.shape[1] == bits:
        if m.dtype == np.bool_ or (m.size and set(np.unique(m).tolist()) <= {0, 1}):
            codes = np.packbits(m.astype(bool), axis=1)  # 0/1 bits; pack_codes would map 0 to bit 1
        else:
            codes = pack_codes(m)
    else:
        raise VsbError(f"{path}: shape {m.shape} does not hold {bits}-bit codes; expected (N, {bits // 8}) uint8 "
                       f"packed codes or (N, {bits}) unpacked ones.")
    return Items(np.arange(len(codes), dtype=np.int64), [None] * len(codes),
                 {"kind": "codes", "file": str(path.resolve())}, codes=codes)


# ----------------------------------------------------------------------------- pictures

class ItemPictures:
    """Pictures of an index's items by id, from where the index was built.

    An index built from a dataset (``index build --dataset``) shows the dataset's images (ids are
    dataset indices; the dataset is loaded on the first request); one built from an image folder
    (``--images``) shows the files its metadata lists, and no other path; one built from codes
    has no pictures (``available`` is False).
    """

    def __init__(self, run: Run, index: Any):
        self.run = run
        source = (index.info or {}).get("source") or {}
        self.source = source
        self.kind = source.get("kind") if source.get("kind") in ("dataset", "images") else None
        self._index = index
        self._x: np.ndarray | None = None
        self._order: np.ndarray | None = None

    @property
    def available(self) -> bool:
        return self.kind is not None

    def position(self, item_id: int) -> int | None:
        """Where ``item_id`` sits inside the index, or None when it holds no such id."""
        ids = self._index.ids
        if not -(1 << 63) <= int(item_id) < (1 << 63):
            return None
        if self._order is None:
            self._order = np.argsort(ids, kind="stable")
        j = int(np.searchsorted(ids, item_id, sorter=self._order))
        if j < len(ids) and ids[self._order[j]] == item_id:
            return int(self._order[j])
        return None

    def _dataset_images(self):
        if self._x is None:
            if self.source.get("split") == "database":
                from vsb2net.pipeline import prepared_dataset

                # the images only: no split, class vectors or pretrained trunk output
                self._x = prepared_dataset(self.run.cfg).x
            else:
                from vsb2net.data import load_dataset

                self._x = load_dataset(self.source["name"], self.source.get("root")).x
        return self._x

    def _file(self, pos: int) -> Path | None:
        meta = self._index.metadata[pos]
        name = meta.get("file") if isinstance(meta, dict) else None
        if not isinstance(name, str):
            return None
        # relative to the indexed folder (indexes built before hold absolute paths: the join keeps them)
        path = Path(self.source.get("folder") or ".") / name
        return path if path.is_file() else None

    def get(self, item_id: int, size: int = 96, max_pixels: int | None = MAX_PIXELS) -> np.ndarray | None:
        """uint8 (H, W) or (H, W, 3) picture of an indexed item, at most ``size`` pixels a side for
        files (dataset images come as they are); None when the index has no such item or its file
        cannot be read (moved since, or not a picture)."""
        pos = self.position(int(item_id))
        if pos is None or self.kind is None:
            return None
        if self.kind == "dataset":
            x = self._dataset_images()
            return np.asarray(x[item_id]) if 0 <= item_id < len(x) else None
        path = self._file(pos)
        if path is None:
            return None
        try:
            with open_picture(path, max_pixels=max_pixels, name=f"image {path.name}") as im:
                im = im.convert("RGB")
        except VsbError:
            return None
        im.thumbnail((size, size))
        return np.asarray(im)

    def model_input(self, item_id: int) -> np.ndarray | None:
        """The item's picture as the run's network takes it (what ``index build`` coded), or None."""
        pos = self.position(int(item_id))
        if pos is None or self.kind is None:
            return None
        if self.kind == "dataset":
            return self.get(item_id)
        path = self._file(pos)
        try:
            return None if path is None else read_images([path], self.run.in_shape)[0]
        except VsbError:
            return None
