"""AwA2, CUB, SUN, AwA1 and aPY as precomputed ResNet-101 features, from the xlsa17 files of
"Zero-Shot Learning - The Good, the Bad and the Ugly" (Xian et al., CVPR 2017 / TPAMI 2018).

Each dataset folder (``xlsa17/data/AWA2``, ``.../CUB``, ``.../SUN``, ``.../AWA1``, ``.../APY``) holds

* ``res101.mat``: ``features`` (2048 x N ResNet-101 features), ``labels`` (N x 1 class index, 1-based),
  ``image_files`` (not used);
* ``att_splits.mat``: ``att`` (A x C class attributes, columns L2-normalised), ``allclasses_names``
  (C x 1 cell array of class names) and the proposed split as 1-based image indices
  ``trainval_loc`` (seen classes), ``test_seen_loc`` and ``test_unseen_loc`` (unseen classes).

The loader returns every image (the zero-shot protocol re-splits by class), the attributes as the
class vectors (``data.class_vectors=auto``) and the unseen classes of the proposed split
(``data.unseen_split=auto``).  Class names are cleaned for word-vector lookups:
``001.Black_footed_Albatross`` -> ``Black footed Albatross``, ``grizzly+bear`` -> ``grizzly bear``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsb2net.data.base import Dataset, register_dataset
from vsb2net.errors import VsbError

XLSA17_URL = "https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"
XLSA17_PAGE = ('the Max Planck Institute for Informatics page of "Zero-Shot Learning - The Good, the Bad and '
               'the Ugly" (Xian et al.)')
XLSA17_ENV = "VSB2NET_XLSA17_DIR"  # the xlsa17/data folder, for every xlsa17 dataset
FEATURES_FILE = "res101.mat"
SPLITS_FILE = "att_splits.mat"
SPLIT_VARS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")


@dataclass(frozen=True)
class _Spec:
    name: str
    folder: str
    title: str
    description: str

    @property
    def env(self) -> str:
        return f"VSB2NET_{self.folder}_DIR"

    @property
    def how_to_get(self) -> str:
        return (f"Download xlsa17.zip ({XLSA17_URL}, linked from {XLSA17_PAGE}), unzip it and pass "
                f"--data-root xlsa17/data/{self.folder} (or set {self.env}=DIR, or {XLSA17_ENV}=xlsa17/data).")


SPECS = (
    _Spec("awa2", "AWA2", "AwA2", "AwA2 (xlsa17): 37,322 ResNet-101 features, 50 classes, 85 attributes; "
          "proposed split 40 seen / 10 unseen"),
    _Spec("cub", "CUB", "CUB", "CUB-200-2011 (xlsa17): 11,788 ResNet-101 features, 200 classes, 312 attributes; "
          "proposed split 150 seen / 50 unseen"),
    _Spec("sun", "SUN", "SUN", "SUN attributes (xlsa17): 14,340 ResNet-101 features, 717 classes, 102 "
          "attributes; proposed split 645 seen / 72 unseen"),
    _Spec("awa1", "AWA1", "AwA1", "AwA1 (xlsa17): 30,475 ResNet-101 features, 50 classes, 85 attributes; "
          "proposed split 40 seen / 10 unseen"),
    _Spec("apy", "APY", "aPY", "aPascal-aYahoo (xlsa17): 15,339 ResNet-101 features, 32 classes, 64 attributes; "
          "proposed split 20 seen / 12 unseen"),
)
_FOLDERS = {s.folder.lower() for s in SPECS}


# --- where the files are -------------------------------------------------------------------------

def _has_files(d: Path) -> bool:
    return (d / FEATURES_FILE).is_file() or (d / SPLITS_FILE).is_file()


def _subfolder(d: Path, folder: str) -> Path | None:
    """``d/folder``, matching the name case-insensitively."""
    if (d / folder).is_dir():
        return d / folder
    try:
        for child in d.iterdir():
            if child.name.lower() == folder.lower() and child.is_dir():
                return child
    except OSError:
        pass
    return None


def _locate(spec: _Spec, root: str | None) -> Path:
    """The folder holding ``res101.mat`` and ``att_splits.mat`` for ``spec``."""
    if root is not None:
        path, origin = Path(root).expanduser(), "--data-root"
    elif os.environ.get(spec.env):
        path, origin = Path(os.environ[spec.env]).expanduser(), f"${spec.env}"
    elif os.environ.get(XLSA17_ENV):
        path, origin = Path(os.environ[XLSA17_ENV]).expanduser(), f"${XLSA17_ENV}"
    else:
        raise VsbError(f"{spec.name}: no data location given. {spec.how_to_get}")
    if path.is_file() and path.name in (FEATURES_FILE, SPLITS_FILE):
        path = path.parent
    elif path.is_file() and path.suffix.lower() == ".zip":
        raise VsbError(f"{spec.name}: {path} ({origin}) is a zip archive; unzip it first (unzip {path.name}) and "
                       f"pass --data-root xlsa17/data/{spec.folder}.")
    if not path.is_dir():
        raise VsbError(f"{spec.name}: {path} ({origin}) is not a directory. {spec.how_to_get}")
    if _has_files(path):
        other = path.name.lower()
        if other in _FOLDERS and other != spec.folder.lower():
            raise VsbError(f"{spec.name}: {path} ({origin}) is the folder of another xlsa17 dataset "
                           f"({path.name}); pass the {spec.folder} folder, or use --dataset "
                           f"{next(s.name for s in SPECS if s.folder.lower() == other)}.")
        return path
    for parent in (path, path / "data"):
        sub = _subfolder(parent, spec.folder) if parent.is_dir() else None
        if sub is not None:
            return sub
    raise VsbError(f"{spec.name}: {path} ({origin}) holds neither {FEATURES_FILE} and {SPLITS_FILE} nor a "
                   f"{spec.folder}/ or data/{spec.folder}/ folder. {spec.how_to_get}")


def _probe(spec: _Spec):
    def probe(root: str | None = None) -> tuple[bool, str]:
        try:
            d = _locate(spec, root)
        except VsbError:
            where = root or os.environ.get(spec.env) or os.environ.get(XLSA17_ENV)
            return False, f"no xlsa17 {spec.folder} files at {where}" if where else f"no --data-root or ${spec.env}"
        missing = [f for f in (FEATURES_FILE, SPLITS_FILE) if not (d / f).is_file()]
        if missing:
            return False, f"missing in {d}: {', '.join(missing)}"
        return True, str(d)

    return probe


# --- reading the .mat files ----------------------------------------------------------------------

def _loadmat(path: Path, names: tuple[str, ...], spec: _Spec) -> dict[str, np.ndarray]:
    import scipy.io

    if not path.is_file():
        raise VsbError(f"{spec.name}: missing {path}. {spec.how_to_get}")
    try:
        m = scipy.io.loadmat(str(path), variable_names=list(names))
    except NotImplementedError:  # scipy cannot read HDF5-based MATLAB files
        raise VsbError(f"{path} is a MATLAB v7.3 (HDF5) file, which this loader cannot read; re-save it in "
                       "MATLAB with save(..., '-v7') or use the original xlsa17 file.") from None
    except MemoryError:
        raise VsbError(f"{path}: not enough memory to load it.") from None
    except Exception as e:  # scipy raises many types for broken files; all are the file's fault
        raise VsbError(f"{path} is not a readable MATLAB .mat file; it is truncated or corrupt "
                       f"({type(e).__name__}: {e}). Unzip it again from xlsa17.zip.") from None
    missing = [n for n in names if n not in m]
    if missing:
        raise VsbError(f"{path} has no variable {', '.join(repr(n) for n in missing)}; expected the xlsa17 "
                       f"file with {', '.join(names)}. {spec.how_to_get}")
    return m


def _numeric(a: object, var: str, path: Path) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf" or a.size == 0:
        raise VsbError(f"{path}: {var!r} must be a non-empty numeric array, got {a.dtype} with shape {a.shape}.")
    return a


def _indices(a: object, var: str, path: Path, n: int, what: str) -> np.ndarray:
    """A 1-based index vector (N x 1, 1 x N or N) -> 0-based int64, checked to lie in 1..n."""
    a = _numeric(a, var, path)
    if a.ndim > 2 or (a.ndim == 2 and min(a.shape) != 1):
        raise VsbError(f"{path}: {var!r} must be a vector (N x 1), got shape {a.shape}.")
    v = a.reshape(-1).astype(np.float64)
    if not np.isfinite(v).all() or (v != np.rint(v)).any():
        raise VsbError(f"{path}: {var!r} must hold whole numbers (1-based {what}).")
    lo, hi = int(v.min()), int(v.max())
    if lo < 1 or hi > n:
        raise VsbError(f"{path}: {var!r} must lie in 1..{n} (1-based {what}), found values {lo}..{hi}; "
                       f"{FEATURES_FILE} and {SPLITS_FILE} must come from the same dataset folder.")
    return v.astype(np.int64) - 1


def _cell_strings(a: object, var: str, path: Path) -> list[str]:
    """A MATLAB cell array of strings (as loadmat returns it: objects each holding a 1-element
    string array) or a char array -> list of str."""
    a = np.asarray(a)
    out = []
    if a.dtype.kind == "U":
        out = [str(s).strip() for s in a.reshape(-1)]
    elif a.dtype == object:
        for item in a.reshape(-1):
            item = np.asarray(item)
            if item.dtype.kind != "U" or item.size != 1:
                raise VsbError(f"{path}: {var!r} must be a cell array of strings; an entry is {item.dtype} "
                               f"with shape {item.shape}.")
            out.append(str(item.reshape(-1)[0]).strip())
    else:
        raise VsbError(f"{path}: {var!r} must be a cell array of strings, got {a.dtype} with shape {a.shape}.")
    if not out or not all(out):
        raise VsbError(f"{path}: {var!r} holds an empty class name.")
    return out


def clean_class_name(name: str) -> str:
    """A readable, word-vector friendly class name: ``001.Black_footed_Albatross`` -> ``Black footed
    Albatross``, ``grizzly+bear`` -> ``grizzly bear``, ``airplane_cabin`` -> ``airplane cabin``."""
    name = re.sub(r"^\d+\.", "", name.strip())
    return " ".join(re.sub(r"[_+]", " ", name).split())


def _load(spec: _Spec, root: str | None) -> Dataset:
    d = _locate(spec, root)
    fp, sp = d / FEATURES_FILE, d / SPLITS_FILE
    for p in (fp, sp):
        if not p.is_file():
            raise VsbError(f"{spec.name}: missing {p}; the folder must hold {FEATURES_FILE} and {SPLITS_FILE}. "
                           f"{spec.how_to_get}")
    sm = _loadmat(sp, ("att", "allclasses_names") + SPLIT_VARS, spec)
    raw_names = _cell_strings(sm["allclasses_names"], "allclasses_names", sp)
    c = len(raw_names)
    names = [clean_class_name(n) for n in raw_names]
    lowered = [n.lower() for n in names]
    dupes = sorted({raw_names[i] for i, n in enumerate(lowered) if not n or lowered.count(n) > 1})
    if dupes:
        raise VsbError(f"{sp}: class names {dupes} are empty or not distinct once cleaned (prefix numbers, '_' "
                       "and '+' removed); every class needs its own name.")
    att = _numeric(sm["att"], "att", sp).astype(np.float64)
    if att.ndim != 2 or att.shape[1] != c:
        raise VsbError(f"{sp}: 'att' must be attributes x classes (A x {c}, one column per class in "
                       f"'allclasses_names'), got shape {att.shape}.")
    if not np.isfinite(att).all():
        raise VsbError(f"{sp}: 'att' contains NaN or infinite values.")

    fm = _loadmat(fp, ("features", "labels"), spec)
    labels = _numeric(fm["labels"], "labels", fp)
    if labels.ndim > 2 or (labels.ndim == 2 and min(labels.shape) != 1):
        raise VsbError(f"{fp}: 'labels' must be a vector (N x 1), got shape {labels.shape}.")
    n = labels.size
    feats = _numeric(fm["features"], "features", fp)
    if feats.ndim != 2 or n not in feats.shape:
        raise VsbError(f"{fp}: 'features' must be a D x N matrix with one column per label (N = {n}), got "
                       f"shape {feats.shape}; the features and labels do not match.")
    x = feats.T if feats.shape[1] == n else feats  # xlsa17 stores D x N
    x = np.ascontiguousarray(x, dtype=np.float32)
    del fm, feats
    if not np.isfinite(x).all():
        raise VsbError(f"{fp}: 'features' contains NaN or infinite values.")
    y = _indices(labels, "labels", fp, c, f"class numbers for the {c} classes of {SPLITS_FILE}")

    locs = {v: _indices(sm[v], v, sp, n, f"image numbers for the {n} images of {FEATURES_FILE}")
            for v in SPLIT_VARS}
    seen = set(np.unique(y[locs["trainval_loc"]]).tolist())
    unseen = np.unique(y[locs["test_unseen_loc"]]).tolist()
    both = [names[i] for i in unseen if i in seen]
    if both:
        raise VsbError(f"{sp}: 'test_unseen_loc' and 'trainval_loc' share classes ({', '.join(both[:5])}"
                       f"{', ...' if len(both) > 5 else ''}); the unseen classes of the proposed split must not "
                       "be seen in training. Use the original xlsa17 att_splits.mat.")
    stray = sorted(set(np.unique(y[locs["test_seen_loc"]]).tolist()) - seen)
    if stray:
        raise VsbError(f"{sp}: 'test_seen_loc' holds classes not in 'trainval_loc' "
                       f"({', '.join(names[i] for i in stray[:5])}); the split is inconsistent.")
    return Dataset(name=spec.name, x=x, labels=y, class_names=names, kind="features", source=str(d),
                   attributes=att.T, proposed_unseen=[names[i] for i in unseen])


def _register(spec: _Spec):
    def load(root: str | None = None, **_options) -> Dataset:
        return _load(spec, root)

    load.__name__ = load.__qualname__ = f"load_{spec.name}"
    load.__doc__ = f"{spec.description}.  See the module docstring for the files."
    register_dataset(spec.name, description=spec.description, how_to_get=spec.how_to_get,
                     probe=_probe(spec))(load)
    return load


load_awa2, load_cub, load_sun, load_awa1, load_apy = (_register(s) for s in SPECS)
