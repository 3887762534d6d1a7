"""From a trained run and user input to packed codes: what ``index build`` and ``search`` share.

* the model's identity (a fingerprint of its weights and model config) that an index records;
* the items to index: the run's database split, every image of another dataset, a folder of
  image files, or a file of codes;
* the queries: image files or uploaded image bytes, class names (GloVe words, through the
  semantic branch), free text (through the run's class-vector source), class vectors from a file,
  hex codes;
* opening an index for a run (refusing one of another code length or model), and the pictures of
  its items (for ``search --grid`` and ``serve``'s thumbnails).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vsb2net.codes import hex_to_codes, pack_codes
from vsb2net.errors import VsbError


# ----------------------------------------------------------------------------- the model

def model_fingerprint(ckpt: dict) -> str:
    """SHA-256 (first 16 hex digits) of the model's method, config and weights.

    Only what decides the codes goes in: two checkpoints with the same weights and model
    config code every input alike whatever else (paths, training state) they carry.
    """
    import torch

    h = hashlib.sha256()
    head = {"method": ckpt.get("method"), "bits": ckpt.get("bits"),
            "model": (ckpt.get("config") or {}).get("model"), "in_shape": ckpt.get("in_shape"),
            "semantic_dim": ckpt.get("semantic_dim")}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(ckpt["state_dict"]):
        t = ckpt["state_dict"][name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Run:
    """A loaded run directory: config, model (CPU, eval mode), checkpoint and identity."""

    path: Path
    cfg: Any
    model: Any
    ckpt: dict

    @property
    def bits(self) -> int:
        return int(self.cfg.model.bits)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.ckpt["in_shape"])

    @property
    def class_names(self) -> list[str]:
        return list(self.ckpt["class_names"])

    def identity(self) -> dict:
        return {"fingerprint": model_fingerprint(self.ckpt), "run": str(self.path), "method": self.ckpt["method"],
                "bits": self.bits, "dataset": self.cfg.data.dataset}


def load(run_dir: str | Path) -> Run:
    from vsb2net.pipeline import load_run

    cfg, model, ckpt = load_run(run_dir)
    return Run(Path(run_dir), cfg, model, ckpt)


def encode_images(run: Run, x) -> np.ndarray:
    """Packed codes of images already in the network's input form (float tensor N x C x H x W)."""
    import torch

    from vsb2net.models.base import encode

    with torch.inference_mode():
        return pack_codes(encode(run.model.hash_images, x, torch.device("cpu")))


def semantic_codes(run: Run, vectors: np.ndarray) -> np.ndarray:
    """Packed semantic hash vectors sign(hash_classes(v)) of class vectors."""
    import torch

    if not run.model.codes_classes:
        raise VsbError(f"the run's method {run.ckpt['method']!r} has no semantic branch, so it cannot code a class "
                       "name or vector; search by --image or --code, or use a VSB2-Net run.")
    dim = int(run.ckpt["semantic_dim"])
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise VsbError(f"class vectors have {vectors.shape[-1]} components but the run's semantic branch takes {dim}; "
                       "give vectors of the kind the run was trained with.")
    with torch.inference_mode():
        return pack_codes(run.model.hash_classes(torch.from_numpy(np.asarray(vectors, np.float32))))


# ----------------------------------------------------------------------------- images

def image_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` whose extension Pillow reads, sorted by path."""
    from PIL import Image

    if not folder.is_dir():
        raise VsbError(f"image folder {folder} does not exist or is not a folder.")
    known = {ext.lower() for ext in Image.registered_extensions()}
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in known)
    if not files:
        raise VsbError(f"no image files in {folder} (looked for {', '.join(sorted(known)[:8])}, ...).")
    return files


def read_images(paths: list[Path], in_shape: tuple[int, ...]) -> np.ndarray:
    """Images as the run's network sees them: uint8 (N, H, W) greyscale or (N, H, W, 3) colour.

    Each file is converted to the run's channels and resized (bilinear) to its height and width.
    The MNIST-style datasets show a light object on a dark background; pictures should too.
    """
    _check_image_input(in_shape)
    out = np.empty((len(paths),) + _image_shape(in_shape), dtype=np.uint8)
    for i, path in enumerate(paths):
        path = Path(path)
        if not path.is_file():
            raise VsbError(f"image {path} does not exist.")
        out[i] = decode_image(path, in_shape, name=f"image {path}")
    return out


#: Largest picture (width x height) that ``decode_image`` accepts by default, well below Pillow's
#: own decompression-bomb limit (about 89 million pixels).
MAX_PIXELS = 4096 * 4096


def _check_image_input(in_shape: tuple[int, ...]) -> None:
    if len(in_shape) != 3 or in_shape[0] not in (1, 3):
        raise VsbError(f"the run's model takes inputs of shape {in_shape}, not images; it cannot code image files.")


def _image_shape(in_shape: tuple[int, ...]) -> tuple[int, ...]:
    channels, height, width = in_shape
    return (height, width) + (() if channels == 1 else (3,))


def open_picture(source: Path | bytes, *, max_pixels: int | None = MAX_PIXELS, name: str = "image"):
    """A decoded Pillow image (its first frame) of a file or of bytes, or VsbError; use it in a
    ``with`` block (it may hold the file open).

    The pixel count is checked on the header, before anything is decoded: a small file that
    declares a huge picture (a decompression bomb) is refused without allocating it.  Pillow's own
    DecompressionBombError (its larger limit) is refused too, and so is its
    DecompressionBombWarning where a warnings filter turns it into an error (``vsb2net serve``
    installs one), as is a truncated or unreadable file.
    """
    from PIL import Image, UnidentifiedImageError

    raw = isinstance(source, (bytes, bytearray, memoryview))
    im = None
    try:
        im = Image.open(io.BytesIO(source) if raw else source)
        width, height = im.size
        if max_pixels is not None and width * height > max_pixels:
            raise VsbError(f"{name} is {width} x {height} pixels, more than the limit of {max_pixels:,} pixels; "
                           "send a smaller picture.")
        im.load()
        return im
    except BaseException as exc:
        if im is not None:
            im.close()
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise VsbError(f"{name} declares more pixels than Pillow's decompression-bomb limit; send a smaller "
                           "picture.") from None
        if isinstance(exc, UnidentifiedImageError) and raw:
            detail = "not an image format Pillow reads"
        elif isinstance(exc, (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)):
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        else:
            raise
        raise VsbError(f"cannot read {name} ({detail}); give a PNG, JPEG or another format Pillow reads.") from None


def decode_image(source: Path | bytes, in_shape: tuple[int, ...], *, max_pixels: int | None = MAX_PIXELS,
                 name: str = "image") -> np.ndarray:
    """One picture (a file or bytes) as the run's network sees it (see :func:`read_images`)."""
    from PIL import Image

    _check_image_input(in_shape)
    channels, height, width = in_shape
    with open_picture(source, max_pixels=max_pixels, name=name) as im:
        try:
            im = im.convert("L" if channels == 1 else "RGB")
            return np.array(im.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)
        except (OSError, ValueError) as exc:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise VsbError(f"cannot read {name} ({detail}); give a PNG, JPEG or another format Pillow "
                           "reads.") from None


def images_tensor(images: np.ndarray):
    from vsb2net.models import images_to_tensor

    return images_to_tensor(images)


# ----------------------------------------------------------------------------- class vectors

def vector_source(run: Run) -> str:
    """Where the run's class vectors came from: "glove", "minilm", "attributes" or a file name
    (``data.class_vectors=auto`` resolved as training recorded it)."""
    source = str(run.cfg.data.class_vectors)
    if source.strip().lower() == "auto":  # what auto resolved to, as train recorded it
        split = run.path / "split.json"
        source = json.loads(split.read_text()).get("class_vectors", source) if split.is_file() else source
    return source.strip()


def class_name_vectors(run: Run, names: list[str]) -> np.ndarray:
    """Semantic vectors of class names, as the run's semantic branch expects them (unit norm).

    A name of one of the run's classes gets the exact vector the run used (class_vectors.npy);
    any other name is looked up in GloVe, which works only for runs trained on GloVe vectors.
    """
    from vsb2net.data.semantics import glove_vectors

    known = {n.strip().lower(): i for i, n in enumerate(run.class_names)}
    saved = run.path / "class_vectors.npy"
    run_vectors = np.load(saved, allow_pickle=False) if saved.is_file() else None
    source = vector_source(run)
    out = []
    for name in names:
        i = known.get(name.strip().lower())
        if i is not None and run_vectors is not None and i < len(run_vectors):
            out.append(np.asarray(run_vectors[i], np.float32))
        elif source.lower() == "glove":
            out.append(glove_vectors([name])[0])
        else:
            raise VsbError(f"class {name!r} is not one of the run's classes, and the run's class vectors come from "
                           f"{source}, not GloVe; give its vector with --class-vector FILE.")
    return np.stack(out).astype(np.float32)


#: class-vector sources whose space free text can be mapped into
TEXT_SOURCES = ("glove", "minilm")


def text_vectors(run: Run, texts: list[str]) -> np.ndarray:
    """Semantic vectors of free text in the run's class-vector space (unit norm).

    GloVe runs: the mean of the unit GloVe vectors of the text's words (unknown words and a few
    function words are left out, see :func:`vsb2net.data.semantics.glove_text_vectors`).  minilm
    runs: the all-MiniLM-L6-v2 sentence embedding of the text.  Attribute or file vectors have no
    text encoder: those runs answer class names only.
    """
    source = vector_source(run)
    kind = source.lower()
    if kind == "glove":
        from vsb2net.data.semantics import glove_text_vectors

        return glove_text_vectors(texts)
    if kind == "minilm":
        from vsb2net.data.sentence import minilm_vectors

        return minilm_vectors(texts)
    raise VsbError(f"the run's class vectors come from {source}, which has no text encoder; free-text queries work "
                   "for runs on glove or minilm vectors. Query by class name instead (one of the run's classes).")


def read_class_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """Query vectors from a file: names and unit-norm rows.

    ``.npy``: a vector (D,) or a matrix (n, D).  ``.csv``: rows of numbers, optionally preceded by
    a name (``zebra,0.1,0.3,...``); blank lines and lines starting with # are skipped.
    """
    if not path.is_file():
        raise VsbError(f"class vector file {path} does not exist.")
    suffix = path.suffix.lower()
    names: list[str] = []
    if suffix == ".npy":
        try:
            m = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise VsbError(f"cannot read {path} as a numeric .npy file ({str(exc)[:200]}).") from None
        if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
            raise VsbError(f"{path}: expected numbers, got dtype {m.dtype}.")
        m = np.atleast_2d(m).astype(np.float64)
        if m.ndim != 2:
            raise VsbError(f"{path}: expected a vector (D,) or a matrix (n, D), got shape {m.shape}.")
    elif suffix == ".csv":
        rows = []
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                for line_no, row in enumerate(csv.reader(fh), 1):
                    cells = [c.strip() for c in row]
                    if not any(cells) or cells[0].startswith("#"):
                        continue
                    try:
                        float(cells[0])
                        name = None
                    except ValueError:
                        name, cells = cells[0], cells[1:]
                    try:
                        rows.append([float(c) for c in cells])
                    except ValueError:
                        raise VsbError(f"{path}, line {line_no}: a value is not a number.") from None
                    names.append(name or f"{path.name}:{line_no}")
        except UnicodeDecodeError:
            raise VsbError(f"{path} is not a UTF-8 text CSV file.") from None
        if not rows:
            raise VsbError(f"{path} holds no vectors.")
        if len({len(r) for r in rows}) > 1:
            raise VsbError(f"{path}: rows have different numbers of values.")
        m = np.asarray(rows, dtype=np.float64)
    else:
        raise VsbError(f"class vector file {path}: use .npy or .csv, not {suffix or 'no extension'}.")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise VsbError(f"{path} holds no vectors.")
    if not np.isfinite(m).all():
        raise VsbError(f"{path}: NaN or infinite values.")
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    if (norms == 0).any():
        raise VsbError(f"{path}: an all-zero vector has no direction; fix that row.")
    if not names:
        names = [f"{path.name}[{i}]" for i in range(len(m))]
    # Training vectors are unit-norm (vsb2net.data.semantics); queries must be on the same scale.
    return names, (m / norms).astype(np.float32)


def hex_codes(hexes: list[str], bits: int) -> np.ndarray:
    return np.stack([hex_to_codes(h, bits) for h in hexes])


# ----------------------------------------------------------------------------- items to index

@dataclass
class Items:
    """What to put into an index: packed codes, ids, metadata, and a note of where they came from."""

    codes: np.ndarray
    ids: np.ndarray
    metadata: list
    source: dict


def dataset_items(run: Run, name: str, root: str | None) -> Items:
    """The run's database split (its own dataset), or every item of another dataset.

    ids are indices into the dataset as the run sees it (after ``data.max_per_class``), the same
    indices as ``database_index`` in the run's codes.npz; metadata is the class name.
    """
    from vsb2net.data import load_dataset
    from vsb2net.pipeline import prepare

    if name.strip().lower() == str(run.cfg.data.dataset).lower() and root in (None, run.cfg.data.root):
        prep = prepare(run.cfg)
        ds, ids = prep.dataset, np.asarray(prep.split.database, dtype=np.int64)
        x = prep.x[ids]
        source = {"kind": "dataset", "name": ds.name, "root": run.cfg.data.root, "split": "database",
                  "data": run.cfg.to_dict()["data"]}
    else:
        ds = load_dataset(name, root)
        if ds.kind != "image":
            raise VsbError(f"dataset {name!r} holds features, not images; only image datasets can be indexed "
                           "with another dataset's model.")
        ids = np.arange(len(ds.labels), dtype=np.int64)
        x = images_tensor(ds.x)
        if tuple(x.shape[1:]) != run.in_shape:
            raise VsbError(f"dataset {name!r} has inputs of shape {tuple(x.shape[1:])} but the run's model takes "
                           f"{run.in_shape}; index a dataset of the same image size.")
        source = {"kind": "dataset", "name": ds.name, "root": root, "split": "all"}
    codes = encode_images(run, x)
    if ds.multilabel:
        metadata = [{"class": ", ".join(ds.class_names[c] for c in np.flatnonzero(row))} for row in ds.labels[ids]]
    else:
        metadata = [{"class": ds.class_names[int(c)]} for c in ds.labels[ids]]
    return Items(codes, ids, metadata, source)


def image_folder_items(run: Run, folder: Path) -> Items:
    files = image_files(folder)
    images = read_images(files, run.in_shape)
    codes = encode_images(run, images_tensor(images))
    metadata = [{"file": str(p.resolve())} for p in files]
    return Items(codes, np.arange(len(files), dtype=np.int64), metadata,
                 {"kind": "images", "folder": str(folder.resolve())})


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
    return Items(codes, np.arange(len(codes), dtype=np.int64), [None] * len(codes),
                 {"kind": "codes", "file": str(path.resolve())})


# ----------------------------------------------------------------------------- indexes

def open_index(run: Run, path: str | Path, **search_params: Any):
    """The index at ``path``, checked to hold codes of this run's model and code length."""
    from .base import HammingIndex

    return HammingIndex.load(Path(path), bits=run.bits, model=run.identity()["fingerprint"], **search_params)


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
        self._x = None
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
        meta = self._index.metadata[pos]
        path = meta.get("file") if isinstance(meta, dict) else None
        if not isinstance(path, str) or not Path(path).is_file():
            return None
        try:
            with open_picture(Path(path), max_pixels=max_pixels, name=f"image {path}") as im:
                im = im.convert("RGB")
        except VsbError:
            return None
        im.thumbnail((size, size))
        return np.asarray(im)
