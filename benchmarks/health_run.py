"""A health run: train one method on one split with a tuned file's settings (and overrides), for its
tuned epoch count or longer, then print its four protocols' mAP, its distinct codes and its
backbone's dead units and feature rank, to see whether it collapses or starves.

    .venv/bin/python benchmarks/health_run.py METHOD SPLIT [section.key=value ...] [--tuned FILE] [--epochs N]
    .venv/bin/python benchmarks/health_run.py dpsh 0 model.code_layer=linear
    .venv/bin/python benchmarks/health_run.py dpsh 0 --tuned src/vsb2net/comparison/tuned/animal-mnist.yaml \
        data.unseen_split=balanced --epochs 15

``--epochs`` trains that many epochs whatever the tuning chose, the issue's "trained to convergence":
a method whose seen@seen stays far below GreedyHash's there starves; one that reaches it was only
stopped early by its tuned epoch count. This reads the split's test queries: it judges health (a
defect), never a setting; settings are chosen on the validation protocol (`vsb2net tune`,
benchmarks/transfer_experiments.py).
"""
import argparse
import json
import time

import torch

from vsb2net.comparison.tuned import tuned_config
from vsb2net.evaluation.health import feature_health
from vsb2net.evaluation.model_eval import evaluate_model
from vsb2net.pipeline import fit_method, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method")
    ap.add_argument("split", type=int)
    ap.add_argument("overrides", nargs="*", help="section.key=value settings on top of the tuned file")
    ap.add_argument("--tuned", default="auto", help="tuned file (default: the dataset's committed one)")
    ap.add_argument("--epochs", type=int, help="train this many epochs instead of the tuned count")
    args = ap.parse_intermixed_args()  # overrides may come after the options
    torch.set_num_threads(1)
    over = [f"model.method={args.method}", f"data.split_seed={args.split}", "train.progress=false",
            *args.overrides, *([f"train.epochs={args.epochs}"] if args.epochs else [])]
    cfg = tuned_config(None, over, tuned=args.tuned)
    prep = prepare(cfg)
    device = torch.device("cpu")
    t = time.time()
    model, _ = fit_method(cfg, prep, prep.split, cfg.train.epochs, device, args.method)
    m, _ = evaluate_model(model, prep.x, prep.dataset.labels, prep.split, prep.vectors, prep.dataset.class_names,
                          device, topk=(), curves=False, alignment=False, asymmetric=False)
    out = {"method": args.method, "split": args.split, "over": args.overrides, "epochs": cfg.train.epochs,
           "s": round(time.time() - t)}
    for k, v in m["protocols"].items():
        out[k] = None if v is None else round(v, 3)
    for r in ("seen", "unseen"):
        out[r + "_distinct"] = m[r].get("distinct_codes")
    health = feature_health(model, prep.x[prep.split.train], device)
    out.update({k: None if v is None else round(v, 3) for k, v in health.items()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
