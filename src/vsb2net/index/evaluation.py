"""Retrieval quality of class-name queries: a class's semantic code as the query.

For each class c of a query set (the unseen classes: the zero-shot number), the query is its
semantic hash vector s_c = sign(hash_classes(a_c)), the database is the run's database and the
relevant items are the database images of class c.  The mAP is the same tie-aware mAP@all as
for image queries (vsb2net.metrics), so the two numbers sit side by side in metrics.json.
"""
from __future__ import annotations

import numpy as np

from vsb2net.codes import pack_codes
from vsb2net.metrics import average_precision_tie_aware, distance_histograms, evaluate


def class_query_metrics(model, vectors: np.ndarray, classes: list[int], class_names: list[str],
                        db_codes: np.ndarray, db_labels: np.ndarray) -> dict | None:
    """mAP@all (tie-aware, with bounds) of class-code queries, and each class's AP.

    None when the method has no semantic branch (it cannot code a class) or there is no class.
    """
    import torch

    if not classes or not getattr(model, "codes_classes", True):
        return None
    with torch.inference_mode():
        queries = pack_codes(model.hash_classes(torch.from_numpy(np.asarray(vectors[classes], np.float32))))
    labels = np.asarray(classes, dtype=np.int64)
    if np.ndim(db_labels) == 2:  # multi-label database: the query's label row holds its one class
        labels = np.eye(db_labels.shape[1], dtype=np.uint8)[labels]
    m = evaluate(queries, db_codes, labels, db_labels, topk=(), precision_ks=())
    n, r = distance_histograms(queries, db_codes, labels, db_labels)
    ap = np.atleast_1d(average_precision_tie_aware(n, r))
    return {"map": m["map"], "map_optimistic": m["map_optimistic"], "map_pessimistic": m["map_pessimistic"],
            "n_queries": m["n_queries"], "per_class": {class_names[c]: float(a) for c, a in zip(classes, ap)}}


def add_class_query_metrics(metrics: dict, model, prep, db_codes: np.ndarray) -> None:
    """Put ``class_query_map`` (and the details under ``class_query``) into metrics["unseen"/"seen"]."""
    sp = prep.split
    db_labels = prep.dataset.labels[sp.database]
    for part, classes in (("unseen", sp.unseen), ("seen", sp.seen)):
        if part not in metrics:
            continue
        res = class_query_metrics(model, prep.vectors, list(classes), list(prep.dataset.class_names),
                                  db_codes, db_labels)
        metrics[part]["class_query_map"] = None if res is None else res["map"]
        metrics[part]["class_query"] = res
