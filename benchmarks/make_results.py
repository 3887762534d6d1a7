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
import dataclasses
import sys
import time
from pathlib import Path

from vsb2net.comparison.cells import run_benchmark

# what tests/test_benchmark.py reads off this script (it loads the file, not a module of the package)
from vsb2net.comparison.paired import best_per_length  # noqa: F401
from vsb2net.comparison.paired import paired_row as _paired_row  # noqa: F401
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

PLAN = ResultsPlan(
    root=ROOT, datasets=DATASETS, command=".venv/bin/python benchmarks/make_results.py", splits=SPLITS,
    main_methods=tuple(MAIN_METHODS),
    ablation_methods=(REFERENCE, *(f"{REFERENCE}-{s}" for s in METHODS.get(REFERENCE).ablations)), ablation_bits=32,
    seed_check_seeds=(1, 2), seed_check_bits=32,
    pairs_bits=32, pair_rivals=3,
    aim_wins=3, aim_class_ratio=3.0, whole_set_aim_min=120)
#: issue 27's protocol, computed beside the plan above (its own tuned files and cell folders) until
#: every cell of both datasets exists, when it replaces it: the balanced split design (10 distinct
#: splits, every class unseen twice), every method's codes centred before its loss
#: (model.code_layer=center, chosen on the validation protocol: benchmarks/results/transfer, batch 11),
#: every method tuned by Optuna with the same budget (`<dataset>.v2.yaml`), 3 training seeds per split at
#: 32 bits for every method and the 45-pair table for every method
PLAN_V2 = dataclasses.replace(
    PLAN, command=".venv/bin/python benchmarks/make_results.py --plan v2", unseen_split="balanced",
    overrides=("model.code_layer=center",), tuned_suffix="v2", results_subdir="v2", seed_check_every_method=True,
    pair_rivals=None, whole_set_aim_min=180, asymmetric_in_main=True, tune_trials=20, tune_max_epochs=12,
    tune_folds=2)
PLANS = {"v1": PLAN, "v2": PLAN_V2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", choices=sorted(PLANS), default="v1",
                    help="v1: docs/RESULTS.md's tables; v2: issue 27's protocol, computed beside them "
                         "(docs/RESULTS-v2.md) until it replaces them")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tables-only", action="store_true")
    ap.add_argument("--tune", action="store_true",
                    help="first tune the main methods on the validation protocol as the plan says (Optuna, the same "
                         "trials for each; --plan v2): those its tuned file lacks, so a stopped tuning resumes; "
                         "delete the file first for a full recompute")
    ap.add_argument("--tune-only", action="store_true", help="as --tune, then stop before the cells")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-pairs", action="store_true", help="skip computing the 45-pair table")
    ap.add_argument("--no-seeds", action="store_true", help="skip computing the training-seed check")
    ap.add_argument("--splits", type=int, default=SPLITS,
                    help=f"compute the first N seeded splits only (the tables are planned for {SPLITS}; fewer are "
                         "reported as incomplete)")
    ap.add_argument("--output", default=None,
                    help="where to write the document (default docs/RESULTS.md, with --plan v2 docs/RESULTS-v2.md)")
    ap.add_argument("--readme", default=str(ROOT / "README.md"),
                    help="README whose block between the results markers gets the summary lines")
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
        if plan.tune_trials is None:
            raise SystemExit("this plan's tuned files name the commands that wrote them; --tune needs --plan v2")
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
    plan = PLANS[args.plan]
    t0 = time.time()
    if not args.tables_only:
        for name in plan.datasets:
            if name in args.datasets.split(","):
                compute(plan, name, args)
    text, readme_lines = render(plan)
    target = Path(args.output or ROOT / "docs" / ("RESULTS.md" if plan is PLAN else f"RESULTS-{args.plan}.md"))
    write_text(target, text)
    if plan is PLAN:  # the figures users see beside their runs come from the published tables only
        write_reference(plan)  # the means over splits that a run's report.md sets its split beside
        readme = Path(args.readme)
        block = readme_with_block(readme.read_text(), readme_lines)
        if block is not None:
            write_text(readme, block)
    print(f"wrote {target}" + ("" if args.tables_only else f" ({(time.time() - t0) / 60:.1f} min)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
