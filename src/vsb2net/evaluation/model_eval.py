"""The one evaluation of a trained model: every consumer (``run``, ``evaluate``, the validation
protocol of ``train``/``tune``, every benchmark cell) calls :func:`evaluate_model` and gets the same
metrics record (:class:`vsb2net.evaluation.record.Metrics`).

For each query row (``unseen``: the zero-shot number; ``seen``) it holds

* image -> image retrieval over the whole database (unseen@all), tie-aware, from
  :func:`vsb2net.evaluation.retrieval.evaluate`, and ``map_unseen_db``: the same queries against the database
  items of the row's classes only (unseen@unseen, the other protocol the literature reports);
* ``map_chance``: the mAP of a ranking that knows nothing (every item tied);
* class-name retrieval: each class's code ``sign(hash_classes(a_c))`` queries the
  database (``class_query_map``; chance ``class_query_chance``), and zero-shot classification by
  the nearest class code (``zero_shot_accuracy``; chance ``zero_shot_chance``).  None for
  methods without a semantic branch;
* ``oracle_class_map``: each class's *mean image code* (sign of the mean of its database images'
  codes) as the query: the best any class-level query can do with these image codes;
* ``class_code_distances`` (rows whose classes get codes): where each class's code lands, in bits,
  averaged over the row's classes: ``to_own_images`` (mean Hamming distance to the class's database
  images), ``to_oracle`` (to the mean-code oracle above), ``to_nearest_other`` (to the nearest code of
  the *other* classes: the seen classes for the unseen row) and ``nearer_other_share`` (share of the
  row's classes whose code is nearer another class's code than its own images' oracle code): why a
  class-name query misses, measured rather than guessed;
* code collapse: ``distinct_codes`` among the row classes' database images and
  ``nearest_tie_group``, the mean number of database items tied at a query's nearest distance.

``protocols`` names the four protocols of the deep hashing literature (queries@database):
seen@seen, seen@all, unseen@unseen, unseen@all (:func:`protocols` reads them from the two rows).

``semantics`` holds ``alignment``: Spearman's rank correlation, over pairs of training classes,
between the cosine similarity of their class vectors and of their mean inputs (pixels, or the
given features) standardised over the training items: how much the class vectors could tell about
how classes look, measured on training classes only.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from .. import __version__
from ..codes import pack_codes, unpack_codes
from ..data.splits import ZeroShotSplit, has_any
from ..models.base import HashingMethod, encode
from .record import ROWS, ClassCodeDistances, ClassQuery, Metrics, RowMetrics, protocols
from .retrieval import (
    asymmetric_average_precision,
    average_precision_optimistic,
    average_precision_pessimistic,
    average_precision_tie_aware,
    distance_histograms,
    evaluate,
)
from .row_metrics import row_metric_values


@dataclass
class EncodedSplit:
    """Continuous codes of one split's queries and database, plus their packed binary codes."""

    continuous: dict[str, np.ndarray]
    packed: dict[str, np.ndarray]
    seconds: float


def encode_split(model: HashingMethod, x: torch.Tensor, split: ZeroShotSplit, device: torch.device,
                 parts: tuple[str, ...] = ("query_unseen", "query_seen", "database")) -> EncodedSplit:
    t0 = time.perf_counter()
    model.eval()
    cont = {name: encode(model.hash_images, x[getattr(split, name)], device) for name in parts}
    return EncodedSplit(cont, {k: pack_codes(v) for k, v in cont.items()}, time.perf_counter() - t0)


def class_codes_real(model: HashingMethod, vectors: np.ndarray, classes: list[int]) -> np.ndarray | None:
    """Class codes before the sign (``hash_classes``) of ``classes``, float (C, bits); None for a
    method without a semantic branch."""
    if not model.codes_classes or not len(classes):
        return None
    with torch.inference_mode():
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        z = model.hash_classes(torch.from_numpy(np.asarray(vectors[classes], np.float32)).to(device))
    return z.float().cpu().numpy()


def class_codes(model: HashingMethod, vectors: np.ndarray, classes: list[int]) -> np.ndarray | None:
    """Packed class codes (``hash_classes``) of ``classes`` (None for a method without a semantic branch)."""
    z = class_codes_real(model, vectors, classes)
    return None if z is None else pack_codes(z)


def _class_labels(classes: list[int], db_labels: np.ndarray) -> np.ndarray:
    """Labels for one query per class, in the database's label format."""
    labels: np.ndarray = np.asarray(classes, dtype=np.int64)
    if db_labels.ndim == 2:  # multi-label database: the query's label row holds its one class
        labels = np.eye(db_labels.shape[1], dtype=np.uint8)[labels]
    return labels


def chance_ap(n_relevant: np.ndarray, n_database: int) -> np.ndarray:
    """Expected AP of a ranking that knows nothing: every item tied at one distance."""
    r = np.asarray(n_relevant, dtype=np.int64).reshape(-1, 1)
    return np.atleast_1d(average_precision_tie_aware(np.full_like(r, n_database), r))


def _relevant_counts(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    if db_labels.ndim == 2:
        return ((q_labels.astype(np.int64) @ db_labels.T.astype(np.int64)) > 0).sum(axis=1)
    classes, counts = np.unique(db_labels, return_counts=True)
    lookup = dict(zip(classes.tolist(), counts.tolist()))
    return np.array([lookup.get(int(c), 0) for c in q_labels], dtype=np.int64)


def _code_queries(codes: np.ndarray | None, classes: list[int], names: list[str],
                  db_codes: np.ndarray, db_labels: np.ndarray) -> ClassQuery | None:
    """Tie-aware mAP of one query code per class (its relevant items: the class's images)."""
    if codes is None or not len(classes):
        return None
    labels = _class_labels(classes, db_labels)
    n, r = distance_histograms(codes, db_codes, labels, db_labels)
    ap = np.atleast_1d(average_precision_tie_aware(n, r))
    return {"map": float(ap.mean()),
            "map_optimistic": float(np.atleast_1d(average_precision_optimistic(n, r)).mean()),
            "map_pessimistic": float(np.atleast_1d(average_precision_pessimistic(n, r)).mean()),
            "n_queries": len(classes), "per_class": {names[c]: float(a) for c, a in zip(classes, ap)}}


def _mean_codes(cont_db: np.ndarray, db_labels: np.ndarray, classes: list[int]) -> np.ndarray:
    """sign of the mean binary code of each class's database images, packed."""
    b = np.where(cont_db >= 0, 1.0, -1.0)
    rows = [b[has_any(db_labels, np.arange(len(db_labels)), [c])].mean(0) for c in classes]
    return pack_codes(np.where(np.stack(rows) >= 0, 1.0, -1.0))


def class_code_distances(own: np.ndarray, others: np.ndarray | None, oracle: np.ndarray, db: np.ndarray,
                         in_class: list[np.ndarray], bits: int) -> ClassCodeDistances:
    """Where the class codes ``own`` (packed, one per class) land: see the module docstring.

    ``others`` are the packed codes of the other classes; ``oracle`` the classes' mean-code oracle
    codes; ``in_class[i]`` the rows of ``db`` that hold class i's images.
    """
    o = unpack_codes(own, bits).astype(np.float32)
    d_own = [float(((bits - unpack_codes(db[rows], bits).astype(np.float32) @ code) / 2).mean()) if len(rows) else
             float("nan") for code, rows in zip(o, in_class)]
    d_oracle = (bits - np.sum(o * unpack_codes(oracle, bits), axis=1)) / 2
    out: ClassCodeDistances = {"to_own_images": float(np.nanmean(d_own)), "to_oracle": float(d_oracle.mean()),
                               "to_nearest_other": None, "nearer_other_share": None}
    if others is not None and len(others):
        d_other = ((bits - o @ unpack_codes(others, bits).astype(np.float32).T) / 2).min(axis=1)
        out["to_nearest_other"] = float(d_other.mean())
        out["nearer_other_share"] = float(np.mean(d_other < d_oracle))
    return out


def zero_shot_accuracy(q_codes: np.ndarray, q_labels: np.ndarray, class_packed: np.ndarray | None,
                       candidates: list[int], bits: int) -> float | None:
    """Zero-shot classification: the nearest semantic code among the candidate classes.

    ``q_codes`` are packed query codes; ties go to the earlier candidate.
    """
    if class_packed is None:
        return None
    if not len(q_labels):
        return 0.0
    b = unpack_codes(q_codes, bits).astype(np.float32)
    s = unpack_codes(class_packed, bits).astype(np.float32)
    pred = np.asarray(candidates)[np.argmax(b @ s.T, axis=1)]  # max inner product = min Hamming distance
    if q_labels.ndim == 2:  # multi-label: the predicted class is one of the item's labels
        return float(np.mean(q_labels[np.arange(len(pred)), pred] == 1))
    return float(np.mean(pred == q_labels))


def _nearest_tie_group(n_hist: np.ndarray) -> float:
    first = np.argmax(n_hist > 0, axis=1)
    return float(n_hist[np.arange(len(n_hist)), first].mean()) if len(n_hist) else 0.0


@dataclass(frozen=True)
class _Evaluated:
    """What every row of one evaluation shares: the codes, the labels of every item, the split, and
    what to compute."""

    enc: EncodedSplit
    labels: np.ndarray
    split: ZeroShotSplit
    names: list[str]
    topk: tuple[int, ...]
    curves: bool
    #: the asymmetric rankings' mAPs (two (Q x N) products and sorts a row): the validation
    #: protocol reads Hamming figures only and leaves them out
    asymmetric: bool = True


@dataclass(frozen=True)
class RowQueries:
    """One query row: its queries (``query_<name>`` of the split), their classes, the classes
    zero-shot classification chooses among and the class codes."""

    name: str
    classes: list[int]
    candidates: list[int]
    #: the candidates' packed class codes (None for a method without a semantic branch)
    class_packed: np.ndarray | None
    #: the packed codes of the classes outside the row (for ``class_code_distances``)
    other_packed: np.ndarray | None
    #: the row's own classes' codes before the sign (the asymmetric class-name queries)
    own_real: np.ndarray | None = None


def row_queries(model: HashingMethod, vectors: np.ndarray, split: ZeroShotSplit, row: str) -> RowQueries:
    classes = list(split.unseen if row == "unseen" else split.seen)
    # seen-class queries choose among every class (generalised zero-shot), unseen among unseen
    candidates = list(split.unseen) if row == "unseen" else list(split.seen) + list(split.unseen)
    others = [c for c in list(split.seen) + list(split.unseen) if c not in classes]
    return RowQueries(row, classes, candidates, class_codes(model, vectors, candidates),
                      class_codes(model, vectors, others), class_codes_real(model, vectors, classes))


def _asymmetric(row: RowMetrics, q_real: np.ndarray, class_real: np.ndarray | None, classes: list[int],
                db: np.ndarray, ql: np.ndarray, dl: np.ndarray) -> None:
    """``map_asym`` and ``class_query_map_asym``: the same queries ranked by their real-valued codes
    against the binary database (:func:`vsb2net.evaluation.retrieval.asymmetric_average_precision`); the
    ``_in_ties`` twins rank by Hamming distance first and by that score within a distance, as
    ``vsb2net search`` and ``serve`` do."""
    def mean_ap(q: np.ndarray | None, labels: np.ndarray | None, within: bool) -> float | None:
        if q is None or labels is None:
            return None
        return float(asymmetric_average_precision(q, db, labels, dl, within_hamming=within).mean()) if len(q) else 0.0

    class_labels = None if class_real is None else _class_labels(classes, dl)
    row["map_asym"] = mean_ap(q_real, ql, False) or 0.0
    row["class_query_map_asym"] = mean_ap(class_real, class_labels, False)
    row["map_asym_in_ties"] = mean_ap(q_real, ql, True) or 0.0
    row["class_query_map_asym_in_ties"] = mean_ap(class_real, class_labels, True)


def _row(ev: _Evaluated, rq: RowQueries) -> RowMetrics:
    """The metrics of one query row (:class:`vsb2net.evaluation.record.RowMetrics`)."""
    classes, candidates, names = rq.classes, rq.candidates, ev.names
    db_idx = ev.split.database
    q, db = ev.enc.packed[f"query_{rq.name}"], ev.enc.packed["database"]
    ql, dl = ev.labels[getattr(ev.split, f"query_{rq.name}")], ev.labels[db_idx]
    bits = int(q.shape[1] * 8)
    # one histogram pass: the image metrics and the tie group below read the same (n, r)
    hists = distance_histograms(q, db, ql, dl) if len(ql) else None
    row = cast(RowMetrics, evaluate(q, db, ql, dl, topk=ev.topk, precision_ks=None if ev.curves else (),
                                    histograms=hists))
    if not ev.curves:
        row.pop("pr_curve", None)
        row.pop("precision_at_k", None)
    row["map_chance"] = float(chance_ap(_relevant_counts(ql, dl), len(dl)).mean()) if len(ql) else 0.0
    in_row = has_any(ev.labels, db_idx, classes)
    sub_db, sub_dl = db[in_row], dl[in_row]
    own_db_map = evaluate(q, sub_db, ql, sub_dl, topk=(), precision_ks=())["map"] if len(ql) and len(sub_dl) else 0.0
    if rq.name == "unseen":
        row["map_unseen_db"] = own_db_map
    else:
        row["map_seen_db"] = own_db_map
    empty = np.zeros((0, bits + 1), np.int64)
    row["nearest_tie_group"] = _nearest_tie_group(empty if hists is None else hists[0])
    row.update(row_metric_values(*(hists or (empty, empty))))  # type: ignore[typeddict-item]
    row["distinct_codes"] = int(len(np.unique(sub_db, axis=0))) if len(sub_db) else 0
    row["n_database_of_classes"] = int(len(sub_db))
    own = None if rq.class_packed is None else rq.class_packed[[candidates.index(c) for c in classes]]
    cq = _code_queries(own, classes, names, db, dl)
    row["class_query_map"] = None if cq is None else cq["map"]
    row["class_query"] = cq
    row["class_query_chance"] = float(chance_ap(_relevant_counts(_class_labels(classes, dl), dl),
                                                len(dl)).mean()) if len(classes) else 0.0
    oracle_codes = _mean_codes(ev.enc.continuous["database"][in_row], sub_dl, classes) if len(sub_dl) else None
    oracle = None if oracle_codes is None else _code_queries(oracle_codes, classes, names, db, dl)
    row["oracle_class_map"] = None if oracle is None else oracle["map"]
    row["class_code_distances"] = (
        None if own is None or oracle_codes is None else
        class_code_distances(own, rq.other_packed, oracle_codes, db,
                             [np.flatnonzero(has_any(dl, np.arange(len(dl)), [c])) for c in classes], bits))
    if ev.asymmetric:
        _asymmetric(row, ev.enc.continuous[f"query_{rq.name}"], rq.own_real, classes, db, ql, dl)
    row["zero_shot_accuracy"] = zero_shot_accuracy(q, ql, rq.class_packed, candidates, bits)
    row["zero_shot_chance"] = 1.0 / len(candidates) if candidates else None
    return row


def semantic_alignment(x: torch.Tensor, labels: np.ndarray, train_idx: np.ndarray, classes: list[int],
                       vectors: np.ndarray) -> float | None:
    """Spearman correlation over training-class pairs: class-vector cosine vs mean-input cosine."""
    from scipy.stats import spearmanr

    if len(classes) < 3 or labels.ndim != 1:
        return None
    feats = x[train_idx].flatten(1).double().numpy()
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    y = labels[train_idx]
    cent = np.stack([feats[y == c].mean(0) for c in classes])
    vec = np.asarray(vectors[classes], np.float64)

    def cos(m: np.ndarray) -> np.ndarray:
        m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return m @ m.T

    iu = np.triu_indices(len(classes), 1)
    rho = spearmanr(cos(vec)[iu], cos(cent)[iu]).statistic
    return None if not np.isfinite(rho) else float(rho)


def evaluate_model(model: HashingMethod, x: torch.Tensor, labels: np.ndarray, split: ZeroShotSplit,
                   vectors: np.ndarray, class_names: list[str], device: torch.device, *,
                   topk: tuple[int, ...] = (100, 1000), curves: bool = True, rows: tuple[str, ...] = ROWS,
                   alignment: bool = True, asymmetric: bool = True) -> tuple[Metrics, EncodedSplit]:
    """Encode ``split`` with ``model`` and compute every metric (module docstring).

    Returns the metrics and the codes.  ``rows`` limits the query rows (the validation protocol
    asks for ``("unseen",)``); ``curves`` False drops the precision@K and PR curves;
    ``asymmetric`` False drops the asymmetric rankings' mAPs (``map_asym*``).
    """
    t0 = time.perf_counter()
    model.to(device)
    parts = tuple(f"query_{r}" for r in rows) + ("database",)
    enc = encode_split(model, x, split, device, parts)
    ev = _Evaluated(enc, labels, split, list(class_names), topk, curves, asymmetric)
    metrics = cast(Metrics, {r: _row(ev, row_queries(model, vectors, split, r)) for r in rows})
    metrics["protocols"] = protocols(metrics)
    metrics["semantics"] = {"alignment": semantic_alignment(x, labels, split.train, list(split.seen), vectors)
                            if alignment else None}
    metrics["timing"] = {"encode_seconds": enc.seconds, "evaluate_seconds": time.perf_counter() - t0}
    return metrics, enc


def cpu_name() -> str:
    """The CPU's model name and the instruction set torch's kernels dispatch to (e.g. "AMD EPYC,
    AVX512"): a trained model's figures depend on both, so two machines with the same packages may
    disagree in every figure of a cell (the float sums of training round differently)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.backends.cpu.get_cpu_capability()}"


def run_meta() -> dict[str, str]:
    """What produced a metrics record: package versions, the platform and the CPU (:func:`cpu_name`)."""
    return {"vsb2net_version": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "cpu": cpu_name()}


def validation_score(metrics: Metrics, select_on: str) -> float:
    """The number the validation protocol maximises, from the pseudo-unseen row.

    ``image``: image -> image mAP@all.  ``image+class``: the mean of that and the class-name mAP
    (image mAP alone for a method without a semantic branch), so selection also rewards codes
    whose class names find their images.
    """
    row = metrics["unseen"]
    class_map = row.get("class_query_map")
    if select_on == "image+class" and class_map is not None:
        return 0.5 * (row["map"] + class_map)
    return row["map"]
