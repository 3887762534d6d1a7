"""The in-memory dataset type and the dataset registry.

Each dataset module registers its loader with :func:`register_dataset` (timm style), so adding a
dataset means adding one file that the package ``__init__`` imports; nothing else changes.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vsb2net.errors import VsbError
from vsb2net.registry import Registry

KINDS = ("image", "features")


@dataclass
class Dataset:
    """A labelled dataset held in memory.

    ``x`` is either images, uint8 of shape (N, H, W) or (N, H, W, C) (``kind="image"``), or
    float features of shape (N, D) (``kind="features"``, stored as float32).  ``labels`` are
    either int64 class ids in ``0..len(class_names)-1`` (single-label, shape (N,)) or a 0/1
    matrix of shape (N, C) (multi-label, stored as uint8; every item has at least one label).
    Every class has at least one item.  ``class_names`` are the human names used to look up word
    vectors.  ``source`` records where the data was read from.

    ``attributes`` are class vectors shipped with the dataset (e.g. the xlsa17 attribute matrix,
    (C, A)), used when ``data.class_vectors`` is ``auto`` or ``attributes``.  ``proposed_unseen``
    names the unseen classes of the dataset's own proposed split, used when ``data.unseen_split``
    is ``auto`` or ``proposed``.
    """

    name: str
    x: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    kind: str = "image"
    source: str = ""
    attributes: np.ndarray | None = None
    proposed_unseen: list[str] | None = None

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}" + (f" (read from {self.source})" if self.source else "")
        self._check_inputs(where)
        self._check_labels(where)
        self._check_classes(where)
        self._check_class_knowledge(where)

    def _check_inputs(self, where: str) -> None:
        if self.kind not in KINDS:
            raise VsbError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}.")
        if not isinstance(self.x, np.ndarray):
            raise VsbError(f"{where}: x must be a numpy array, got {type(self.x).__name__}.")
        if self.kind == "image":
            if self.x.dtype != np.uint8 or self.x.ndim not in (3, 4):
                raise VsbError(
                    f"{where}: images must be uint8 with shape (N, H, W) or (N, H, W, C), got "
                    f"{self.x.dtype} with shape {self.x.shape}. Convert the images to 8-bit "
                    "pixels (0..255) or load them as kind='features'."
                )
        else:
            if self.x.ndim != 2 or not (
                np.issubdtype(self.x.dtype, np.floating) or np.issubdtype(self.x.dtype, np.integer)
            ):
                raise VsbError(
                    f"{where}: features must be a numeric (N, D) matrix, got {self.x.dtype} "
                    f"with shape {self.x.shape}."
                )
            if self.x.dtype != np.float32:
                self.x = self.x.astype(np.float32)
            if not np.isfinite(self.x).all():
                raise VsbError(f"{where}: features contain NaN or infinite values.")

    def _check_labels(self, where: str) -> None:
        labels = np.asarray(self.labels)
        if labels.ndim not in (1, 2):
            raise VsbError(f"{where}: labels must be class ids (N,) or a 0/1 multi-label matrix (N, C), "
                           f"got shape {labels.shape}.")
        if labels.size and not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise VsbError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
        if labels.ndim == 2:
            self._check_multilabel(labels, where)
            self.labels = labels.astype(np.uint8, copy=False)
        else:
            self.labels = labels.astype(np.int64, copy=False)
        if len(self.labels) != len(self.x):
            raise VsbError(
                f"{where}: {len(self.x)} items but {len(self.labels)} labels; the image and label "
                "files must come from the same split."
            )
        if len(self.x) == 0:
            raise VsbError(f"{where}: the dataset is empty.")

    def _check_classes(self, where: str) -> None:
        names = list(self.class_names)
        if not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise VsbError(f"{where}: class_names must be a non-empty list of non-empty strings.")
        lowered = [n.strip().lower() for n in names]
        dupes = sorted({n for n in lowered if lowered.count(n) > 1})
        if dupes:
            raise VsbError(f"{where}: duplicate class names {dupes}.")
        self.class_names = names

        c = len(names)
        if self.multilabel:
            if self.labels.shape[1] != c:
                raise VsbError(f"{where}: the label matrix has {self.labels.shape[1]} columns but there are "
                               f"{c} class names; the label file does not match the class list.")
        else:
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= c:
                raise VsbError(
                    f"{where}: labels must lie in 0..{c - 1} ({c} class names), found values "
                    f"{lo}..{hi}. The label file does not match the class list."
                )
        empty = [names[i] for i in np.flatnonzero(self.class_counts() == 0)]
        if empty:
            raise VsbError(f"{where}: classes with no items: {', '.join(empty)}.")

    def _check_class_knowledge(self, where: str) -> None:
        c = len(self.class_names)
        if self.attributes is not None:
            a = np.asarray(self.attributes, dtype=np.float64)
            if a.ndim != 2 or len(a) != c or a.shape[1] == 0 or not np.isfinite(a).all():
                raise VsbError(f"{where}: the class attributes must be a finite ({c}, A) matrix, one row per "
                               f"class; got shape {a.shape}.")
            self.attributes = a.astype(np.float32)
        if self.proposed_unseen is not None:
            lookup = {n.strip().lower() for n in self.class_names}
            unknown = [n for n in self.proposed_unseen if n.strip().lower() not in lookup]
            if unknown or not 0 < len(self.proposed_unseen) < c:
                raise VsbError(f"{where}: the proposed split's unseen classes {unknown or self.proposed_unseen} "
                               "are not a proper subset of the class names.")
            self.proposed_unseen = list(self.proposed_unseen)

    @staticmethod
    def _check_multilabel(labels: np.ndarray, where: str) -> None:
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise VsbError(f"{where}: a multi-label matrix must hold only 0 and 1; for class ids give a "
                           "1-D label vector.")
        empty = np.flatnonzero(~labels.astype(bool).any(axis=1))
        if len(empty):
            raise VsbError(f"{where}: {len(empty)} item(s) have no label (first: row {empty[0]}); an item "
                           "without labels is relevant to nothing. Drop those rows.")

    @property
    def multilabel(self) -> bool:
        """True when ``labels`` is an (N, C) 0/1 matrix."""
        return self.labels.ndim == 2

    def subset(self, index: np.ndarray) -> Dataset:
        """The items ``index``, with the same classes, attributes and proposed split."""
        return Dataset(name=self.name, x=self.x[index], labels=self.labels[index], class_names=self.class_names,
                       kind=self.kind, source=self.source, attributes=self.attributes,
                       proposed_unseen=self.proposed_unseen)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.x)

    def class_counts(self) -> np.ndarray:
        """Items per class (for multi-label data an item counts for each of its labels)."""
        if self.labels.ndim == 2:
            return self.labels.sum(axis=0, dtype=np.int64)
        return np.bincount(self.labels, minlength=self.num_classes)


#: ``loader(root, **options)``; options a loader does not use (e.g. ``image_size``) are ignored
Loader = Callable[..., Dataset]
Probe = Callable[..., tuple[bool, str]]


def _no_probe(root: str | None = None) -> tuple[bool, str]:
    return True, "no availability check registered"


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about one dataset."""

    name: str
    description: str
    how_to_get: str
    loader: Loader = field(repr=False)
    probe: Probe = field(repr=False, default=_no_probe)


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


#: dataset name -> :class:`DatasetInfo`; each dataset module registers itself
DATASETS: Registry[DatasetInfo] = Registry("dataset", key=_key)


def register_dataset(
    name: str, *, description: str, how_to_get: str, probe: Probe | None = None
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root) -> Dataset`` under ``name``.

    ``probe(root=None) -> (available, detail)`` must be cheap (look for files or packages; never
    load data).  Registering the same name twice is a programming error.
    """

    def deco(loader: Loader) -> Loader:
        DATASETS.add(name, DatasetInfo(name=_key(name), description=description, how_to_get=how_to_get,
                                       loader=loader, probe=probe or _no_probe), help=description)
        return loader

    return deco


def get_dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name)


def load_dataset(name: str, root: str | os.PathLike | None = None, **options) -> Dataset:
    """Load the registered dataset ``name``, from ``root`` when given.

    ``options`` (``image_size`` = side length images are resized to, None = as stored) go to the
    loader, which ignores those it has no use for.
    """
    info = get_dataset_info(name)
    ds = info.loader(None if root is None else os.fspath(root), **options)
    if not isinstance(ds, Dataset):
        raise TypeError(f"loader of dataset {info.name!r} returned {type(ds).__name__}, not Dataset")
    return ds


def list_datasets() -> list[DatasetInfo]:
    """All registered datasets, sorted by name."""
    return DATASETS.values()
