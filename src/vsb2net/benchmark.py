"""Side-by-side benchmark and the validation-only tuning that feeds it.

``vsb2net tune``: a small documented grid per method, scored on the *validation protocol*
(pseudo-unseen seen classes of split 0); the best setting and its best epoch become the method's
defaults in a YAML file that is committed.  No unseen class and no test query takes part.

``vsb2net benchmark``: methods x code lengths x seeded unseen splits, each cell trained with the
tuned settings for a fixed number of epochs and evaluated on the held-out unseen-class (and
seen-class) queries.  Every finished cell is a JSON file, so an interrupted benchmark resumes where
it stopped.  Results: a CSV of every cell, Markdown tables of mean +- std, a plot of mAP against bits.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .evaluation import evaluate_model, summary
from . import __version__
from .config import RunConfig, build_config
from .errors import VsbError
from .io import atomic_path, write_json, write_text
from .models import METHODS
from .models.feature_hashing import FeatureHashing
from .pipeline import Prepared, _fit, class_context, new_model, prepare
from .data.splits import class_targets, validation_splits
from .training import resolve_device

# variant name -> (registered method, config overrides).  Ablations switch one VSB2-Net term off.
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "vsb2net": ("vsb2net", {}),
    "vsb2net-no-rec": ("vsb2net", {"model.w_rec": 0}),
    "vsb2net-no-rel": ("vsb2net", {"model.w_rel": 0}),
    "vsb2net-no-dis": ("vsb2net", {"model.w_dis": 0}),
    "csq": ("csq", {}),
    "sitnet": ("sitnet", {}),
    "tsk": ("tsk", {}),
    "itq": ("itq", {}),
    "lsh": ("lsh", {}),
    "random": ("random", {}),
}
DEFAULT_METHODS = list(VARIANTS)

# The tuning grid (validation protocol only).  Ablations inherit the full model's choice, so each
# differs from it in exactly one term.
# Kept small to fit a 2-core machine: every method gets its epoch count and, where it has one,
# its main loss parameter; the learning rate is the shared default for all.
GRID: dict[str, dict[str, list]] = {
    # the reconstruction weight; alpha stays at 30, which won over 10 on the three-fold search of
    # both datasets, w_rel and w_dis at 0.1, which the earlier searches preferred to 1, and no
    # semantic smoothing, which lost every time (git log of configs/tuned/); the other levers
    # (linear semantic branch, input reconstruction, bit balance, discrepancy margin, class-vector
    # source) were judged by benchmarks/transfer_experiments.py (docs/RESULTS.md, "Levers tried")
    "vsb2net": {"model.alpha": [30.0], "model.w_rec": [3.0, 10.0]},
    "csq": {"model.w_q": [0.01, 0.1]},
    "sitnet": {"model.alpha": [10.0, 30.0]},
    "tsk": {},
    "itq": {},
    "lsh": {},
}


def _overrides(values: dict[str, object]) -> list[str]:
    return [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in values.items()]


def _tuned_for(tuned: dict, variant: str) -> dict:
    methods = tuned.get("methods", {})
    if variant in methods:
        return dict(methods[variant])
    base = VARIANTS[variant][0]
    return dict(methods.get(base, {}))


def load_tuned(path: str | Path | None) -> dict:
    if not path:
        return {}
    path = Path(path)
    if not path.is_file():
        raise VsbError(f"tuned-defaults file {path} does not exist; create it with `vsb2net tune` or omit --tuned.")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("methods", {}), dict):
        raise VsbError(f"tuned-defaults file {path} has no 'methods' mapping; regenerate it with `vsb2net tune`.")
    return data


@dataclass
class BenchmarkSpec:
    dataset: str = "animal-mnist"
    root: str | None = None
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    bits: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    splits: int = 5
    max_per_class: int | None = None
    tuned: str | None = None
    out: str = ""
    overrides: list[str] = field(default_factory=list)

    def check(self) -> "BenchmarkSpec":
        unknown = [m for m in self.methods if m not in VARIANTS]
        if unknown:
            raise VsbError(f"unknown method(s) {unknown}; known: {', '.join(VARIANTS)}.")
        if self.splits < 1:
            raise VsbError("--splits must be at least 1.")
        for b in self.bits:
            if b <= 0 or b % 8:
                raise VsbError(f"--bits {b}: code lengths must be positive multiples of 8.")
        self.out = self.out or f"benchmarks/results/{self.dataset}"
        return self


def cell_config(spec: BenchmarkSpec, tuned: dict, variant: str, bits: int, split: int) -> RunConfig:
    method, variant_overrides = VARIANTS[variant]
    values = {"data.dataset": spec.dataset, "data.split_seed": split, "model.method": method,
              "model.bits": bits, "train.select_epochs": False, "train.progress": False}
    if spec.root:
        values["data.root"] = spec.root
    if spec.max_per_class:
        values["data.max_per_class"] = spec.max_per_class
    values.update(_tuned_for(tuned, variant))
    values.update(variant_overrides)
    return build_config(None, _overrides(values) + list(spec.overrides))


def _cell_path(out: Path, variant: str, bits: int, split: int) -> Path:
    return out / "cells" / f"{variant}_{bits}bits_split{split}.json"


#: what a cell file holds and how it was evaluated; raising it recomputes every cell
CELL_FORMAT = 2
#: config keys that say how a cell is computed, not what: left out of the cell's hash
_NOT_HASHED = {"train.progress", "train.device", "train.threads"}


def config_hash(cfg: RunConfig) -> str:
    """sha256 of the full resolved configuration (and the cell format) of a cell."""
    flat = {f"{section}.{k}": v for section, values in cfg.to_dict().items() if isinstance(values, dict)
            for k, v in values.items()}
    flat = {k: v for k, v in flat.items() if k not in _NOT_HASHED}
    text = json.dumps({"cell_format": CELL_FORMAT, "config": flat}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def git_commit() -> str | None:
    """The commit of the source tree, when it is a git checkout (with '+dirty' for local changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cell_is_current(out: Path, spec: BenchmarkSpec, tuned: dict, variant: str, bits: int, split: int) -> bool:
    """The cell file exists and its configuration hash is the one the cell gets now.

    The hash covers the whole resolved configuration (every default included) and the cell
    format, so a changed default, a re-tuned setting or a new evaluation recomputes the cell.
    """
    path = _cell_path(out, variant, bits, split)
    if not path.exists():
        return False
    try:
        stored = json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError):
        return False
    return stored == config_hash(cell_config(spec, tuned, variant, bits, split))


class _ClassifierCache:
    """LSH, ITQ and TSK share their first stage (the same seeded classifier): train it once per split."""

    def __init__(self):
        self.states: dict[tuple, dict] = {}

    @staticmethod
    def key(cfg: RunConfig) -> tuple:
        t, m = cfg.train, cfg.model
        return (cfg.data.split_seed, t.epochs, t.lr, t.weight_decay, t.batch_size, t.seed, m.backbone, m.feature_dim)


def fit_cell(cfg: RunConfig, prep: Prepared, device: torch.device, cache: _ClassifierCache):
    cls = METHODS.get(cfg.model.method)
    if isinstance(cls, type) and issubclass(cls, FeatureHashing):
        key = cache.key(cfg)
        if key in cache.states:
            ctx = class_context(prep.vectors, prep.split.seen, prep.split.unseen, cfg, device)
            model = new_model(cfg, prep)
            model.set_class_reference(ctx.vectors[: ctx.n_train].cpu())
            model.load_state_dict({**model.state_dict(), **cache.states[key]})
            model.to(device)
            y = torch.from_numpy(class_targets(prep.dataset.labels, prep.split.train, prep.split.seen))
            model.post_fit(prep.x[prep.split.train], y, ctx, device)
            return model
        model, _ = _fit(cfg, prep, prep.split, cfg.train.epochs, device, cfg.model.method)
        cache.states[key] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                             if k.startswith(("backbone.", "head."))}
        return model
    model, _ = _fit(cfg, prep, prep.split, cfg.train.epochs, device, cfg.model.method)
    return model


def evaluate_cell(model, prep: Prepared, cfg: RunConfig, device: torch.device) -> dict:
    """The run's evaluation (vsb2net.evaluation), without curves and per-class detail."""
    metrics, _ = evaluate_model(model, prep.x, prep.dataset.labels, prep.split, prep.vectors,
                                prep.dataset.class_names, device, topk=tuple(cfg.eval.topk), curves=False)
    out = summary(metrics)
    out["semantics"]["source"] = prep.vectors_source
    return out


def _check_splits_differ(spec: BenchmarkSpec, cfg: RunConfig, prep: Prepared) -> None:
    """A dataset's proposed split is one split: --splits N would compute it N times and call it a std."""
    fixed = bool(cfg.data.unseen) or (cfg.data.unseen_split in ("auto", "proposed") and prep.dataset.proposed_unseen is not None)
    if fixed and spec.splits > 1:
        why = "data.unseen names the unseen classes" if cfg.data.unseen else \
            f"dataset {prep.dataset.name!r} has a proposed split, used by data.unseen_split={cfg.data.unseen_split}"
        raise VsbError(f"--splits {spec.splits}: every split would be the same ({why}). Use --splits 1, or "
                       "--set data.unseen_split=random (with data.n_unseen) for seeded random splits.")


class _CellRunner:
    """Computes cells and writes their files; keeps one split's data and the shared classifiers."""

    def __init__(self, spec: BenchmarkSpec, tuned: dict):
        self.spec, self.tuned, self.out = spec, tuned, Path(spec.out)
        self.device = resolve_device("auto")
        self.cache = _ClassifierCache()
        self.prep: dict[int, Prepared] = {}
        self.commit = git_commit()

    def run(self, split: int, variant: str, bits: int) -> float:
        cfg = cell_config(self.spec, self.tuned, variant, bits, split)
        if split not in self.prep:
            self.prep = {split: prepare(cfg)}  # one split in memory at a time
            _check_splits_differ(self.spec, cfg, self.prep[split])
        prep, device = self.prep[split], self.device
        t0 = time.perf_counter()
        model = fit_cell(cfg, prep, device, self.cache)
        result = evaluate_cell(model, prep, cfg, device)
        names = prep.dataset.class_names
        seconds = time.perf_counter() - t0
        result.update({"variant": variant, "method": cfg.model.method, "bits": bits, "split": split,
                       "unseen_classes": [names[c] for c in prep.split.unseen],
                       "sizes": prep.split.sizes(), "epochs": cfg.train.epochs,
                       "seconds": seconds, "config": cfg.to_dict(), "config_hash": config_hash(cfg),
                       "vsb2net_version": __version__, "git_commit": self.commit,
                       "torch": torch.__version__, "python": platform.python_version(),
                       "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                       f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"})
        write_json(_cell_path(self.out, variant, bits, split), result)
        return seconds


_WORKER: _CellRunner | None = None


def _init_worker(spec: BenchmarkSpec, tuned: dict, threads: int) -> None:
    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = _CellRunner(spec, tuned)


def _run_group(cells: list[tuple[int, str, int]]) -> list[tuple[tuple[int, str, int], float]]:
    return [(c, _WORKER.run(*c)) for c in cells]


def _groups(todo: list[tuple[int, str, int]]) -> list[list[tuple[int, str, int]]]:
    """Work units for parallel workers: the cells of one split that share a trained classifier
    (LSH, ITQ, TSK) stay together, every other cell is a unit of its own."""
    groups: dict[tuple, list] = {}
    for split, variant, bits in todo:
        cls = METHODS.get(VARIANTS[variant][0])
        shared = isinstance(cls, type) and issubclass(cls, FeatureHashing)
        key = (split, "classifier") if shared else (split, variant, bits)
        groups.setdefault(key, []).append((split, variant, bits))
    return list(groups.values())


def run_benchmark(spec: BenchmarkSpec, progress: bool = True, log=print, jobs: int = 1) -> Path:
    """Compute the missing (or outdated) cells, then write the tables and the plot.

    ``jobs`` > 1 runs cells in that many worker processes, the CPU threads split between them
    (a cell's numbers may then differ from a serial run's in the last digits: float sums in
    another thread order).
    """
    spec.check()
    if jobs < 1:
        raise VsbError(f"--jobs {jobs}: give at least 1.")
    tuned = load_tuned(spec.tuned)
    out = Path(spec.out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    write_json(out / "spec.json", {**spec.__dict__, "tuned_methods": tuned.get("methods", {})})
    cells = list(itertools.product(range(spec.splits), spec.methods, spec.bits))
    todo = [c for c in cells if not cell_is_current(out, spec, tuned, c[1], c[2], c[0])]
    changed = sum(_cell_path(out, v, b, s).exists() for s, v, b in todo)
    log(f"benchmark {spec.dataset}: {len(cells)} cells, {len(cells) - len(todo)} already done"
        + (f", {changed} to recompute because their settings changed" if changed else "") + f" -> {out}")
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="benchmark", disable=None if progress else True, dynamic_ncols=True)
    if jobs == 1 or len(todo) <= 1:
        runner = _CellRunner(spec, tuned)
        for split, variant, bits in todo:
            bar.set_description(f"{variant} {bits} bits split {split}")
            runner.run(split, variant, bits)
            bar.update(1)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, torch.get_num_threads() // jobs)
        ctx = multiprocessing.get_context("spawn")  # no forked copies of torch's thread pools
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(spec, tuned, threads)) as pool:
            futures = [pool.submit(_run_group, g) for g in _groups(todo)]
            for fut in as_completed(futures):
                for (split, variant, bits), _ in fut.result():
                    bar.set_description(f"{variant} {bits} bits split {split}")
                    bar.update(1)
    bar.close()
    if todo:
        wall = time.perf_counter() - t0
        log(f"computed {len(todo)} cell(s) in {wall:.0f} s wall time ({jobs} job(s))")
        # the record of wall times: what a whole table costs is only known from a run that computed it all
        history = json.loads((out / "runs.json").read_text()) if (out / "runs.json").is_file() else []
        history.append({"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "cells": len(todo), "of": len(cells),
                        "wall_seconds": round(wall, 1), "jobs": jobs, "cpu_count": os.cpu_count(),
                        "machine": platform.machine()})
        write_json(out / "runs.json", history)
    write_tables(out, spec)
    return out


def collect_cells(out: Path, spec: BenchmarkSpec) -> list[dict]:
    """Cells of the splits that every method x bits has finished: a mean over different splits
    for different methods would not compare like with like."""
    tuned = load_tuned(spec.tuned)
    rows = []
    for split in range(spec.splits):
        combos = list(itertools.product(spec.methods, spec.bits))
        if all(cell_is_current(out, spec, tuned, v, b, split) for v, b in combos):
            rows.extend(json.loads(_cell_path(out, v, b, split).read_text()) for v, b in combos)
    return rows


def aggregate(rows: list[dict], part: str = "unseen", key: str = "map") -> dict[tuple[str, int], tuple[float, float, int]]:
    """(method, bits) -> (mean, sample std (ddof 1; 0 for one split), splits) of ``r[part][key]``.

    Cells without the value (a method without a semantic branch has no class-name mAP; cells
    computed before a metric existed) are left out, so a method shows '-' rather than a mean over
    fewer splits than its neighbours.
    """
    groups: dict[tuple[str, int], list[float]] = {}
    missing: set[tuple[str, int]] = set()
    for r in rows:
        value = r.get(part, {}).get(key)
        if value is None:
            missing.add((r["variant"], r["bits"]))
            continue
        groups.setdefault((r["variant"], r["bits"]), []).append(value)
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for k, v in groups.items() if k not in missing}


def markdown_table(agg: dict, methods: list[str], bits: list[int], bold_best: bool = True) -> str:
    lines = ["| method | " + " | ".join(f"{b} bits" for b in bits) + " |", "|---|" + "---:|" * len(bits)]
    best = {b: max((agg[(m, b)][0] for m in methods if (m, b) in agg), default=None) for b in bits}
    for m in methods:
        cells = []
        for b in bits:
            if (m, b) not in agg:
                cells.append("-")
                continue
            mean, std, n = agg[(m, b)]
            text = f"{mean:.3f} ± {std:.3f}"
            cells.append(f"**{text}**" if bold_best and mean == best[b] else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(out: Path, spec: BenchmarkSpec) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = collect_cells(out, spec)
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    unseen_cols = ("map", "map_optimistic", "map_pessimistic", "precision_radius2", "map_unseen_db",
                   "class_query_map", "class_query_chance", "zero_shot_accuracy", "zero_shot_chance",
                   "oracle_class_map", "distinct_codes", "nearest_tie_group")
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
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for m in spec.methods:
        pts = [(b, *unseen[(m, b)][:2]) for b in spec.bits if (m, b) in unseen]
        if pts:
            b, mu, sd = zip(*pts)
            ax.errorbar(b, mu, yerr=sd, marker="o", capsize=3, label=m,
                        linestyle="-" if not m.startswith("vsb2net-") else ":")
    ax.set(xlabel="bits", ylabel="unseen-class mAP@all (tie-aware)", title=f"{spec.dataset}: mAP vs code length",
           xticks=spec.bits)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    with atomic_path(out / "map_vs_bits.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# tuning on the validation protocol

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
    fixed = _parse_sets(overrides or [])
    if folds < 1:
        raise VsbError(f"--val-folds {folds}: give at least 1.")
    base_methods = sorted({VARIANTS[m][0] for m in methods if VARIANTS[m][0] in GRID},
                          key=list(GRID).index)
    device = resolve_device("auto")
    prep = val = None
    # re-tuning some methods keeps the others' earlier choices (and their grid rows)
    previous = load_tuned(out) if Path(out).is_file() else {}
    chosen = {m: v for m, v in previous.get("methods", {}).items() if m not in base_methods}
    results = [r for r in previous.get("grid", []) if r["method"] not in base_methods]
    commands = [c for c in previous.get("commands", []) if c != command] + [command]
    for method in base_methods:
        keys = list(GRID[method])
        for combo in itertools.product(*(GRID[method][k] for k in keys)):
            params = dict(zip(keys, combo))
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
            cfg = build_config(None, _overrides({**values, **fixed}))
            if prep is None:
                prep = prepare(cfg)
                vals = validation_splits(prep.dataset.labels, prep.split, cfg.data.n_val_unseen,
                                         cfg.data.query_fraction, cfg.data.split_seed, folds)
            curves = []
            for k, val in enumerate(vals):
                _, res = _fit(cfg, prep, val, max_epochs, device,
                              f"tune {method}" + (f" fold {k + 1}/{folds}" if folds > 1 else ""), validate_on=val)
                curves.append([h.get("val_map") for h in res.history])
            if folds == 1:
                row = {"val_map": res.best_score, "best_epoch": res.best_epoch, "history": curves[0]}
            else:
                mean = np.mean(np.array(curves, dtype=np.float64), axis=0)
                best = int(np.argmax(mean))
                row = {"val_map": float(mean[best]), "best_epoch": best + 1, "history": mean.tolist(),
                       "folds": [[float(v) for v in c] for c in curves]}
            results.append({"method": method, "params": params, **row})
            log(f"{method} {params}: best pseudo-unseen mAP {row['val_map']:.4f} at epoch {row['best_epoch']}"
                + (f" (mean over {folds} folds)" if folds > 1 else ""))
        best = max((r for r in results if r["method"] == method), key=lambda r: r["val_map"])
        chosen[method] = {**fixed, **best["params"], "train.epochs": best["best_epoch"]}
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
            "tuning_splits": [int(cfg.data.split_seed)],
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "methods": chosen,
            "grid": results,
        }
        text = ("# Chosen on the validation protocol by:\n" + "".join(f"#   {c}\n" for c in commands)
                + yaml.safe_dump(doc, sort_keys=False))
        write_text(out, text)
    return Path(out)


# ---------------------------------------------------------------------------------------------
# command line

def _common_args(p) -> None:
    from .benchmark_cli import _common_args as add

    add(p)


def register(sub, add_config_flags) -> None:
    """The parsers live in :mod:`vsb2net.benchmark_cli`, which imports no torch (fast ``--help``)."""
    from .benchmark_cli import register as add

    add(sub, add_config_flags)


def _parse_sets(items: list[str]) -> dict[str, str]:
    """``section.key=value`` strings -> dict; the values are checked when a config is built from them."""
    from .config import parse_overrides

    return parse_overrides(items)


def _split_list(text: str, cast=str) -> list:
    try:
        return [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise VsbError(f"could not read the list {text!r}; give comma-separated values.") from None


def _cmd_benchmark(args) -> int:
    methods = _split_list(args.methods) if args.methods else list(DEFAULT_METHODS)
    _parse_sets(args.set)  # a malformed --set fails now, not when its first cell is built
    spec = BenchmarkSpec(dataset=args.dataset, root=args.data_root, methods=methods,
                         bits=_split_list(args.bits, int), splits=args.splits, max_per_class=args.max_per_class,
                         tuned=args.tuned, out=args.out or "", overrides=args.set)
    out = run_benchmark(spec, progress=not args.no_progress, jobs=args.jobs)
    print((out / "table.md").read_text())
    print(f"results: {out}")
    return 0


def _cmd_tune(args) -> int:
    import shlex
    import sys

    methods = _split_list(args.methods) if args.methods else list(DEFAULT_METHODS)
    unknown = [m for m in methods if m not in VARIANTS]
    if unknown:
        raise VsbError(f"unknown method(s) {unknown}; known: {', '.join(VARIANTS)}.")
    command = "vsb2net " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    out = run_tune(args.dataset, methods, args.bits, args.max_per_class, args.max_epochs, args.out, command,
                   root=args.data_root, progress=not args.no_progress, folds=args.val_folds, overrides=args.set)
    print(f"tuned defaults: {out}")
    return 0
