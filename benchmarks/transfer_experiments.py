"""Judge VSB2-Net settings on the validation protocol only: pseudo-unseen image mAP and class-name mAP.

For every setting (a list of ``section.key=value`` overrides) and every test split seed, the model
is trained on the split's seen classes minus the pseudo-unseen ones of each validation fold, and
scored after every epoch on those pseudo-unseen (seen!) classes.  No unseen class of any test split
and no test query is touched: the test split only decides which classes form the training pool.

    .venv/bin/python benchmarks/transfer_experiments.py --dataset animal-mnist --splits 0,1 --folds 2 \\
        --setting base: --setting linear:model.semantic_hidden=0 --out exp.json

Prints one line per setting: mean over splits x folds of the curve's best-epoch image mAP and
class-name mAP (at the epoch with the best mean image+class score), and appends every curve to
``--out`` (JSON lines), so a long grid can be split over several calls.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from vsb2net.config import build_config
from vsb2net.data.splits import validation_splits
from vsb2net.pipeline import fit_method, prepare
from vsb2net.training import resolve_device


def curves_for(setting: list[str], dataset: str, split_seed: int, folds: int, epochs: int, bits: int,
               seed: int) -> list[dict]:
    cfg = build_config(None, [f"data.dataset={dataset}", f"data.split_seed={split_seed}", f"model.bits={bits}",
                              f"train.epochs={epochs}", f"train.patience={epochs}", "train.progress=false",
                              f"train.seed={seed}", *setting])
    prep = prepare(cfg)
    vals = validation_splits(prep.dataset.labels, prep.split, cfg.data.n_val_unseen, cfg.data.query_fraction,
                             cfg.data.split_seed, folds)
    out = []
    for k, val in enumerate(vals):
        _, res = fit_method(cfg, prep, val, epochs, resolve_device("cpu"), f"fold {k}", validate_on=val)
        out.append({"fold": k, "pseudo_unseen": [prep.dataset.class_names[c] for c in val.unseen],
                    "image": [h["val_image_map"] for h in res.history],
                    "class": [h["val_class_map"] for h in res.history],
                    "oracle": [h["val_oracle_map"] for h in res.history],
                    "distinct": [h["val_distinct_codes"] for h in res.history],
                    "seconds": res.seconds})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="animal-mnist")
    p.add_argument("--splits", default="0,1", help="test split seeds whose seen classes form the pools")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seeds", default="0", help="training seeds")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--setting", action="append", required=True,
                   help="NAME:key=value,key=value (empty after the colon = defaults)")
    p.add_argument("--out", default="transfer_experiments.jsonl")
    args = p.parse_args(argv)
    for item in args.setting:
        name, _, rest = item.partition(":")
        setting = [kv for kv in rest.split(",") if kv]
        t0 = time.perf_counter()
        runs = []
        for split in (int(s) for s in args.splits.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                for c in curves_for(setting, args.dataset, split, args.folds, args.epochs, args.bits, seed):
                    runs.append({"split": split, "seed": seed, **c})
        img = np.array([r["image"] for r in runs], dtype=float)
        cls = np.array([[np.nan if v is None else v for v in r["class"]] for r in runs], dtype=float)
        mean_img = img.mean(0)
        e_img = int(np.argmax(mean_img))
        mean_cls = cls.mean(0)
        both = mean_img + (np.nan_to_num(mean_cls) if np.isfinite(mean_cls).all() else 0)
        e_both = int(np.argmax(both))
        per_run_img = img[:, e_img]
        se = per_run_img.std(ddof=1) / np.sqrt(len(per_run_img)) if len(per_run_img) > 1 else 0.0
        oracle = np.array([r["oracle"] for r in runs], dtype=float).mean(0)
        distinct = np.array([r["distinct"] for r in runs], dtype=float).mean(0)
        line = (f"{name:28s} image {mean_img[e_img]:.4f}±{se:.4f} @ep{e_img + 1} (class {mean_cls[e_img]:.4f}, "
                f"oracle {oracle[e_img]:.4f}, distinct {distinct[e_img]:.0f}) | at ep{e_both + 1}: image "
                f"{mean_img[e_both]:.4f} class {mean_cls[e_both]:.4f} | {len(runs)} runs, "
                f"{time.perf_counter() - t0:.0f} s")
        print(line, flush=True)
        with open(args.out, "a") as fh:
            fh.write(json.dumps({"name": name, "setting": setting, "dataset": args.dataset, "bits": args.bits,
                                 "epochs": args.epochs, "summary": line, "runs": runs}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
