"""Benchmark results as tables: means and sample standard deviations over splits, Markdown, CSV
and the plot of mAP against code length."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.record import Cell, RowName, row_of
from ..evaluation.row_metrics import ROW_METRICS
from ..io import atomic_path, write_text
from .spec import BenchmarkSpec

#: (method, bits) -> (mean, sample std, splits) of one metric over a benchmark's cells
Aggregate = dict[tuple[str, int], tuple[float, float, int]]


def aggregate(rows: Sequence[Cell], part: RowName = "unseen", key: str = "map") -> Aggregate:
    """(method, bits) -> (mean, sample std (ddof 1; 0 for one split), splits) of ``r[part][key]``.

    Cells without the value (a method without a semantic branch has no class-name mAP; cells
    computed before a metric existed) are left out, so a method shows '-' rather than a mean over
    fewer splits than its neighbours.
    """
    return _over_splits(rows, lambda r: row_of(r, part).get(key))


def aggregate_class_code_distances(rows: Sequence[Cell], key: str, part: RowName = "unseen") -> Aggregate:
    """:func:`aggregate` of one field of the rows' ``class_code_distances`` (cells of methods
    without class codes left out)."""
    return _over_splits(rows, lambda r: (row_of(r, part).get("class_code_distances") or {}).get(key))


def _over_splits(rows: Sequence[Cell], value: Callable[[Cell], Any]) -> Aggregate:
    groups: dict[tuple[str, int], list[float]] = {}
    missing: set[tuple[str, int]] = set()
    for r in rows:
        v = value(r)
        if v is None:
            missing.add((r["variant"], r["bits"]))
            continue
        groups.setdefault((r["variant"], r["bits"]), []).append(v)
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for k, v in groups.items() if k not in missing}


def markdown_table(agg: Aggregate, methods: list[str], bits: list[int], bold_best: bool = True, digits: int = 3) -> str:
    lines = ["| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---:|" * len(bits)]
    best = {b: max((agg[(m, b)][0] for m in methods if (m, b) in agg), default=None) for b in bits}
    for m in methods:
        cells = []
        for b in bits:
            if (m, b) not in agg:
                cells.append("-")
                continue
            mean, std, n = agg[(m, b)]
            text = f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(f"**{text}**" if bold_best and mean == best[b] else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(out: Path, spec: BenchmarkSpec, rows: list[Cell]) -> None:
    """results.csv, table.md and map_vs_bits.png of ``rows`` (the spec's current cells) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    unseen_cols = ("map", "map_optimistic", "map_pessimistic", "precision_radius2", "map_unseen_db",
                   "class_query_map", "class_query_chance", "zero_shot_accuracy", "zero_shot_chance",
                   "oracle_class_map", "distinct_codes", "nearest_tie_group", *ROW_METRICS.names())
    w.writerow(["method", "bits", "split", "unseen_classes", *(f"unseen_{c}" for c in unseen_cols), "seen_map",
                "semantic_alignment", "epochs", "seconds"])

    def fmt(v) -> str:
        return "" if v is None else (f"{v:.6f}" if isinstance(v, float) else str(v))

    for r in rows:
        u, s = r["unseen"], r["seen"]
        w.writerow([r["variant"], r["bits"], r["split"], "+".join(r["unseen_classes"]),
                    *(fmt(u.get(c)) for c in unseen_cols), fmt(s["map"]),
                    fmt(r.get("semantics", {}).get("alignment")), r["epochs"], f"{r['seconds']:.2f}"])
    write_text(out / "results.csv", buf.getvalue())
    unseen, seen = aggregate(rows, "unseen"), aggregate(rows, "seen")
    n_splits = max(v[2] for v in unseen.values())
    md = [f"Unseen-class queries, mAP@all (tie-aware), mean ± std over {n_splits} split(s):", "",
          markdown_table(unseen, spec.methods, spec.bits), "",
          "Seen-class queries, mAP@all (tie-aware), same runs:", "",
          markdown_table(seen, spec.methods, spec.bits), ""]
    write_text(out / "table.md", "\n".join(md))
    from ..models import variants

    ablation = {v for v, (_, overrides) in variants().items() if overrides}  # drawn dotted
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for m in spec.methods:
        pts = [(b, *unseen[(m, b)][:2]) for b in spec.bits if (m, b) in unseen]
        if pts:
            b, mu, sd = zip(*pts)
            ax.errorbar(b, mu, yerr=sd, marker="o", capsize=3, label=m,
                        linestyle=":" if m in ablation else "-")
    ax.set(xlabel="bits", ylabel="unseen-class mAP@all (tie-aware)", title=f"{spec.dataset}: mAP vs code length",
           xticks=spec.bits)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    with atomic_path(out / "map_vs_bits.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


