"""The ``vsb2net benchmark`` and ``vsb2net tune`` commands (parsers: :mod:`vsb2net.comparison.cli`).

Both start from the committed tuned defaults of the dataset (``src/vsb2net/comparison/tuned/DATASET.yaml``) when
there is one: the benchmark trains its cells with them, and tune updates that file.
"""
from __future__ import annotations

from ..config import parse_overrides
from ..errors import VsbError
from .cells import run_benchmark, verify_cells
from .spec import BenchmarkSpec, cell_config, load_tuned, tuned_for, variants
from .tuned import TUNED_DIR, committed_tuned_file
from .tuning import run_tune


def _split_list(text: str, cast=str) -> list:
    try:
        return [cast(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError:
        raise VsbError(f"could not read the list {text!r}; give comma-separated values.") from None


def _methods(args) -> list[str]:
    known = variants()
    methods = _split_list(args.methods) if args.methods else list(known)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise VsbError(f"unknown method(s) {unknown}; known: {', '.join(known)} (see `vsb2net methods`).")
    return methods


def _tuned_path(given: str | None, dataset: str) -> str | None:
    """--tuned: a file, 'none', or (default) the dataset's committed file when it has one."""
    if given is None or given == "auto":
        path = committed_tuned_file(dataset)
        return None if path is None else str(path)
    return None if given.lower() == "none" else given


def _cmd_benchmark(args) -> int:
    methods = _methods(args)
    parse_overrides(args.set)  # a malformed --set fails now, not when its first cell is built
    tuned_file = _tuned_path(args.tuned, args.dataset)
    spec = BenchmarkSpec(dataset=args.dataset, root=args.data_root, methods=methods,
                         bits=_split_list(args.bits, int), splits=args.splits, max_per_class=args.max_per_class,
                         tuned=tuned_file, out=args.out or "", overrides=args.set).check()
    if args.verify is not None:
        same, checked = verify_cells(spec, args.verify)
        return 0 if same == checked else 1
    tuned = load_tuned(tuned_file)
    print(f"settings: {tuned_file or 'no tuned file (package defaults)'}" +
          (f", --set {' '.join(args.set)}" if args.set else ""))
    for m in methods:
        chosen = {**tuned_for(tuned, m), **variants()[m][1]}
        epochs = cell_config(spec, tuned, m, spec.bits[0], 0).train.epochs
        shown = ", ".join(f"{k}={v}" for k, v in chosen.items() if k != "train.epochs") or "package defaults"
        print(f"  {m:16s} {epochs} epoch(s); {shown}")
    out = run_benchmark(spec, progress=not args.no_progress, jobs=args.jobs)
    print((out / "table.md").read_text())
    print(f"results: {out}")
    return 0


def _cmd_tune(args) -> int:
    import shlex
    import sys

    methods = _methods(args)
    out = args.out or str(TUNED_DIR / f"{args.dataset}.yaml")
    command = "vsb2net " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    path = run_tune(args.dataset, methods, args.bits, args.max_per_class, args.max_epochs, out, command,
                    root=args.data_root, progress=not args.no_progress, folds=args.val_folds, overrides=args.set,
                    trials=args.trials, jobs=args.jobs)
    for method, chosen in load_tuned(path).get("methods", {}).items():
        print(f"  {method:16s} " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
    print(f"tuned defaults: {path}")
    return 0
