"""The benchmark's means over splits, for a run's report to set its one split's figures beside.

One split's figures swing widely (an unseen pair of classes can be easy or hard), so a report
that shows only its own split's class-name mAP invites the wrong reading.  ``make_results.py``
writes ``reference.json`` (package data, beside this file) from the main tables' cells
(:func:`vsb2net.comparison.results_doc.write_reference`, with the aggregate docs/RESULTS.md's tables
use); the report reads it with :func:`lookup`, without importing the benchmark machinery.
"""
from __future__ import annotations

import json
from pathlib import Path

PATH = Path(__file__).with_name("reference.json")
#: the unseen-class figures kept: image mAP, class-name mAP and zero-shot accuracy with their chance
KEYS = ("map", "class_query_map", "class_query_chance", "zero_shot_accuracy", "zero_shot_chance")


def lookup(dataset: str, method: str, bits: int, path: Path = PATH) -> tuple[dict, dict] | None:
    """(the dataset's benchmark settings, key -> {mean, std, splits}) for one method and code
    length, or None when the benchmark has no such cells (or no reference file ships)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(str(dataset).lower())
    figures = ((entry or {}).get("methods") or {}).get(method, {}).get(str(bits))
    if not entry or not figures:
        return None
    return {k: v for k, v in entry.items() if k != "methods"}, figures
