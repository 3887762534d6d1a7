"""The zero-shot hashing protocol (METHOD.md, "Protocol").

Classes are split into *seen* and *unseen*.  From every class a fraction of the images is held
out as queries; everything else forms the retrieval database.  Training uses only the database
images of seen classes, so no unseen-class image and no query is ever trained on.

Model selection uses the same construction one level down (the *validation protocol*): some seen
classes play "pseudo-unseen" inside the training pool; a model trained on the remaining seen
classes is scored on queries of the pseudo-unseen classes.  Unseen classes never take part.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import VsbError


@dataclass
class ZeroShotSplit:
    """Index sets into one dataset, plus which classes are seen and unseen."""

    seen: list[int]
    unseen: list[int]
    train: np.ndarray          # database images of seen classes
    database: np.ndarray       # all non-query images, seen and unseen classes
    query_unseen: np.ndarray   # held-out images of unseen classes: the zero-shot queries
    query_seen: np.ndarray     # held-out images of seen classes

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "database": len(self.database),
                "query_unseen": len(self.query_unseen), "query_seen": len(self.query_seen)}

    def describe(self, class_names: list[str]) -> dict:
        return {"seen": [class_names[c] for c in self.seen],
                "unseen": [class_names[c] for c in self.unseen],
                "sizes": self.sizes()}


#: the fixed shuffle of the classes that the balanced design walks round (a seed of its own, so
#: that the design is one and the same for every benchmark of a dataset)
BALANCED_SEED = 2020


def balanced_unseen(n_classes: int, n_unseen: int, index: int) -> list[int]:
    """The ``index``-th split of the balanced design: the classes in a fixed shuffled order round a
    circle, and split i holds out the ``n_unseen`` consecutive classes from position i.  Splits
    0..n_classes-1 are distinct (n_unseen < n_classes) and hold out every class exactly n_unseen
    times: 10 splits of 2 among 10 classes hold out each class twice, where 10 random draws
    repeated two pairs."""
    if index >= n_classes:
        raise VsbError(f"data.split_seed = {index}: with data.unseen_split=balanced it numbers one of the "
                       f"{n_classes} splits of the balanced design; give 0 to {n_classes - 1}.")
    order = np.random.default_rng(BALANCED_SEED).permutation(n_classes)
    return sorted(int(order[(index + j) % n_classes]) for j in range(n_unseen))


def choose_unseen(class_names: list[str], unseen_names: list[str], n_unseen: int,
                  seed: int, combination: bool = False, balanced: bool = False) -> list[int]:
    """Unseen classes by name (case-insensitive) or, when none are named, ``n_unseen`` by seed.

    With ``combination`` the seed is an index instead: the ``seed``-th of every choice of
    ``n_unseen`` classes in lexicographic order of class ids (seeds 0..44 are all 45 pairs of 10
    classes), so a benchmark can cover every split without split-sampling noise.  With
    ``balanced`` it numbers a split of :func:`balanced_unseen`'s design.
    """
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    if unseen_names:
        missing = [n for n in unseen_names if n.lower() not in lookup]
        if missing:
            raise VsbError(f"unknown unseen class name(s) {missing}; this dataset's classes are: "
                           f"{', '.join(class_names)}.")
        chosen = sorted({lookup[n.lower()] for n in unseen_names})
    else:
        if not 1 <= n_unseen < len(class_names):
            raise VsbError(f"n_unseen = {n_unseen}: choose between 1 and {len(class_names) - 1} "
                           f"unseen classes (the dataset has {len(class_names)}).")
        if balanced:
            chosen = balanced_unseen(len(class_names), n_unseen, seed)
        elif combination:
            combos = math.comb(len(class_names), n_unseen)
            if seed >= combos:
                raise VsbError(f"data.split_seed = {seed}: with data.unseen_split=combination it numbers one of the "
                               f"{combos} choices of {n_unseen} unseen classes among {len(class_names)}; give 0 to "
                               f"{combos - 1}.")
            chosen = list(next(itertools.islice(itertools.combinations(range(len(class_names)), n_unseen),
                                                seed, None)))
        else:
            rng = np.random.default_rng(seed)
            chosen = sorted(int(c) for c in rng.choice(len(class_names), n_unseen, replace=False))
    if len(chosen) >= len(class_names):
        raise VsbError("every class is unseen: keep at least one seen class to train on.")
    return chosen


def classes_present(labels: np.ndarray, pool: np.ndarray) -> list[int]:
    """Classes with at least one item in ``pool`` (class ids, or columns of a multi-label matrix)."""
    if labels.ndim == 2:
        return [int(c) for c in np.flatnonzero(labels[pool].any(axis=0))]
    return sorted(int(c) for c in np.unique(labels[pool]))


def has_any(labels: np.ndarray, index: np.ndarray, classes: list[int]) -> np.ndarray:
    """Boolean mask over ``index``: the item has (one of) ``classes`` among its labels."""
    if labels.ndim == 2:
        # (numpy's stubs type ix_'s arguments as arrays, where it takes any 1-d sequence as documented,
        # and ndarray.any(axis=...) as a scalar or an array)
        return labels[np.ix_(index, classes)].any(axis=1) if len(classes) else np.zeros(len(index), bool)  # type: ignore[arg-type, return-value]
    return np.isin(labels[index], classes)


def class_targets(labels: np.ndarray, index: np.ndarray, classes: list[int]) -> np.ndarray:
    """Training targets of the items ``index`` over the training ``classes`` (in that order).

    Single-label: int64 positions in ``classes``.  Multi-label: a float32 0/1 matrix of the
    items' labels restricted to ``classes`` (every training item has at least one of them).
    """
    if labels.ndim == 2:
        return labels[np.ix_(index, classes)].astype(np.float32)  # type: ignore[arg-type]  # as in has_any
    pos = {c: i for i, c in enumerate(classes)}
    return np.array([pos[int(c)] for c in labels[index]], dtype=np.int64)


def subsample_per_class(labels: np.ndarray, max_per_class: int | None, seed: int) -> np.ndarray:
    """Indices keeping at most ``max_per_class`` items of each class (sorted, seeded).

    Multi-label data has no single class per item: at most ``max_per_class`` x classes items
    are kept, drawn uniformly.
    """
    if max_per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        n = min(len(labels), max_per_class * labels.shape[1])
        return np.sort(rng.choice(len(labels), n, replace=False))
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) > max_per_class:
            idx = rng.choice(idx, max_per_class, replace=False)
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def zero_shot_split(labels: np.ndarray, unseen: list[int], query_fraction: float, seed: int,
                    pool: np.ndarray | None = None) -> ZeroShotSplit:
    """Split ``pool`` (default: every index) by the zero-shot protocol.

    From each class, ``ceil(query_fraction * n)`` images (at least one, at most n - 1) are held out
    as queries.  The draw is seeded and independent of the order of classes.

    Multi-label data (2-D 0/1 labels): ``ceil(query_fraction * N)`` items of the pool are held
    out at random; a query is an unseen-class query when it has an unseen label, and only items
    with no unseen label are trained on (a concept is unseen when no training item shows it).
    """
    labels = np.asarray(labels)
    pool = np.arange(len(labels)) if pool is None else np.asarray(pool)
    if labels.ndim == 2:
        return _multilabel_split(labels, unseen, query_fraction, seed, pool)
    classes = sorted(int(c) for c in np.unique(labels[pool]))
    unseen_set = set(unseen)
    seen = [c for c in classes if c not in unseen_set]
    if not seen:
        raise VsbError("the split has no seen class left to train on; name fewer unseen classes.")
    present_unseen = [c for c in sorted(unseen_set) if c in classes]
    if not present_unseen:
        raise VsbError("the split has no unseen class with images; check the unseen class names.")
    rng = np.random.default_rng(seed)
    queries, database = [], []
    for c in classes:
        idx = pool[labels[pool] == c]
        if len(idx) < 2:
            raise VsbError(f"class {c} has {len(idx)} image(s); the protocol needs at least 2 "
                           "(one query and one database item). Raise data.max_per_class.")
        n_q = int(min(len(idx) - 1, max(1, np.ceil(query_fraction * len(idx)))))
        perm = rng.permutation(idx)
        queries.append(np.sort(perm[:n_q]))
        database.append(np.sort(perm[n_q:]))
    q = np.concatenate(queries)
    db = np.sort(np.concatenate(database))
    is_unseen_q = np.isin(labels[q], present_unseen)
    return ZeroShotSplit(
        seen=seen,
        unseen=present_unseen,
        train=db[~np.isin(labels[db], present_unseen)],
        database=db,
        query_unseen=np.sort(q[is_unseen_q]),
        query_seen=np.sort(q[~is_unseen_q]),
    )


def _multilabel_split(labels: np.ndarray, unseen: list[int], query_fraction: float, seed: int,
                      pool: np.ndarray) -> ZeroShotSplit:
    classes = classes_present(labels, pool)
    present_unseen = [c for c in sorted(set(unseen)) if c in classes]
    if not present_unseen:
        raise VsbError("the split has no unseen concept with items; check the unseen class names.")
    if len(pool) < 2:
        raise VsbError(f"the split has {len(pool)} item(s); the protocol needs at least 2.")
    rng = np.random.default_rng(seed)
    n_q = int(min(len(pool) - 1, max(1, np.ceil(query_fraction * len(pool)))))
    perm = rng.permutation(pool)
    q, db = np.sort(perm[:n_q]), np.sort(perm[n_q:])
    train = db[~has_any(labels, db, present_unseen)]
    seen = [c for c in classes_present(labels, train) if c not in present_unseen] if len(train) else []
    if not seen:
        raise VsbError("every item carries an unseen concept: no seen-class item is left to train on; name "
                       "fewer or rarer unseen concepts.")
    is_unseen_q = has_any(labels, q, present_unseen)
    if not is_unseen_q.any():
        raise VsbError(f"no query carries an unseen concept ({len(q)} queries drawn); raise "
                       "data.query_fraction or choose more frequent unseen concepts.")
    return ZeroShotSplit(seen=seen, unseen=present_unseen, train=train, database=db,
                         query_unseen=q[is_unseen_q], query_seen=q[~is_unseen_q])


def validation_size(n_seen: int, requested: int) -> tuple[int, str]:
    """How many seen classes the validation protocol holds out as pseudo-unseen, and a note when
    that is fewer than ``requested`` ("" when it is as asked).

    The protocol needs one seen class to train on and one to hold out; a small split (a folder of
    3 classes, one of them unseen) holds out as many as leave one to train on.  With fewer than
    two seen classes there is nothing to validate on: the error says what to do instead.
    """
    if requested < 1:
        raise VsbError(f"data.n_val_unseen = {requested}: the validation protocol holds out at least 1 seen class.")
    if n_seen < 2:
        raise VsbError(f"the validation protocol (which picks the number of epochs) needs at least 2 seen classes, one "
                       f"to train on and one to hold out, but this split has {n_seen}. Use a dataset with at least 3 "
                       "classes (one unseen, two seen), or choose the epochs yourself: --epochs N --set "
                       "train.select_epochs=false.")
    if requested < n_seen:
        return requested, ""
    return n_seen - 1, (f"{n_seen} seen classes leave room for {n_seen - 1} pseudo-unseen "
                        f"class{'es' if n_seen > 2 else ''} (data.n_val_unseen = {requested} asks for {requested}; "
                        "one seen class must stay to train on)")


def validation_split(labels: np.ndarray, split: ZeroShotSplit, n_val_unseen: int,
                     query_fraction: float, seed: int) -> ZeroShotSplit:
    """The validation protocol: pseudo-unseen seen classes inside the training pool.

    Only ``split.train`` (seen-class database images) is used, so neither unseen-class images nor
    any test query influence model selection.  ``n_val_unseen`` is capped by :func:`validation_size`.
    """
    n_val_unseen, _ = validation_size(len(split.seen), n_val_unseen)
    rng = np.random.default_rng(seed + 7919)  # a draw of its own, not a copy of the test split's
    pseudo = sorted(int(c) for c in rng.choice(split.seen, n_val_unseen, replace=False))
    return zero_shot_split(labels, pseudo, query_fraction, seed + 7919, pool=split.train)


def validation_splits(labels: np.ndarray, split: ZeroShotSplit, n_val_unseen: int, query_fraction: float,
                      seed: int, folds: int) -> list[ZeroShotSplit]:
    """``folds`` validation protocols with different pseudo-unseen classes (fold 0 is
    :func:`validation_split`'s).  Two pseudo-unseen classes score a model on a few hundred
    queries, too few to rank close settings; averaging over folds that hold out other seen
    classes steadies the score.  Later folds take classes not held out yet first.
    """
    first = validation_split(labels, split, n_val_unseen, query_fraction, seed)
    n_val_unseen = len(first.unseen)
    out, used = [first], list(first.unseen)
    rng = np.random.default_rng(seed + 104729)
    for k in range(1, folds):
        fresh = [c for c in split.seen if c not in used]
        if len(fresh) < n_val_unseen:
            used, fresh = [], list(split.seen)
        pseudo = sorted(int(c) for c in rng.choice(fresh, n_val_unseen, replace=False))
        previous = [sorted(v.unseen) for v in out]
        for _ in range(100):  # a fold that repeats an earlier one adds nothing
            if pseudo not in previous:
                break
            pseudo = sorted(int(c) for c in rng.choice(split.seen, n_val_unseen, replace=False))
        used += pseudo
        out.append(zero_shot_split(labels, pseudo, query_fraction, seed + 7919 + k, pool=split.train))
    return out
