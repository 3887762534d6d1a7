"""Judge ways of building class-name query codes on the validation protocol only.

One VSB2-Net is trained per pool and pseudo-unseen fold (seen classes only, as in
``transfer_experiments.py``); then every pseudo-unseen class gets a query code from each
(class vectors, construction) pair below, built from the training classes' mean image codes, and
queries the fold's database.  The image codes are the same for every construction, so the paired
gaps compare only how a class vector becomes a code.  No unseen class of a test split and no test
query is touched: the test split decides only which classes form the pool.

    .venv/bin/python benchmarks/class_code_experiments.py --dataset animal-mnist --splits 0,1,2,3,4 \\
        --folds 2 --epochs 8 --out codes/8-animal.jsonl

Prints, per vector source and construction, the mean class-name mAP over runs and the paired gap to
the default (the vectors of the run, LLE with ``model.lle_neighbors`` neighbours), and appends every
run's numbers to ``--out`` (JSON lines).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from vsb2net.codes import pack_codes
from vsb2net.config import build_config
from vsb2net.data.knowledge import class_descriptions
from vsb2net.data.semantics import class_vectors
from vsb2net.data.splits import validation_splits
from vsb2net.evaluation.model_eval import _code_queries, evaluate_model
from vsb2net.models.base import encode
from vsb2net.models.relations import reconstruction_weights
from vsb2net.pipeline import fit_method, prepare
from vsb2net.training import resolve_device


def _unit(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def constructions(lle_k: int) -> dict:
    """name -> f(query vectors, seen vectors, seen mean codes) -> continuous codes."""
    def lle(k, reg=1e-3, centre=False):
        def f(q, s, m):
            if centre:
                mu = s.mean(0)
                q, s = q - mu, s - mu
            return reconstruction_weights(q, s, k, reg) @ m
        return f

    def soft(t, centre=False):
        def f(q, s, m):
            if centre:
                mu = s.mean(0)
                q, s = q - mu, s - mu
            c = _unit(q) @ _unit(s).T / t
            w = np.exp(c - c.max(1, keepdims=True))
            return (w / w.sum(1, keepdims=True)) @ m
        return f

    def ridge(lam):
        # a linear map from centred class vectors to the mean codes, fitted on the training classes
        def f(q, s, m):
            mu, mm = s.mean(0), m.mean(0)
            a = s - mu
            w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (m - mm))
            return (q - mu) @ w + mm
        return f

    def repel(beta):
        # the default code moved away from the nearest training class's mean code: an unseen class's
        # images are, by definition, not that class's images
        def f(q, s, m):
            base = lle(lle_k)(q, s, m)
            nearest = np.argmax(_unit(q) @ _unit(s).T, axis=1)
            return base - beta * m[nearest]
        return f

    return {"lle": lle(lle_k), "repel0.3": repel(0.3), "repel0.6": repel(0.6), "lle1": lle(1), "lle2": lle(2),
            "lle5": lle(5), "lle-all": lle(99), "lle-reg0.1": lle(lle_k, 0.1), "lle-all-reg1": lle(99, 1.0),
            "lle-c": lle(lle_k, centre=True), "lle-all-c": lle(99, centre=True),
            "soft0.05": soft(0.05), "soft0.1": soft(0.1), "soft0.05-c": soft(0.05, True),
            "soft0.2-c": soft(0.2, True), "ridge0.1": ridge(0.1), "ridge1": ridge(1.0)}


def vector_sources(prep) -> dict:
    ds = prep.dataset
    out = {"run": prep.vectors.astype(np.float64)}
    if ds.attributes is not None:
        out["attributes"] = class_vectors("attributes", ds.class_names, attributes=ds.attributes).astype(np.float64)
    out["glove"] = class_vectors("glove", ds.class_names).astype(np.float64)
    out["minilm-name"] = class_vectors("minilm", ds.class_names).astype(np.float64)
    desc = class_descriptions(ds.name)
    if desc:
        out["minilm-desc"] = class_vectors("minilm", ds.class_names, descriptions=desc).astype(np.float64)
    if "attributes" in out and "minilm-desc" in out:
        z = [(_unit(v - v.mean(0))) for v in (out["attributes"], out["minilm-desc"])]
        out["attr+desc"] = np.concatenate(z, axis=1)
    return out


def run_fold(cfg, prep, val, epochs, sources, builds, names, device) -> tuple[dict, dict]:
    """Class-name mAP per construction, and the one evaluation's unseen row of the same model."""
    model, _ = fit_method(cfg, prep, val, epochs, device, "fold")
    model.eval()
    labels = prep.dataset.labels
    u = encode(model.hash_images, prep.x[val.train], device)
    y = labels[val.train]
    seen = list(val.seen)
    means_tanh = np.stack([u[y == c].mean(0) for c in seen]).astype(np.float64)
    means_sign = np.stack([np.sign(u[y == c]).mean(0) for c in seen]).astype(np.float64)
    # the one evaluation of this model: its codes, its oracle, and where its default class codes
    # land (its class-name mAP is res["run/lle"])
    metrics, enc = evaluate_model(model, prep.x, labels, val, prep.vectors, names, device, topk=(), curves=False,
                                  rows=("unseen",), alignment=False)
    db, dl = enc.packed["database"], labels[val.database]
    classes = list(val.unseen)
    res = {}

    def score(codes: np.ndarray) -> float:
        return _code_queries(pack_codes(torch.from_numpy(codes.astype(np.float32))), classes, names, db, dl)["map"]

    for src, vec in sources.items():
        for name, build in builds.items():
            res[f"{src}/{name}"] = score(build(vec[classes], vec[seen], means_tanh))
        res[f"{src}/lle-signmean"] = score(builds["lle"](vec[classes], vec[seen], means_sign))
    # query expansion (Chum et al. 2007): the class code's k nearest database codes, averaged, are
    # the new query; no label is read, only the database being searched
    signs = np.where(enc.continuous["database"] >= 0, 1.0, -1.0)
    order_noise = np.random.default_rng(0).random(len(signs))  # ties in random, not database, order

    def expand(codes: np.ndarray, k: int, rounds: int = 1) -> np.ndarray:
        q = np.where(codes >= 0, 1.0, -1.0)
        for _ in range(rounds):
            dist = (q.shape[1] - q @ signs.T) / 2
            top = np.lexsort((np.broadcast_to(order_noise, dist.shape), dist), axis=1)[:, :k]
            q = np.where(signs[top].mean(1) + 1e-3 * q >= 0, 1.0, -1.0)
        return q

    for src in ("run", "minilm-name"):
        if src not in sources:
            continue
        for bname in ("lle", "ridge0.1"):
            c0 = builds[bname](sources[src][classes], sources[src][seen], means_tanh)
            for k in (20, 50, 100, 200, 400):
                res[f"{src}/{bname}+qe{k}"] = score(expand(c0, k))
            res[f"{src}/{bname}+qe100x3"] = score(expand(c0, 100, 3))
    with torch.inference_mode():
        z = model.semantic(torch.from_numpy(prep.vectors[classes]).float() - model.semantic_center)
    res["run/semantic-branch"] = score(torch.tanh(z).numpy())
    res["oracle"] = metrics["unseen"]["oracle_class_map"]
    return res, metrics["unseen"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="animal-mnist")
    p.add_argument("--splits", default="0,1")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--set", default="model.w_rec=3,data.class_vectors=attributes,train.threads=1",
                   help="overrides of the trained model, comma-separated")
    p.add_argument("--out", default="class_code_experiments.jsonl")
    args = p.parse_args(argv)
    device = resolve_device("cpu")
    rows = []
    t0 = time.perf_counter()
    for split in (int(s) for s in args.splits.split(",")):
        cfg = build_config(None, [f"data.dataset={args.dataset}", f"data.split_seed={split}",
                                  f"model.bits={args.bits}", f"train.epochs={args.epochs}", "train.progress=false",
                                  *[kv for kv in args.set.split(",") if kv]])
        prep = prepare(cfg)
        sources = vector_sources(prep)
        builds = constructions(cfg.model.params.lle_neighbors)
        vals = validation_splits(prep.dataset.labels, prep.split, cfg.data.n_val_unseen, cfg.data.query_fraction,
                                 cfg.data.split_seed, args.folds)
        for k, val in enumerate(vals):
            res, row_metrics = run_fold(cfg, prep, val, args.epochs, sources, builds, prep.dataset.class_names, device)
            row = {"split": split, "fold": k, "pseudo_unseen": [prep.dataset.class_names[c] for c in val.unseen],
                   "set": args.set, "dataset": args.dataset, "bits": args.bits, "epochs": args.epochs, "map": res,
                   "class_code_distances": row_metrics["class_code_distances"]}
            rows.append(row)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"split {split} fold {k} {row['pseudo_unseen']}: default {res['run/lle']:.3f} (the evaluation's "
                  f"{row_metrics['class_query_map']:.3f}) "
                  f"oracle {res['oracle']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    keys = list(rows[0]["map"])
    base = np.array([r["map"]["run/lle"] for r in rows])
    print(f"{'construction':28s} {'class mAP':>9s} {'gap':>7s} {'s.e.':>6s}  ({len(rows)} runs)")
    for key in keys:
        v = np.array([r["map"][key] for r in rows])
        d = v - base
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        print(f"{key:28s} {v.mean():9.3f} {d.mean():+7.3f} {se:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
