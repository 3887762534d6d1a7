"""A health run: train one method on one split with the dataset's tuned settings (and overrides), then
print its four protocols' mAP and its distinct codes, to see whether it collapses or starves.

    .venv/bin/python benchmarks/health_run.py METHOD SPLIT [section.key=value ...]
    .venv/bin/python benchmarks/health_run.py dpsh 0 model.code_layer=center

This reads the split's test queries: it judges health (a defect), never a setting; settings are
chosen on the validation protocol (`vsb2net tune`, benchmarks/transfer_experiments.py).
"""
import json
import sys
import time

import torch

from vsb2net.comparison.tuned import tuned_config
from vsb2net.evaluation.model_eval import evaluate_model
from vsb2net.pipeline import fit_method, prepare

torch.set_num_threads(1)
if len(sys.argv) < 3:
    sys.exit(__doc__)
method, split, *over = sys.argv[1:]
cfg = tuned_config(None, [f"model.method={method}", f"data.split_seed={split}", "train.progress=false", *over],
                   tuned="auto")
prep = prepare(cfg)
t = time.time()
model, res = fit_method(cfg, prep, prep.split, cfg.train.epochs, torch.device("cpu"), method)
m, _ = evaluate_model(model, prep.x, prep.dataset.labels, prep.split, prep.vectors, prep.dataset.class_names,
                      torch.device("cpu"), topk=(), curves=False, alignment=False, asymmetric=False)
out = {"method": method, "split": split, "over": over, "epochs": cfg.train.epochs, "s": round(time.time() - t)}
for k, v in m["protocols"].items():
    out[k] = None if v is None else round(v, 3)
for r in ("seen", "unseen"):
    out[r + "_distinct"] = m[r].get("distinct_codes")
print(json.dumps(out))
