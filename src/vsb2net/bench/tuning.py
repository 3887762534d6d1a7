"""``vsb2net tune``: a small documented grid per method, scored on the *validation protocol*
(pseudo-unseen seen classes of split 0); the best setting and its best epoch become the method's
defaults in a YAML file that is committed.  No unseen class and no test query takes part."""
from __future__ import annotations

import itertools
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import RunConfig, build_config, parse_overrides
from ..data.splits import ZeroShotSplit, validation_splits
from ..errors import VsbError
from ..io import write_text
from ..models import METHODS
from ..pipeline import Prepared, fit_method, prepare
from ..training import resolve_device
from .spec import load_tuned, overrides_of, variants

# The tuning grid of each method is its class's ``grid`` (validation protocol only), kept small to
# fit a 2-core machine: every method gets its epoch count and, where it has one, its main loss
# parameter over its paper's recommended range; the learning rate is the shared default for all.
# Ablations inherit the full model's choice, so each differs from it in exactly one term.


def _setting_config(method: str, params: dict[str, Any], fixed: dict[str, Any], *, dataset: str, bits: int,
                    max_epochs: int, progress: bool, folds: int, root: str | None,
                    max_per_class: int | None) -> RunConfig:
    """The run configuration of one grid setting, with the ``--set`` overrides on top."""
    values = {"data.dataset": dataset, "model.method": method, "model.bits": bits,
              "train.epochs": max_epochs, "train.progress": progress, **params}
    clash = sorted(set(fixed) & (set(values) | {"train.patience", "data.root", "data.max_per_class"}))
    if clash:
        raise VsbError(f"--set {', '.join(clash)}: tune sets these itself (they are its options or the "
                       f"{method} grid); use --bits, --max-epochs, --dataset, --data-root or "
                       "--max-per-class, or leave the grid to search them.")
    if folds > 1:  # whole curves: an average over folds needs every fold at every epoch
        values["train.patience"] = max_epochs
    if root:
        values["data.root"] = root
    if max_per_class:
        values["data.max_per_class"] = max_per_class
    return build_config(None, overrides_of({**values, **fixed}))


def _score_setting(cfg: RunConfig, prep: Prepared, vals: list[ZeroShotSplit], method: str, max_epochs: int,
                   device: torch.device) -> dict[str, Any]:
    """Train one setting on every validation fold: its best pseudo-unseen mAP (the mean over the
    folds when there are several), the epoch it was reached at, and the validation curves."""
    folds = len(vals)
    curves = []
    for k, val in enumerate(vals):
        _, res = fit_method(cfg, prep, val, max_epochs, device,
                            f"tune {method}" + (f" fold {k + 1}/{folds}" if folds > 1 else ""), validate_on=val)
        curves.append([h["val_map"] for h in res.history])  # every epoch was validated (validate_on)
    if folds == 1:
        return {"val_map": res.best_score, "best_epoch": res.best_epoch, "history": curves[0]}
    mean = np.mean(np.array(curves, dtype=np.float64), axis=0)
    best = int(np.argmax(mean))
    return {"val_map": float(mean[best]), "best_epoch": best + 1, "history": mean.tolist(),
            "folds": [[float(v) for v in c] for c in curves]}


def _tuned_text(commands: list[str], dataset: str, bits: int, max_epochs: int, prep: Prepared,
                vals: list[ZeroShotSplit], split_seed: int, chosen: dict, results: list[dict]) -> str:
    """The tuned file: the commands that made it as comments, then the choices and the grid."""
    folds = len(vals)
    names = prep.dataset.class_names
    doc = {
        "commands": commands,
        "dataset": dataset,
        "selection": (f"validation protocol of split 0: pseudo-unseen classes "
                      f"{' / '.join(str([names[c] for c in v.unseen]) for v in vals)} "
                      f"({'mean over ' + str(folds) + ' folds' if folds > 1 else 'one fold'}) "
                      f"held out of the seen classes {[names[c] for c in prep.split.seen]}; {bits} bits; "
                      f"best epoch of at most {max_epochs}. No unseen class or test query was used."),
        "val_folds": folds,
        # every class the tuning trained or validated on: a test split whose unseen classes are
        # among them was not strictly unseen to the tuning (RESULTS.md says which splits)
        "tuning_classes": sorted(names[c] for c in prep.split.seen),
        "tuning_splits": [int(split_seed)],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "methods": chosen,
        "grid": results,
    }
    return ("# Chosen on the validation protocol by:\n" + "".join(f"#   {c}\n" for c in commands)
            + yaml.safe_dump(doc, sort_keys=False))


def run_tune(dataset: str, methods: list[str], bits: int, max_per_class: int | None, max_epochs: int,
             out: str, command: str, root: str | None = None, progress: bool = True, log=print,
             folds: int = 1, overrides: list[str] | None = None) -> Path:
    """Grid-search each method on the validation protocol; the file is rewritten after every
    method, so an interrupted tuning keeps what it finished.

    With ``folds`` > 1 every setting is trained on each of ``folds`` validation protocols (other
    pseudo-unseen classes each) for the full ``max_epochs``, and the epoch and setting with the
    best pseudo-unseen mAP averaged over the folds win.

    ``overrides`` (``section.key=value``) hold for every setting and are saved with each method's
    choice, so that the benchmark trains its cells the way they were tuned (e.g. another backbone).
    """
    fixed = parse_overrides(overrides or [])
    if folds < 1:
        raise VsbError(f"--val-folds {folds}: give at least 1.")
    known = variants()
    base_methods = list(dict.fromkeys(known[m][0] for m in methods if METHODS.get(known[m][0]).tunable))
    device = resolve_device("auto")
    prep = None
    # re-tuning some methods keeps the others' earlier choices (and their grid rows)
    previous = load_tuned(out) if Path(out).is_file() else {}
    chosen = {m: v for m, v in previous.get("methods", {}).items() if m not in base_methods}
    results = [r for r in previous.get("grid", []) if r["method"] not in base_methods]
    commands = [c for c in previous.get("commands", []) if c != command] + [command]
    for method in base_methods:
        grid = METHODS.get(method).grid
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, combo))
            cfg = _setting_config(method, params, fixed, dataset=dataset, bits=bits, max_epochs=max_epochs,
                                  progress=progress, folds=folds, root=root, max_per_class=max_per_class)
            if prep is None:
                prep = prepare(cfg)
                vals = validation_splits(prep.dataset.labels, prep.split, cfg.data.n_val_unseen,
                                         cfg.data.query_fraction, cfg.data.split_seed, folds)
            row = _score_setting(cfg, prep, vals, method, max_epochs, device)
            results.append({"method": method, "params": params, **row})
            log(f"{method} {params}: best pseudo-unseen mAP {row['val_map']:.4f} at epoch {row['best_epoch']}"
                + (f" (mean over {folds} folds)" if folds > 1 else ""))
        best = max((r for r in results if r["method"] == method), key=lambda r: r["val_map"])
        chosen[method] = {**fixed, **best["params"], "train.epochs": best["best_epoch"]}
        assert prep is not None, "a grid has at least one setting (the empty product has one)"
        write_text(out, _tuned_text(commands, dataset, bits, max_epochs, prep, vals, cfg.data.split_seed,
                                    chosen, results))
    return Path(out)
