"""Registered row metrics: figures of a Hamming ranking that every evaluation computes from the
distance histograms of a query row, beside the built-in ones of :mod:`vsb2net.evaluation.retrieval`.

A row metric is a function ``(n, r) -> per-query values``: ``n[q, d]`` database items and
``r[q, d]`` relevant ones at Hamming distance ``d`` from query ``q`` (the histograms that make
every figure here tie-aware by construction: items at one distance are one tied group).  The row's
value is the mean over its queries.  :func:`vsb2net.evaluation.model_eval.evaluate_model` puts each
registered metric into every row (``metrics.json``), a benchmark cell keeps it, and ``report.md``
and a benchmark's ``results.csv`` show it.

Adding a metric: one function here (or in a module imported here) registered with
``@row_metric("name", "column label")``; ``tests/test_house.py`` registers one and finds it in a
run's metrics, a cell and the report.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..registry import Registry
from .retrieval import precision_recall_radius

Hists = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class RowMetric:
    """A registered metric: its per-query function and its column label in reports."""

    fn: Hists
    label: str


ROW_METRICS: Registry[RowMetric] = Registry("row metric")


def row_metric(name: str, label: str) -> Callable[[Hists], Hists]:
    """Register ``fn(n, r) -> (Q,) per-query values`` as the row metric ``name``."""

    def deco(fn: Hists) -> Hists:
        ROW_METRICS.add(name, RowMetric(fn, label), help=(fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def row_metric_values(n: np.ndarray, r: np.ndarray) -> dict[str, float]:
    """Every registered metric of a row: the mean over its queries (0.0 for a row without queries)."""
    return {name: float(np.mean(ROW_METRICS.get(name).fn(n, r))) if len(n) else 0.0
            for name in ROW_METRICS.names()}


@row_metric("recall_radius2", "R@r<=2")
def recall_radius2(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Recall within Hamming radius 2: the share of a query's relevant items at distance 2 or less
    (the lookup-table retrieval of the hashing literature; 0 for a query without relevant items)."""
    return precision_recall_radius(n, r)[1][:, 2]
