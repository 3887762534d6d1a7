"""Regenerate docs/RESULTS.md: the benchmark tables for Animal-MNIST and Fashion-MNIST.

    .venv/bin/python benchmarks/make_results.py

Runs (or resumes: finished cells are kept) `vsb2net benchmark` on each dataset with the tuned
defaults committed under src/vsb2net/comparison/tuned/, then writes docs/RESULTS.md from the cell files.  The
tuned defaults were chosen by `vsb2net tune` on the validation protocol; the exact command is at
the top of each YAML file.  `--datasets` limits the run; `--tables-only` rewrites the document from
the cells already computed.

What is computed and reported is the plan below (:class:`vsb2net.comparison.results_plan.ResultsPlan`);
the document is rendered by :mod:`vsb2net.comparison.results_doc`.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from vsb2net.comparison.cells import run_benchmark

# what tests/test_benchmark.py reads off this script (it loads the file, not a module of the package)
from vsb2net.comparison.paired import best_per_length  # noqa: F401
from vsb2net.comparison.paired import paired_row as _paired_row  # noqa: F401
from vsb2net.comparison.reference import PATH as REFERENCE_PATH
from vsb2net.comparison.results_doc import class_code_lines, family_lines, readme_with_block, render, write_reference  # noqa: F401
from vsb2net.comparison.results_plan import ResultsPlan, first_splits
from vsb2net.comparison.spec import load_tuned
from vsb2net.comparison.tuning import run_tune
from vsb2net.io import write_text
from vsb2net.models import METHODS, REFERENCE, variants

ROOT = Path(__file__).resolve().parent.parent

# dataset -> images per class (None = all).  Fashion-MNIST is subsampled to fit this project's
# 2-core time budget; the subsample is seeded (data.query_seed) and the same for every method.
DATASETS = {"animal-mnist": None, "fashion-mnist": 1000}
#: seeded random unseen splits of the main tables
SPLITS = 10
#: the main tables: every registered method at every length (the registry's order: VSB2-Net, then
#: by family)
MAIN_METHODS = [v for v, (_, overrides) in variants().items() if not overrides]

#: issue 27's protocol: the balanced split design (10 distinct splits, every class unseen twice),
#: every method's codes centred before its loss (model.code_layer=center, chosen on the validation
#: protocol: benchmarks/results/transfer, batch 11), every method tuned by Optuna with the same budget,
#: 3 training seeds per split at 32 bits and the 45-pair table, both for every method
PLAN = ResultsPlan(
    root=ROOT, datasets=DATASETS, command=".venv/bin/python benchmarks/make_results.py", splits=SPLITS,
    main_methods=tuple(MAIN_METHODS),
    ablation_methods=(REFERENCE, *(f"{REFERENCE}-{s}" for s in METHODS.get(REFERENCE).ablations)), ablation_bits=32,
    seed_check_seeds=(1, 2), seed_check_bits=32, pairs_bits=32,
    aim_wins=3, aim_class_ratio=3.0, whole_set_aim_min=180,
    overrides=("model.code_layer=center",), tune_trials=20, tune_max_epochs=12, tune_folds=2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tables-only", action="store_true")
    ap.add_argument("--tune", action="store_true",
                    help="first tune the main methods on the validation protocol as the plan says (Optuna, the same "
                         "trials for each): those its tuned file lacks, so a stopped tuning resumes; delete the "
                         "file first for a full recompute")
    ap.add_argument("--tune-only", action="store_true", help="as --tune, then stop before the cells")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-pairs", action="store_true", help="skip computing the 45-pair table")
    ap.add_argument("--no-seeds", action="store_true", help="skip computing the training-seed check")
    ap.add_argument("--splits", type=int, default=SPLITS,
                    help=f"compute the first N seeded splits only (the tables are planned for {SPLITS}; fewer are "
                         "reported as incomplete)")
    ap.add_argument("--output", default=str(ROOT / "docs" / "RESULTS.md"), help="where to write the document")
    ap.add_argument("--readme", default=str(ROOT / "README.md"),
                    help="README whose block between the results markers gets the summary lines")
    ap.add_argument("--reference", default=str(REFERENCE_PATH),
                    help="where to write the main tables' means that a run's report sets its split beside "
                         "(default: the package's reference.json)")
    # two 1-thread workers train more steps per second than one 2-thread process on the 2-core
    # reference machine (docs/PERFORMANCE.md, "Training"); the tables' wall times used 2
    ap.add_argument("--jobs", type=int, default=2, help="worker processes per benchmark (default 2)")
    return ap.parse_args(argv)


def untuned_methods(plan: ResultsPlan, name: str) -> list[str]:
    """The plan's tunable main methods that its tuned file lacks (all of them without the file): a
    stopped tuning resumes with the methods it had not finished."""
    path = plan.tuned_file(name)
    done = set(load_tuned(path).get("search", {}).get("trials", {})) if path.is_file() else set()
    base = {m: variants()[m][0] for m in plan.main_methods}
    return [m for m, b in base.items() if METHODS.get(b).tunable and b not in done]


def compute(plan: ResultsPlan, name: str, args: argparse.Namespace) -> None:
    """Run (or resume) the dataset's benchmarks in the plan's order: a later one may read an earlier
    one's cells (the seed check and the pairs retrain the main table's strongest methods)."""
    if args.tune or args.tune_only:
        todo = untuned_methods(plan, name)
        if todo:
            run_tune(name, todo, plan.tune_bits, plan.datasets[name], plan.tune_max_epochs,
                     str(plan.tuned_file(name)), f"{plan.command} --tune --datasets {name} --jobs {args.jobs}",
                     progress=False, folds=plan.tune_folds, overrides=plan.seeded_overrides(),
                     trials=plan.tune_trials, jobs=args.jobs)
        if args.tune_only:
            return
    skipped = {"seeds": args.no_seeds, "pairs": args.no_pairs}
    for stage in plan.compute_order:
        if skipped.get(stage):
            continue
        for spec in plan.stage_specs(name, stage):
            if stage in plan.seeded_stages:
                spec = first_splits(spec, args.splits)
            run_benchmark(spec, progress=not args.no_progress, jobs=args.jobs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = PLAN
    t0 = time.time()
    if not args.tables_only:
        for name in plan.datasets:
            if name in args.datasets.split(","):
                compute(plan, name, args)
    text, readme_lines = render(plan)
    target = Path(args.output)
    write_text(target, text)
    write_reference(plan, Path(args.reference))  # the means over splits a run's report.md sets its split beside
    readme = Path(args.readme)
    block = readme_with_block(readme.read_text(), readme_lines)
    if block is not None:
        write_text(readme, block)
    print(f"wrote {target}" + ("" if args.tables_only else f" ({(time.time() - t0) / 60:.1f} min)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
