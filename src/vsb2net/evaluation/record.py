"""The metrics record, declared once: what :func:`vsb2net.evaluation.model_eval.evaluate_model` returns, what a
run's ``metrics.json`` holds and what a benchmark cell keeps of it (:func:`summary`).

They are JSON objects, so the declarations are ``TypedDict``\\ s: a reader indexes them as before
and a type checker catches a misspelt key.  What each metric means is in the docstring of
:mod:`vsb2net.evaluation.model_eval`; the tie rule is in :mod:`vsb2net.evaluation.retrieval`.

One thing a ``TypedDict`` cannot declare: a row also holds ``map@K`` for each K of its ``topk``
(``eval.topk``), one key per K; :func:`map_at_k_keys` lists them.

This module imports nothing heavy (no numpy, no torch), so readers of cells and of
``metrics.json`` can import it alone.
"""
# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[...] from evaluated
# annotations only, and __required_keys__ / __optional_keys__ are part of the declaration.
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, cast

#: a query row: the queries of the unseen or of the seen classes; the database is the same for both
RowName = Literal["unseen", "seen"]
ROWS: tuple[RowName, ...] = ("unseen", "seen")


class PrecisionAtK(TypedDict):
    """Tie-aware precision@K, K clipped to the database size (``eval.precision_ks``)."""

    k: list[int]
    precision: list[float]


class PrCurve(TypedDict):
    """Precision and recall of the items within Hamming radius 0..bits."""

    radius: list[int]
    precision: list[float]
    recall: list[float]


class ClassQuery(TypedDict):
    """One query code per class against the whole database (its relevant items: the class's images)."""

    map: float
    map_optimistic: float
    map_pessimistic: float
    n_queries: int
    per_class: dict[str, float]


class ClassCodeDistances(TypedDict):
    """Where a row's class codes land, in bits, averaged over the row's classes."""

    to_own_images: float
    to_oracle: float
    #: None when there are no other classes to compare with
    to_nearest_other: float | None
    nearer_other_share: float | None


class RowSummary(TypedDict):
    """The per-row scalars a benchmark cell keeps, in the order a cell file lists them (plus ``map@K``).

    None marks a metric the method cannot have: class-name queries and zero-shot accuracy of a method
    without a semantic branch, the oracle of a row whose classes have no database image.
    """

    map: float
    map_optimistic: float
    map_pessimistic: float
    map_chance: float
    #: mAP against the database items of the row's own classes: the unseen row has the first, the seen row the second
    map_unseen_db: NotRequired[float]
    map_seen_db: NotRequired[float]
    precision_radius2: float
    zero_shot_accuracy: float | None
    zero_shot_chance: float | None
    class_query_map: float | None
    class_query_chance: float
    oracle_class_map: float | None
    distinct_codes: int
    n_database_of_classes: int
    nearest_tie_group: float
    n_queries: int
    #: the asymmetric ranking: real-valued query codes (before the sign) against the binary
    #: database; cells computed before it lack it
    map_asym: NotRequired[float]
    class_query_map_asym: NotRequired[float | None]
    #: Hamming distance first, that score within a distance: the order search and serve give
    map_asym_in_ties: NotRequired[float]
    class_query_map_asym_in_ties: NotRequired[float | None]


class RowMetrics(RowSummary):
    """One query row of :func:`vsb2net.evaluation.model_eval.evaluate_model` (and of ``metrics.json``)."""

    n_database: int
    n_queries_without_relevant: int
    bits: int
    tie_rule: str
    #: only with ``curves`` (a run; neither the validation protocol nor a benchmark cell keeps them)
    precision_at_k: NotRequired[PrecisionAtK]
    pr_curve: NotRequired[PrCurve]
    class_query: ClassQuery | None
    class_code_distances: ClassCodeDistances | None


class Semantics(TypedDict):
    #: Spearman's rho over pairs of training classes (None when not computed or undefined)
    alignment: float | None
    #: which class vectors (``data.class_vectors``, resolved): set by whoever knows, a run or a cell
    source: NotRequired[str]


class Timing(TypedDict):
    encode_seconds: float
    evaluate_seconds: float


#: protocol name (queries@database) -> mAP@all, None where its row was not evaluated
Protocols = dict[str, float | None]


class Metrics(TypedDict):
    """What :func:`vsb2net.evaluation.model_eval.evaluate_model` returns; a run adds ``meta`` (moving ``timing``
    into it) and writes it as ``metrics.json``."""

    #: the rows asked for (the validation protocol evaluates ``unseen`` only)
    unseen: NotRequired[RowMetrics]
    seen: NotRequired[RowMetrics]
    protocols: Protocols
    semantics: Semantics
    timing: NotRequired[Timing]
    meta: NotRequired[dict[str, Any]]


class CellMetrics(TypedDict):
    """What a benchmark cell keeps of the metrics (:func:`summary`)."""

    unseen: NotRequired[RowSummary]
    seen: NotRequired[RowSummary]
    #: cells computed before the protocols were recorded lack them: :func:`protocols` reads them off the rows
    protocols: NotRequired[Protocols]
    semantics: Semantics
    #: the model's health (:func:`vsb2net.evaluation.health.model_health`); cells computed before it lack it
    health: NotRequired[dict[str, Any]]


class Cell(CellMetrics):
    """A benchmark cell file (``benchmarks/results/<name>/cells/*.json``): the metrics, then what
    produced them."""

    variant: str
    method: str
    bits: int
    split: int
    unseen_classes: list[str]
    sizes: dict[str, int]
    epochs: int
    seconds: float
    config: dict[str, Any]
    config_hash: str
    vsb2net_version: str
    git_commit: str | None
    torch: str
    python: str
    device: str
    #: numpy's version and the CPU (:func:`vsb2net.evaluation.model_eval.cpu_name`); older cells lack them
    numpy: NotRequired[str]
    cpu: NotRequired[str]


#: the four protocols (queries@database) -> (row, its metric): the database of the row's own
#: classes (``map_*_db``) or the whole database (``map``)
PROTOCOLS: dict[str, tuple[RowName, str]] = {"seen@seen": ("seen", "map_seen_db"), "seen@all": ("seen", "map"),
             "unseen@unseen": ("unseen", "map_unseen_db"), "unseen@all": ("unseen", "map")}

#: the per-row scalars a benchmark cell keeps, in its order (curves and per-class detail stay in run
#: directories): the keys of :class:`RowSummary`
SUMMARY_KEYS: tuple[str, ...] = tuple(RowSummary.__annotations__)


def map_at_k_keys(row: Mapping[str, Any]) -> list[str]:
    """The row's ``map@K`` keys, in its order (one per K of its ``topk``)."""
    return [k for k in row if k.startswith("map@")]


def row_of(metrics: Metrics | CellMetrics, name: RowName) -> Mapping[str, Any]:
    """The row ``name`` of a metrics record or a cell; empty where it was not evaluated."""
    return metrics.get(name, {})


def protocols(metrics: Metrics | CellMetrics) -> Protocols:
    """mAP under each of :data:`PROTOCOLS` from a metrics record or a benchmark cell (None where
    its row was not evaluated)."""
    return {name: row_of(metrics, row).get(key) for name, (row, key) in PROTOCOLS.items()}


def registered_keys(row: Mapping[str, Any]) -> list[str]:
    """The row's keys that no declaration here names: the registered row metrics
    (:mod:`vsb2net.evaluation.row_metrics`), in the row's order."""
    declared = RowMetrics.__required_keys__ | RowMetrics.__optional_keys__
    return [k for k in row if k not in declared and not k.startswith("map@")]


def row_summary(row: Mapping[str, Any]) -> RowSummary:
    """The row's :data:`SUMMARY_KEYS`, ``map@K`` and registered metrics, in that order."""
    keys = (*SUMMARY_KEYS, *map_at_k_keys(row), *registered_keys(row))
    return cast(RowSummary, {k: row[k] for k in keys if k in row})


def summary(metrics: Metrics) -> CellMetrics:
    """What a benchmark cell keeps: each row's summary, the protocols and the semantics."""
    rows = {r: row_summary(row_of(metrics, r)) for r in ROWS if r in metrics}
    return cast(CellMetrics, {**rows, "protocols": protocols(metrics), "semantics": metrics.get("semantics", {})})
