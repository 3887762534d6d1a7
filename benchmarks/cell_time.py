"""Where a benchmark cell's time goes: one cell of the results plan (a method at its tuned settings, split 0),
phase by phase, on one thread, as a `make_results.py --jobs 2` worker computes it.

    .venv/bin/python benchmarks/cell_time.py [METHOD ...]        # default: csq vsb2net

Phases: training (the tuned epochs), encoding every image, the Hamming metrics of both query rows,
the asymmetric metrics (scored per distinct database code, as the cell does, and per item, as
before), the semantic alignment (once per split in a worker) and the health. The first cell of a
process also pays one-off imports (torch's compiler stack, about 2 s), left out here by a warm-up
cell. Prints seconds per phase; run it on an otherwise idle machine.
"""
import sys
import time

import numpy as np
import torch

from make_results import PLAN  # benchmarks/, beside this script
from vsb2net.comparison import cells
from vsb2net.comparison.spec import cell_config, load_tuned
from vsb2net.evaluation import model_eval, retrieval
from vsb2net.evaluation.health import model_health
from vsb2net.pipeline import prepare
from vsb2net.served_order import served_order


def per_item_ap(u: np.ndarray, db: np.ndarray, ql: np.ndarray, dl: np.ndarray, within_hamming: bool) -> None:
    """The asymmetric AP's ranking as it was computed before (every item scored and sorted)."""
    b = np.unpackbits(db, axis=1).astype(np.float64) * 2 - 1
    for lo in range(0, len(u), 64):
        s = u[lo:lo + 64] @ b.T
        if within_hamming:
            d = np.rint((b.shape[1] - np.where(u[lo:lo + 64] >= 0, 1.0, -1.0) @ b.T) / 2)
            served_order(d, np.broadcast_to(np.arange(len(b)), d.shape), s)
        else:
            np.argsort(-s, axis=1, kind="stable")


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def asymmetric_both(fn, u, db, ql, dl) -> None:
    for within in (False, True):
        fn(u, db, ql, dl, within_hamming=within)


def cell_phases(cfg, prep, device) -> str:
    model, fit = timed(cells.fit_cell, cfg, prep, device, cells._StageCache())
    (_, enc), total = timed(model_eval.evaluate_model, model, prep.x, prep.dataset.labels, prep.split, prep.vectors,
                            prep.dataset.class_names, device, topk=tuple(cfg.eval.topk), curves=False,
                            alignment=False, asymmetric=False)
    db = enc.packed["database"]
    dl = prep.dataset.labels[prep.split.database]
    u = np.concatenate([enc.continuous["query_unseen"], enc.continuous["query_seen"]]).astype(np.float64)
    ql = np.concatenate([prep.dataset.labels[prep.split.query_unseen], prep.dataset.labels[prep.split.query_seen]])
    _, asym = timed(asymmetric_both, retrieval.asymmetric_average_precision, u, db, ql, dl)
    _, asym_items = timed(asymmetric_both, per_item_ap, u, db, ql, dl)
    _, align = timed(model_eval.semantic_alignment, prep.x, prep.dataset.labels, prep.split.train,
                     list(prep.split.seen), prep.vectors)
    _, health = timed(model_health, model, prep.x[prep.split.train], db, 32, device)
    return (f"training {fit:.2f} s, encoding {enc.seconds:.2f} s, Hamming metrics {total - enc.seconds:.2f} s, "
            f"asymmetric metrics {asym:.2f} s per distinct code ({len(np.unique(db, axis=0))} of {len(db)}) vs "
            f"{asym_items:.2f} s per item (the ranking alone), semantic alignment {align:.2f} s, health {health:.2f} s")


def main() -> None:
    torch.set_num_threads(1)
    methods = sys.argv[1:] or ["csq", "vsb2net"]
    spec = PLAN.main_spec("animal-mnist")
    tuned = load_tuned(spec.tuned)
    device = torch.device("cpu")
    prep = None
    for i, method in enumerate(["random", *methods]):  # random first: the one-off imports
        cfg = cell_config(spec, tuned, method, 32, 0)
        prep = prep or prepare(cfg)
        line = cell_phases(cfg, prep, device)
        if i:
            print(f"{method} ({cfg.train.epochs} epochs): {line}")


if __name__ == "__main__":
    main()
