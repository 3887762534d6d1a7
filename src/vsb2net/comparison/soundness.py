"""What RESULTS.md states before and beside its averages, so that a reviewer who reads the cells
finds nothing the tables hide: each learned method's health (collapsed cells flagged, never
averaged silently), epoch counts chosen at the tuning cap, and the ranking of all methods over
independent blocks (Friedman, Wilcoxon-Holm, the critical-difference diagram) with the smallest
gap each comparison could detect."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.health import collapsed
from ..evaluation.record import Cell, protocols
from ..models import METHODS, REFERENCE, variants
from .ranking import rank_methods, smallest_detectable_gap
from .spec import BenchmarkSpec


def _classes(cell: Cell) -> tuple[int, int]:
    """(every class, seen classes) of a cell: seen-class queries against the whole database have
    chance 1 / classes for balanced classes (the datasets benchmarked here)."""
    seen: dict[str, Any] = dict(cell.get("seen") or {})
    chance = seen.get("map_chance")
    total = int(round(1 / chance)) if chance else 0
    return total, total - len(cell.get("unseen_classes", []))


def _distinct(cell: Cell) -> int | None:
    """Distinct database codes (cells with health), else distinct codes of the seen-class queries."""
    health = cell.get("health") or {}
    seen: dict[str, Any] = dict(cell.get("seen") or {})
    return health.get("distinct_codes", seen.get("distinct_codes"))


def collapsed_cells(rows: list[Cell]) -> dict[tuple[str, int, int], str]:
    """(variant, bits, split) -> why, for every cell of a learned method whose codes collapsed
    (:func:`vsb2net.evaluation.health.collapsed`: distinct codes no more than the classes, or seen@seen within
    0.05 of its chance 1 / seen classes); the random floor is not learned and never counts."""
    out = {}
    for r in rows:
        if not METHODS.get(r["method"]).trainable:
            continue
        total, seen = _classes(r)
        why = collapsed({"distinct_codes": _distinct(r)}, total, protocols(r).get("seen@seen"),
                        1 / seen if seen > 0 else None)
        if why:
            out[(r["variant"], r["bits"], r["split"])] = why
    return out


def collapse_lines(rows: list[Cell]) -> list[str]:
    """The collapsed cells, named: a table that averages one says so right under it."""
    bad = collapsed_cells(rows)
    if not bad:
        return ["Health: no learned method's cell collapsed (distinct database codes above the number of classes "
                "and seen@seen more than 0.05 above chance in every cell).", ""]
    shown = "; ".join(f"{v} {b} bits split {s}: {why}" for (v, b, s), why in sorted(bad.items()))
    return [f"**Collapsed cells ({len(bad)}), averaged in the table above and flagged here:** {shown}.", ""]


def health_table(rows: list[Cell], methods: list[str], bits: int) -> list[str]:
    """Per method at one length: median seen@seen, median distinct database codes, dead units and
    feature rank where recorded, collapsed cells."""
    bad = collapsed_cells(rows)
    lines = [f"### Health at {bits} bits (median over splits)", "",
             "| method | seen@seen | distinct codes | bit balance | dead units | feature rank | collapsed cells |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        mine = [r for r in rows if r["variant"] == m and r["bits"] == bits]
        if not mine:
            continue

        def med(values: list[Any], fmt: str) -> str:
            got = [v for v in values if v is not None]
            return format(float(np.median(got)), fmt) if got else "-"

        h = [r.get("health") or {} for r in mine]
        lines.append(f"| {m} | {med([protocols(r).get('seen@seen') for r in mine], '.3f')} | "
                     f"{med([_distinct(r) for r in mine], '.0f')} | {med([x.get('bit_balance') for x in h], '.2f')} | "
                     f"{med([x.get('dead_units') for x in h], '.2f')} | "
                     f"{med([x.get('feature_rank') for x in h], '.1f')} | "
                     f"{sum(1 for k in bad if k[0] == m and k[1] == bits)} of {len(mine)} |")
    return lines + [""]


def at_cap_lines(tuned: dict) -> list[str]:
    """Methods whose tuned epoch count is the tuning's cap: trained longer they might do better."""
    cap = tuned.get("max_epochs")
    if cap is None:
        return []
    at = [m for m, s in tuned.get("methods", {}).items() if s.get("train.epochs") == cap]
    return ([f"**Epoch count at the tuning cap ({cap}):** {', '.join(at)}; raise `--max-epochs` and retune.", ""]
            if at else [])


def independent_blocks(rows: list[Cell]) -> dict[int, str]:
    """split -> its unseen classes, keeping the first split of each distinct unseen set (random
    draws repeat sets: counting a repeat as a block would count the same comparison twice)."""
    seen: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: r["split"]):
        key = "+".join(sorted(r["unseen_classes"]))
        seen.setdefault(key, r["split"])
    return {s: k for k, s in seen.items()}


def ranking_lines(rows: list[Cell], spec: BenchmarkSpec, bits: int, protocol: str, picture: Path,
                  docs_dir: Path, explain: bool = True) -> list[str]:
    """Every method ranked over the distinct splits at one length and protocol: Friedman, the
    mean ranks, Holm-corrected Wilcoxon p-values against the reference, the smallest gap each
    paired comparison could detect, and the critical-difference diagram; ``explain``: say how
    the tests work and what they can detect (once per dataset)."""
    blocks = independent_blocks(rows)
    methods = [m for m in spec.methods if not variants()[m][1]]
    scores = {m: {str(r["split"]): float(v) for r in rows
                  if r["variant"] == m and r["bits"] == bits and r["split"] in blocks
                  and (v := protocols(r).get(protocol)) is not None}
              for m in methods}
    scores = {m: v for m, v in scores.items() if v}
    if len(scores) < 3 or min(len(v) for v in scores.values()) < 5:
        return []
    r = rank_methods(scores)
    dropped = len({x["split"] for x in rows}) - len(blocks)
    r.diagram(picture, f"{spec.dataset}, {protocol}, {bits} bits: mean rank over {len(r.blocks)} splits")
    intro = (f"Blocks: the {len(r.blocks)} distinct unseen splits"
             + (f" ({dropped} split(s) that repeat an earlier split's unseen classes left out)" if dropped else "")
             + f". Friedman test over the methods: p = {r.friedman_p:.2g}"
             + (" (the methods differ)" if r.friedman_p < r.alpha else " (no difference shown)") + ".")
    if explain:
        intro += (f" Nemenyi's critical difference would be {r.nemenyi_cd:.1f} ranks here. Pairwise: Wilcoxon "
                  "signed-rank tests with Holm's correction (scikit-posthocs); a bar in the diagram joins methods "
                  "that do not differ at 0.05. The smallest gap is the mean paired gap a test over these splits "
                  "detects with 80% power, from the spread of the observed gaps."
                  + _power_note(len(r.methods), len(r.blocks)))
    lines = [f"### Ranking of all methods: {protocol} at {bits} bits", "", intro, "",
             "| method | mean rank | mean | gap to " + REFERENCE + " | Holm p | smallest detectable gap |",
             "|---|---:|---:|---:|---:|---:|"]
    ref = np.array([scores[REFERENCE][b] for b in r.blocks]) if REFERENCE in scores else None
    for m in sorted(r.methods, key=lambda m: r.mean_ranks[m]):
        mine = np.array([scores[m][b] for b in r.blocks])
        if ref is None or m == REFERENCE:
            gap = p = mde = "-"
        else:
            d = ref - mine
            gap, p = f"{d.mean():+.3f}", f"{r.pairwise_p.loc[REFERENCE, m]:.2g}"
            mde = f"{smallest_detectable_gap(d):.3f}"
        lines.append(f"| {m} | {r.mean_ranks[m]:.1f} | {mine.mean():.3f} | {gap} | {p} | {mde} |")
    return lines + ["", f"![critical difference]({os.path.relpath(picture, docs_dir)})", ""]


def _power_note(k: int, n: int) -> str:
    """Where no pair can differ: the smallest exact two-sided Wilcoxon p over n blocks is 2 / 2^n,
    and Holm's first step multiplies it by the k (k - 1) / 2 pairs."""
    pairs = k * (k - 1) // 2
    floor = 2 / 2 ** n
    if floor * pairs <= 0.05:
        return ""
    return (f" With {n} blocks the smallest possible Wilcoxon p is 2/2^{n} = {floor:.4f}, and Holm's correction "
            f"over {pairs} pairs makes it {min(1.0, floor * pairs):.2g}: no pair can be shown to differ here, "
            "whatever the gaps; more blocks (the 45 pairs of classes) are what would.")


STUDY_PATTERN = [
    "### Why asymmetric methods do not lead here, while an unseen-class study found them far ahead",
    "",
    "Two ways of coding a database give different unseen@all figures for an asymmetric method (ADSH):",
    "",
    "- **Inductive (ours, every method alike):** every database image, seen or unseen class, is coded by the "
    "network. The learned codes V of the training set exist only during training.",
    "- **The study's:** the seen-class database keeps the learned codes V, the unseen-class database is coded "
    "by the network. Two coding functions meet in one ranking: the learned codes of seen-class items cluster "
    "tightly by class and far from the network's unseen-class codes, so unseen queries find their classmates "
    "first almost by construction. Under that protocol even a collapsed ADSH model (one code for every image) "
    "scored 0.50 (Animal) and 0.99 (Fashion) unseen@all here.",
    "",
    "The study also chose its checkpoint by the best seen@seen mAP on test queries and ranked ties with an "
    "unstable sort (METHOD.md lists both as known defects). Its pattern is therefore not expected under the "
    "inductive protocol, and none of its figures enters the tables.",
    "",
    "unseen@unseen is the 2-class problem of the two unseen classes: its random baseline (the `random` row) is "
    "about 0.5, so read it beside that row, not beside 0.",
    "",
]


def convergence_lines(path: Path, docs_dir: Path, bar: str = "greedyhash", within: float = 0.05) -> list[str]:
    """The health runs of ``path`` (JSON lines of ``benchmarks/health_run.py``: one method trained
    longer than its tuned epochs on one split) beside ``bar``'s seen@seen: whether a method whose
    cells score low is starving or was only stopped early by its tuning (a method within ``within``
    of the bar is not starving)."""
    if not path.is_file():
        return []
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ref = next((r["seen@seen"] for r in runs if r["method"] == bar and not _settings(r)), None)
    if ref is None:
        return []
    splits, epochs = (", ".join(map(str, sorted({r[k] for r in runs}))) for k in ("split", "epochs"))
    lines = [f"### Health at convergence ({len(runs)} health runs)", "",
             f"Each method trained on split {splits} for {epochs} epochs instead of its tuned "
             "count, its tuned settings otherwise (`benchmarks/health_run.py`; commands and machine in "
             f"[COMMANDS.md]({os.path.relpath(path.parent.parent / 'COMMANDS.md', docs_dir)})). It reads that "
             "split's test queries, so it judges health (starving, collapsing), never a setting. The bar: within "
             f"{within} of {bar}'s seen@seen.", "",
             f"| method | changed setting | seen@seen | minus {bar} | distinct seen-class codes | dead units | "
             "feature rank | unseen@all |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        gap = r["seen@seen"] - ref
        lines.append(f"| {r['method']} | {', '.join(_settings(r)) or '-'} | {r['seen@seen']:.3f} | "
                     f"{gap:+.3f}{'' if gap >= -within else ' (below the bar)'} | {r.get('seen_distinct', '-')} | "
                     f"{_num(r.get('dead_units'), '.2f')} | {_num(r.get('feature_rank'), '.1f')} | "
                     f"{r['unseen@all']:.3f} |")
    return lines + [""]


def _settings(run: dict[str, Any]) -> list[str]:
    """A health run's changed settings, less the split design and subsample every run of the file shares."""
    return [o for o in run.get("over", []) if not o.startswith("data.")]


def _num(value: Any, fmt: str) -> str:
    return "-" if value is None else format(float(value), fmt)
