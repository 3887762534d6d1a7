"""``vsb2net tune``: every method searched with the same budget on the *validation protocol*
(pseudo-unseen seen classes of split 0, over one or more folds).  Each method declares its search
space and its paper's values in its own file (``HashingMethod.search`` / ``reference``); Optuna's
TPE sampler proposes the settings, the paper's values first, and a median pruner stops a trial whose
pseudo-unseen mAP trails the others' at the same epoch; a fold stops after :data:`TUNE_PATIENCE` epochs
without improving.  The best setting and its best epoch become
the method's defaults in a YAML file that is committed, with every trial and the search space.  No
unseen class and no test query takes part."""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

from ..config import RunConfig, build_config, parse_overrides, setting_applies, setting_known
from ..data.splits import ZeroShotSplit, validation_splits
from ..errors import VsbError
from ..evaluation.model_eval import cpu_name
from ..io import write_text
from ..models import METHODS, HashingMethod
from ..pipeline import Prepared, fit_method, prepare
from ..space import Choice, Float, Int, Space, describe
from ..training import resolve_device
from .spec import load_tuned, overrides_of, variants
from .workers import worker_pool

#: trials per method unless told otherwise; the same for every method, the reference included
DEFAULT_TRIALS = 20
#: trials that finish before the pruner stops any (it needs others to compare with)
PRUNER_STARTUP = 5
#: the seed of the TPE sampler: a tuning rerun proposes the same settings
SAMPLER_SEED = 0
#: a fold stops after this many epochs without a better pseudo-unseen mAP: the tuning's largest cost
#: was finished trials training to the cap long after their peak (benchmarks/replay_patience.py replays
#: a tuned file's stored fold curves with each patience; docs/BENCHMARK.md gives what it printed)
TUNE_PATIENCE = 4


def config_key(key: str) -> str:
    """A search key as a ``section.key`` setting: a method parameter's name is a ``model.*`` key."""
    return key if "." in key else f"model.{key}"


def suggest(trial: optuna.Trial, key: str, space: Space) -> Any:
    if isinstance(space, Choice):
        return trial.suggest_categorical(key, list(space.values))
    if isinstance(space, Int):
        return trial.suggest_int(key, space.low, space.high, log=space.log)
    if isinstance(space, Float):
        return trial.suggest_float(key, space.low, space.high, log=space.log)
    raise TypeError(f"search space of {key}: {space!r} is not a Float, Int or Choice")


def _setting_config(method: str, params: dict[str, Any], fixed: dict[str, Any], *, dataset: str, bits: int,
                    max_epochs: int, progress: bool, folds: int, root: str | None,
                    max_per_class: int | None) -> RunConfig:
    """The run configuration of one trial, with the ``--set`` overrides on top."""
    values = {"data.dataset": dataset, "model.method": method, "model.bits": bits,
              "train.epochs": max_epochs, "train.progress": progress, **params}
    clash = sorted(set(fixed) & (set(values) | {"train.patience", "data.root", "data.max_per_class"}))
    if clash:
        raise VsbError(f"--set {', '.join(clash)}: tune sets these itself (they are its options or the "
                       f"{method} search space); use --bits, --max-epochs, --dataset, --data-root or "
                       "--max-per-class, or leave the search to set them.")
    values["train.patience"] = TUNE_PATIENCE
    if root:
        values["data.root"] = root
    if max_per_class:
        values["data.max_per_class"] = max_per_class
    return build_config(None, overrides_of({**values, **fixed}))


def _score_setting(cfg: RunConfig, prep: Prepared, vals: list[ZeroShotSplit], method: str, max_epochs: int,
                   device: torch.device, trial: optuna.Trial | None = None) -> dict[str, Any]:
    """Train one setting on every validation fold: its best pseudo-unseen mAP (the mean over the
    folds when there are several), the epoch it was reached at, and the validation curves.  With a
    ``trial``, every epoch's mAP is reported to Optuna (step: fold x max_epochs + epoch, the same
    for every trial) and a pruned trial stops there (``optuna.TrialPruned``).

    A fold stops after :data:`TUNE_PATIENCE` epochs without improving, and no later fold trains
    longer than the shortest before it: the mean is taken over the epochs every fold reached."""
    folds = len(vals)
    curves: list[list[float]] = []
    limit = max_epochs
    for k, val in enumerate(vals):
        def report(state: dict[str, Any], k: int = k) -> None:
            if trial is None:
                return
            last = state["history"][-1]
            trial.report(float(last["val_map"]), k * max_epochs + int(last["epoch"]))
            if trial.should_prune():
                raise optuna.TrialPruned(f"fold {k + 1}, epoch {last['epoch']}: val mAP {last['val_map']:.4f}")

        _, res = fit_method(cfg, prep, val, limit, device,
                            f"tune {method}" + (f" fold {k + 1}/{folds}" if folds > 1 else ""), validate_on=val,
                            on_epoch_end=report)
        curves.append([h["val_map"] for h in res.history])  # every epoch was validated (validate_on)
        limit = min(limit, len(curves[-1]))
    if folds == 1:
        return {"val_map": res.best_score, "best_epoch": res.best_epoch, "history": curves[0]}
    mean = np.mean(np.array([c[:limit] for c in curves], dtype=np.float64), axis=0)
    best = int(np.argmax(mean))
    return {"val_map": float(mean[best]), "best_epoch": best + 1, "history": mean.tolist(),
            "folds": [[float(v) for v in c] for c in curves]}


def _tuned_text(commands: list[str], dataset: str, bits: int, max_epochs: int, prep: Prepared,
                vals: list[ZeroShotSplit], split_seed: int, chosen: dict, trials: list[dict],
                spaces: dict[str, dict[str, str]], n_trials: dict[str, int], times: dict[str, dict]) -> str:
    """The tuned file: the commands that made it as comments, then the choices, the search spaces
    and every trial."""
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
        "max_epochs": max_epochs,
        # every class the tuning trained or validated on: a test split whose unseen classes are
        # among them was not strictly unseen to the tuning (RESULTS.md says which splits)
        "tuning_classes": sorted(names[c] for c in prep.split.seen),
        "tuning_splits": [int(split_seed)],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, {cpu_name()}",
        "search": {"sampler": f"optuna TPE (seed {SAMPLER_SEED}), the paper's values as the first trial",
                   "pruner": f"median (after {PRUNER_STARTUP} trials, per fold and epoch)",
                   "patience": f"a fold stops after {TUNE_PATIENCE} epochs without a better pseudo-unseen mAP; "
                               "later folds train no longer than the shortest before them",
                   "trials": n_trials, "spaces": spaces,
                   # when each method's search ran (UTC) and its wall time: the budget of a full recompute
                   "times": times},
        "methods": chosen,
        "trials": trials,
    }
    return ("# Chosen on the validation protocol by:\n" + "".join(f"#   {c}\n" for c in commands)
            + yaml.safe_dump(doc, sort_keys=False))


def _study(cls: type[HashingMethod]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SAMPLER_SEED),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP))
    if cls.reference:
        study.enqueue_trial(dict(cls.reference))
    return study


@contextlib.contextmanager
def _locked(out: str) -> Iterator[None]:
    """Hold an exclusive lock beside the tuned file while it is read and rewritten: several ``vsb2net
    tune`` processes (other methods each) may share one file, each merging in its own methods."""
    # in the temporary folder, not beside the committed file
    key = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()
    lock = Path(tempfile.gettempdir()) / f"vsb2net-tune-{key}.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _merge_method(out: str, command: str, method: str, choice: dict, rows: list[dict], space: dict, n: int,
                  time_: dict, text: Callable[..., str]) -> None:
    """Rewrite the tuned file with ``method``'s choice, trials and space in place of any earlier ones,
    keeping every other method's (tuned before, or by another process meanwhile)."""
    previous = load_tuned(out) if Path(out).is_file() else {}
    search = previous.get("search", {})

    def replaced(entries: dict, value: Any) -> dict:
        return {**{m: v for m, v in entries.items() if m != method}, method: value}

    all_rows = [r for r in previous.get("trials", []) if r["method"] != method] + rows
    commands = [c for c in previous.get("commands", []) if c != command] + [command]
    write_text(out, text(commands, replaced(previous.get("methods", {}), choice), all_rows,
                         replaced(search.get("spaces", {}), space), replaced(search.get("trials", {}), n),
                         replaced(search.get("times", {}), time_)))


def _checked_options(overrides: list[str] | None, folds: int, trials: int, jobs: int) -> dict[str, Any]:
    """The ``--set`` overrides parsed, once every option is checked."""
    fixed = parse_overrides(overrides or [])
    for name, value in (("--val-folds", folds), ("--trials", trials), ("--jobs", jobs)):
        if value < 1:
            raise VsbError(f"{name} {value}: give at least 1.")
    unknown = [k for k in fixed if not setting_known(k)]
    if unknown:
        raise VsbError(f"--set {', '.join(unknown)}: unknown key for every method; `vsb2net methods` lists each "
                       "method's settings (a method parameter holds for the methods that have it).")
    return fixed


def _timed(fn: Callable[[], None]) -> dict[str, Any]:
    """Run ``fn``; when it started and finished (UTC) and its wall time."""
    started, t0 = datetime.now(UTC), time.perf_counter()
    fn()
    return {"started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": round(time.perf_counter() - t0, 1)}


def _tune_in_workers(methods: list[str], jobs: int, kwargs: dict[str, Any]) -> None:
    """``run_tune(**kwargs)`` of each method in ``jobs`` spawned worker processes, each with its
    share of the CPU threads, all merging into one tuned file."""
    with worker_pool(jobs) as pool:
        for future in [pool.submit(_tune_one, m, kwargs) for m in methods]:
            future.result()


def _tune_one(method: str, kwargs: dict[str, Any]) -> None:
    """One method's search in a worker process (``run_tune(jobs=...)``)."""
    run_tune(methods=[method], **kwargs)


def run_tune(dataset: str, methods: list[str], bits: int, max_per_class: int | None, max_epochs: int,
             out: str, command: str, root: str | None = None, progress: bool = True, log=print,
             folds: int = 1, overrides: list[str] | None = None, trials: int = DEFAULT_TRIALS,
             jobs: int = 1) -> Path:
    """Search each method's space with ``trials`` Optuna trials on the validation protocol; the file
    is rewritten after every method, so an interrupted tuning keeps what it finished, and the other
    methods in it are kept (several processes, each tuning other methods, may share ``out``).

    With ``folds`` > 1 every trial is trained on each of ``folds`` validation protocols (other
    pseudo-unseen classes each) for up to ``max_epochs`` (:func:`_score_setting`'s early stop), and the
    epoch and setting with the best pseudo-unseen mAP averaged over the folds win.  A method with an
    empty search space (only its epoch count to choose) trains once.

    ``overrides`` (``section.key=value``) hold for every trial and are saved with each method's
    choice, so that the benchmark trains its cells the way they were tuned (e.g. another backbone);
    ``data.*`` overrides (the protocol tuned on) are named in the command only, not saved as settings.

    ``jobs`` > 1 tunes that many methods at once, each in a worker process with its share of the
    CPU threads, taking the next method when it finishes (the methods' searches are independent;
    each trial's figures are the same as in one process).
    """
    fixed = _checked_options(overrides, folds, trials, jobs)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    known = variants()
    base_methods = list(dict.fromkeys(known[m][0] for m in methods if METHODS.get(known[m][0]).tunable))
    if jobs > 1 and len(base_methods) > 1:
        _tune_in_workers(base_methods, jobs, {
            "dataset": dataset, "bits": bits, "max_per_class": max_per_class, "max_epochs": max_epochs, "out": out,
            "command": command, "root": root, "progress": False, "folds": folds, "overrides": overrides,
            "trials": trials})
        return Path(out)
    device = resolve_device("auto")
    prep: Prepared | None = None
    vals: list[ZeroShotSplit] = []
    split_seed = 0
    for method in base_methods:
        cls = METHODS.get(method)
        mine = {k: v for k, v in fixed.items() if setting_applies(k, method)}
        study = _study(cls)
        method_rows: list[dict] = []

        def objective(trial: optuna.Trial, method: str = method, cls: type[HashingMethod] = cls,
                      method_rows: list[dict] = method_rows, mine: dict[str, Any] = mine) -> float:
            nonlocal prep, vals, split_seed
            params = {config_key(k): suggest(trial, k, space) for k, space in cls.search.items()}
            cfg = _setting_config(method, params, mine, dataset=dataset, bits=bits, max_epochs=max_epochs,
                                  progress=progress, folds=folds, root=root, max_per_class=max_per_class)
            if prep is None:
                prep, split_seed = prepare(cfg), cfg.data.split_seed
                vals = validation_splits(prep.dataset.labels, prep.split, cfg.data.n_val_unseen,
                                         cfg.data.query_fraction, cfg.data.split_seed, folds)
            row: dict[str, Any] = {"method": method, "trial": trial.number, "params": params}
            method_rows.append(row)
            try:
                row.update(_score_setting(cfg, prep, vals, method, max_epochs, device, trial), state="complete")
            except optuna.TrialPruned as pruned:
                row.update(state="pruned", val_map=None, note=str(pruned))
                log(f"{method} trial {trial.number} {params}: pruned ({pruned})")
                raise
            log(f"{method} trial {trial.number} {params}: best pseudo-unseen mAP {row['val_map']:.4f} at epoch "
                f"{row['best_epoch']}" + (f" (mean over {folds} folds)" if folds > 1 else ""))
            return float(row["val_map"])

        n = trials if cls.search else 1
        took = _timed(functools.partial(study.optimize, objective, n_trials=n, catch=()))
        best = max((r for r in method_rows if r["state"] == "complete"), key=lambda r: r["val_map"])
        if best["best_epoch"] == max_epochs:
            log(f"{method}: the best epoch is the cap ({max_epochs}); raise --max-epochs")
        assert prep is not None, "the first trial prepared the data"
        with _locked(out):
            # the protocol it was tuned on (data.*: the split design, the subsample) is the selection's, said
            # in the file's header; a method's settings must not move a later run onto that protocol
            setting = {k: v for k, v in mine.items() if not k.startswith("data.")}
            _merge_method(out, command, method, {**setting, **best["params"], "train.epochs": best["best_epoch"]},
                          method_rows, {config_key(k): describe(s) for k, s in cls.search.items()}, n, took,
                          lambda commands, chosen, rows, spaces, n_trials, times: _tuned_text(
                              commands, dataset, bits, max_epochs, prep, vals, split_seed, chosen, rows, spaces,
                              n_trials, times))
    return Path(out)
