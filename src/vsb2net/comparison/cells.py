"""Computing benchmark cells: one (method, bits, split) trained and evaluated, written as a JSON
file keyed by the hash of its full configuration."""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import cast

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import RunConfig, hashed_settings, saved_config_from_dict
from ..errors import VsbError
from ..evaluation.health import model_health
from ..evaluation.model_eval import cpu_name, evaluate_model, run_meta, semantic_alignment
from ..evaluation.record import Cell, CellMetrics, summary
from ..io import write_json
from ..models import METHODS
from ..models import variants as all_variants
from ..pipeline import Prepared, fit_method, prepare
from ..training import resolve_device
from .spec import BenchmarkSpec, cell_config, cell_path, load_tuned
from .tables import write_tables
from .workers import worker_pool

#: what a cell file holds and how it was evaluated; raising it recomputes every cell.  A new metric
#: alone does not raise it: cells without the metric show '-' in its table until recomputed
CELL_FORMAT = 2
#: config keys that say how a cell is computed, not what: left out of the cell's hash
_NOT_HASHED = {"train.progress", "train.device", "train.threads", "data.feature_cache"}


def config_hash(cfg: RunConfig) -> str:
    """sha256 of the full resolved configuration (and the cell format) of a cell: the shared
    settings and its method's own parameters (:func:`vsb2net.config.hashed_settings`), less how
    it is computed (threads, device, progress)."""
    flat = {k: v for k, v in hashed_settings(cfg).items() if k not in _NOT_HASHED}
    text = json.dumps({"cell_format": CELL_FORMAT, "config": flat}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def settings_hash(config: dict) -> str:
    """:func:`config_hash` of a configuration as a cell file stores it (``RunConfig.to_dict``)."""
    return config_hash(saved_config_from_dict(config))


#: what a benchmark run writes itself (cells, tables, spec.json, RESULTS.md, README's block): changes
#: there do not make the source tree dirty
OUTPUTS = ("benchmarks/results", "docs", "README.md", "src/vsb2net/comparison/reference.json")
#: the checkout this package lives in (when it is one)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def git_commit(root: Path = SOURCE_ROOT) -> str | None:
    """The commit of the source tree, when it is a git checkout, with '+dirty' when files other
    than the benchmarks' own outputs (:data:`OUTPUTS`) differ from it: a benchmark rewrites its
    spec.json before its first cell, which flagged every cell of a clean checkout."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){p}" for p in OUTPUTS)],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cell_is_current(out: Path, spec: BenchmarkSpec, tuned: dict, variant: str, bits: int, split: int) -> bool:
    """The cell file exists and its configuration hash is the one the cell gets now.

    The hash covers the whole resolved configuration (every default included) and the cell
    format, so a changed default, a re-tuned setting or a new evaluation recomputes the cell.
    """
    path = cell_path(out, variant, bits, split)
    if not path.exists():
        return False
    try:
        stored = json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError):
        return False
    return stored == config_hash(cell_config(spec, tuned, variant, bits, split))


class _StageCache:
    """Methods that declare the same ``shared_stage`` (LSH, ITQ and TSK: the same seeded
    classifier) train it once per split and setting."""

    def __init__(self) -> None:
        self.states: dict[tuple, dict] = {}

    @staticmethod
    def key(cfg: RunConfig) -> tuple | None:
        stage = METHODS.get(cfg.model.method).shared_stage
        if stage is None:
            return None
        t, m = cfg.train, cfg.model
        return (stage, cfg.data.split_seed, t.epochs, t.lr, t.weight_decay, t.batch_size, t.seed, m.backbone,
                m.feature_dim)


def fit_cell(cfg: RunConfig, prep: Prepared, device: torch.device, cache: _StageCache):
    key = cache.key(cfg)
    model, _ = fit_method(cfg, prep, prep.split, cfg.train.epochs, device, cfg.model.method,
                          stage=cache.states.get(key) if key is not None else None)
    if key is not None and key not in cache.states:
        cache.states[key] = model.stage_state()
    return model


def split_alignment(prep: Prepared) -> float | None:
    """:func:`semantic_alignment` of a split: it reads the inputs and class vectors, not the model, so
    the cells of one split share one computation (it was a seventh of a one-epoch cell's time)."""
    return semantic_alignment(prep.x, prep.dataset.labels, prep.split.train, list(prep.split.seen), prep.vectors)


def evaluate_cell(model, prep: Prepared, cfg: RunConfig, device: torch.device, alignment: float | None
                  ) -> CellMetrics:
    """The run's evaluation (vsb2net.evaluation.model_eval), without curves and per-class detail, and the
    model's health (:mod:`vsb2net.evaluation.health`); ``alignment`` is the split's
    (:func:`split_alignment`)."""
    metrics, enc = evaluate_model(model, prep.x, prep.dataset.labels, prep.split, prep.vectors,
                                  prep.dataset.class_names, device, topk=tuple(cfg.eval.topk), curves=False,
                                  alignment=False)
    out = summary(metrics)
    out["semantics"]["alignment"] = alignment
    out["semantics"]["source"] = prep.vectors_source
    out["health"] = model_health(model, prep.x[prep.split.train], enc.packed["database"], cfg.model.bits, device)
    return out


def _check_splits_differ(spec: BenchmarkSpec, cfg: RunConfig, prep: Prepared) -> None:
    """A dataset's proposed split is one split: --splits N would compute it N times and call it a std."""
    fixed = bool(cfg.data.unseen) or (cfg.data.unseen_split in ("auto", "proposed")
                                      and prep.dataset.proposed_unseen is not None)
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
        self.cache = _StageCache()
        self.prep: dict[int, Prepared] = {}
        self.alignment: float | None = None  # the split in self.prep's
        self.commit = git_commit()
        self.meta = run_meta()

    def run(self, split: int, variant: str, bits: int) -> float:
        cfg = cell_config(self.spec, self.tuned, variant, bits, split)
        if split not in self.prep:
            self.prep = {split: prepare(cfg)}  # one split in memory at a time
            self.alignment = split_alignment(self.prep[split])
            _check_splits_differ(self.spec, cfg, self.prep[split])
        prep, device = self.prep[split], self.device
        t0 = time.perf_counter()
        model = fit_cell(cfg, prep, device, self.cache)
        result = evaluate_cell(model, prep, cfg, device, self.alignment)
        names = prep.dataset.class_names
        seconds = time.perf_counter() - t0
        meta = self.meta
        cell: Cell = {**result, "variant": variant, "method": cfg.model.method, "bits": bits, "split": split,
                      "unseen_classes": [names[c] for c in prep.split.unseen],
                      "sizes": prep.split.sizes(), "epochs": cfg.train.epochs,
                      "seconds": seconds, "config": cfg.to_dict(), "config_hash": config_hash(cfg),
                      "vsb2net_version": meta["vsb2net_version"], "git_commit": self.commit,
                      "torch": meta["torch"], "python": meta["python"], "numpy": meta["numpy"], "cpu": meta["cpu"],
                      "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
                      f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"}
        write_json(cell_path(self.out, variant, bits, split), cell)
        return seconds


_WORKER: _CellRunner | None = None


def _init_worker(spec: BenchmarkSpec, tuned: dict) -> None:
    global _WORKER
    _WORKER = _CellRunner(spec, tuned)


def _run_group(cells: list[tuple[int, str, int]]) -> list[tuple[tuple[int, str, int], float]]:
    worker = _WORKER
    assert worker is not None, "_init_worker runs first in every pool process"
    return [(c, worker.run(*c)) for c in cells]


def _groups(todo: list[tuple[int, str, int]]) -> list[list[tuple[int, str, int]]]:
    """Work units for parallel workers: the cells of one split whose methods share a first stage
    (``shared_stage``: LSH, ITQ, TSK) stay together, every other cell is a unit of its own."""
    groups: dict[tuple, list] = {}
    variants = all_variants()
    for split, variant, bits in todo:
        stage = METHODS.get(variants[variant][0]).shared_stage
        key = (split, stage) if stage is not None else (split, variant, bits)
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
    changed = sum(cell_path(out, v, b, s).exists() for s, v, b in todo)
    log(f"benchmark {spec.dataset}: {len(cells)} cells, {len(cells) - len(todo)} already done"
        + (f", {changed} to recompute because their settings changed" if changed else "") + f" -> {out}")
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="benchmark", disable=None if progress else True, dynamic_ncols=True)
    finished, computed = False, 0
    try:
        if jobs == 1 or len(todo) <= 1:
            runner = _CellRunner(spec, tuned)
            for split, variant, bits in todo:
                bar.set_description(f"{variant} {bits} bits split {split}")
                runner.run(split, variant, bits)
                bar.update(1)
                computed += 1
        else:
            from concurrent.futures import as_completed

            with worker_pool(jobs, _init_worker, (spec, tuned)) as pool:
                futures = [pool.submit(_run_group, g) for g in _groups(todo)]
                for fut in as_completed(futures):
                    for (split, variant, bits), _ in fut.result():
                        bar.set_description(f"{variant} {bits} bits split {split}")
                        bar.update(1)
                        computed += 1
        finished = True
    finally:
        bar.close()
        if computed:  # an interrupted run's wall time too: the cells it kept cost it
            _record_run(out, computed, len(cells), time.perf_counter() - t0, jobs, finished, log)
    write_tables(out, spec, collect_cells(out, spec))
    return out


def _record_run(out: Path, computed: int, of: int, wall: float, jobs: int, finished: bool, log) -> None:
    """Append one run to ``runs.json``, the record of wall times: what a whole table costs is the sum
    over the runs that computed its cells."""
    log(f"computed {computed} cell(s) in {wall:.0f} s wall time ({jobs} job(s))"
        + ("" if finished else ", then stopped"))
    history = json.loads((out / "runs.json").read_text()) if (out / "runs.json").is_file() else []
    history.append({"finished": time.strftime("%Y-%m-%d %H:%M:%S"), "cells": computed, "of": of,
                    "wall_seconds": round(wall, 1), "jobs": jobs, "cpu_count": os.cpu_count(),
                    "machine": platform.machine(), **({} if finished else {"interrupted": True})})
    write_json(out / "runs.json", history)


def _threads_of(cell: dict) -> int | None:
    """The CPU threads a cell was computed with, from its device line ("cpu (x86_64, 1 threads)")."""
    match = re.search(r"(\d+) threads?\)", str(cell.get("device", "")))
    return int(match.group(1)) if match else None


def _figures(cell: dict) -> dict[str, float]:
    """Every number of a cell's evaluation, flattened (``unseen.map``, ``protocols.seen@seen``, ...)."""
    out = {}
    for part in ("unseen", "seen", "protocols"):
        for key, value in (cell.get(part) or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{part}.{key}"] = float(value)
    return out


def verify_cells(spec: BenchmarkSpec, count: int, seed: int = 0, log=print) -> tuple[int, int]:
    """Recompute ``count`` of the benchmark's current cells (a seeded choice) from their stored
    configuration, with the thread count each records, and compare every figure exactly.  Returns
    (cells that reproduce, cells checked)."""
    spec.check()
    tuned = load_tuned(spec.tuned)
    out = Path(spec.out)
    current = [c for c in itertools.product(range(spec.splits), spec.methods, spec.bits)
               if cell_is_current(out, spec, tuned, c[1], c[2], c[0])]
    if not current:
        raise VsbError(f"{out}: no current cell to verify; compute the benchmark first.")
    rng = np.random.default_rng(seed)
    chosen = [current[i] for i in sorted(rng.choice(len(current), min(count, len(current)), replace=False))]
    device, same, here = resolve_device("auto"), 0, cpu_name()
    before = torch.get_num_threads()
    try:
        for split, variant, bits in chosen:
            stored = json.loads(cell_path(out, variant, bits, split).read_text())
            cfg = saved_config_from_dict(stored["config"])
            threads = _threads_of(stored)
            torch.set_num_threads(threads or before)
            prep = prepare(cfg)
            again = evaluate_cell(fit_cell(cfg, prep, device, _StageCache()), prep, cfg, device, split_alignment(prep))
            a, b = _figures(stored), _figures(cast(dict, again))
            differ = sorted(k for k in a if k in b and a[k] != b[k])
            same += not differ
            elsewhere = "" if stored.get("cpu") == here else (
                f"; computed on {stored.get('cpu') or 'a CPU the cell does not name'}, this is {here}: training's "
                "float sums round differently on another CPU, so every figure may differ there")
            log(f"{variant} {bits} bits split {split} ({threads or before} thread(s), {stored.get('git_commit')}): "
                + ("every figure reproduced" if not differ else
                   f"{len(differ)} of {len(a)} figures differ, e.g. {differ[0]} {a[differ[0]]!r} vs {b[differ[0]]!r}")
                + elsewhere)
    finally:
        torch.set_num_threads(before)
    log(f"{same} of {len(chosen)} cells reproduced exactly")
    return same, len(chosen)


def collect_cells(out: Path, spec: BenchmarkSpec) -> list[Cell]:
    """Cells of the splits that every method x bits has finished: a mean over different splits
    for different methods would not compare like with like."""
    tuned = load_tuned(spec.tuned)
    rows: list[Cell] = []
    for split in range(spec.splits):
        combos = list(itertools.product(spec.methods, spec.bits))
        if all(cell_is_current(out, spec, tuned, v, b, split) for v, b in combos):
            rows.extend(json.loads(cell_path(out, v, b, split).read_text()) for v, b in combos)
    return rows


