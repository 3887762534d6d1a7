"""Comparing two methods split by split: the benchmark documents judge a lead on the paired gap over
the same splits, never on two means whose spread is mostly the splits'."""
from __future__ import annotations

from typing import TypedDict

import numpy as np

from ..evaluation.record import Cell, row_of
from ..models import REFERENCE, variants
from .spec import BenchmarkSpec
from .tables import Aggregate


def paired_gaps(rows: list[Cell], bits: int, a: str, b: str, key: str = "map") -> np.ndarray:
    """Unseen-class ``key`` of method ``a`` minus method ``b``, split by split (the splits both have)."""
    maps = {(r["variant"], r["split"]): row_of(r, "unseen").get(key) for r in rows if r["bits"] == bits}
    both = [(maps[(a, s)], maps[(b, s)]) for (v, s) in maps if v == a and (b, s) in maps]
    return np.array([x - y for x, y in both if x is not None and y is not None], dtype=float)


def gap_stats(gaps: np.ndarray) -> tuple[float, float, bool]:
    """Mean paired gap, its standard error, and whether it is beyond twice the standard error (the
    project's rule for a lead: a smaller gap is within what changing the split alone moves)."""
    mean = float(gaps.mean()) if len(gaps) else float("nan")
    se = float(gaps.std(ddof=1) / np.sqrt(len(gaps))) if len(gaps) > 1 else float("nan")
    return mean, se, bool(se > 0 and abs(mean) > 2 * se)


def paired_row(rows: list[Cell], bits: int, rival: str) -> tuple[str, str]:
    """VSB2-Net against ``rival`` at ``bits``: a Markdown table row (bits, rival, mean gap, standard
    error, splits ahead, verdict) and the verdict alone."""
    gaps = paired_gaps(rows, bits, REFERENCE, rival)
    mean, se, clear = gap_stats(gaps)
    word = ("**wins**" if mean > 0 else "behind") if clear else "no win (within the split-to-split spread)"
    return (f"| {bits} | {rival} | {mean:+.3f} | {se:.3f} | {int((gaps > 0).sum())} of {len(gaps)} | {word} |", word)


def best_rival(unseen: Aggregate, methods: list[str], bits: int) -> str | None:
    """The baseline with the highest mean unseen-class mAP at ``bits`` (the reference method and its
    ablations excluded)."""
    method_of = variants()
    rivals = [m for m in methods if method_of.get(m, (m, {}))[0] != REFERENCE and (m, bits) in unseen]
    return max(rivals, key=lambda m: unseen[(m, bits)][0], default=None)


class BestAtLength(TypedDict):
    bits: int
    best: str
    map: float
    second: str
    gap: float
    se: float
    clear: bool
    tied: list[str]


def _clearly_behind(rows: list[Cell], bits: int, best: str, m: str) -> bool:
    """Whether ``m`` trails ``best`` at ``bits`` by more than twice the paired gap's standard error."""
    gap, _, beyond = gap_stats(paired_gaps(rows, bits, best, m))
    return beyond and gap > 0


def best_per_length(rows: list[Cell], unseen: Aggregate, spec: BenchmarkSpec) -> list[BestAtLength]:
    """At each length: the method with the highest mean unseen-class mAP@all, the runner-up and the
    paired gap between them, and every method not behind the best by more than 2 standard errors."""
    out: list[BestAtLength] = []
    for b in spec.bits:
        ranked = sorted((m for m in spec.methods if (m, b) in unseen), key=lambda m: -unseen[(m, b)][0])
        if len(ranked) < 2:
            continue
        best, second = ranked[:2]
        mean, se, clear = gap_stats(paired_gaps(rows, b, best, second))
        tied = [m for m in ranked[1:] if not _clearly_behind(rows, b, best, m)]
        out.append({"bits": b, "best": best, "map": unseen[(best, b)][0], "second": second, "gap": mean, "se": se,
                    "clear": clear, "tied": tied})
    return out
