"""``vsb2net benchmark`` and ``vsb2net tune`` on the command line: the parsers only.

Kept apart from the package's stages, which import torch and the models, so that building the
command-line parser (``vsb2net --help``) imports neither; the commands themselves
(:mod:`vsb2net.comparison.commands`) are imported when they run.
"""
from __future__ import annotations

import argparse


def _lazy(name: str):
    """The command function ``vsb2net.comparison.commands.<name>``, imported when the command runs."""
    def run(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)

    return run


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="animal-mnist",
                   help="dataset name (see `vsb2net datasets`); default animal-mnist")
    p.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files")
    p.add_argument("--methods", metavar="LIST",
                   help="comma-separated methods (`vsb2net methods`) and VSB2-Net ablations (vsb2net-no-rec, "
                        "-no-rel, -no-dis); default: all of them (an unknown name lists the known ones)")
    p.add_argument("--max-per-class", type=int, metavar="N", help="use at most N images per class")


def register(sub, add_config_flags) -> None:
    del add_config_flags  # these commands build their configurations themselves
    p = sub.add_parser("benchmark", help="methods x bits x unseen splits, with tables and a plot",
                       description="Run every method (VSB2-Net, its ablations and the baselines) at several "
                                   "code lengths on several seeded unseen splits; resumable. Writes cells/*.json, "
                                   "results.csv, table.md and map_vs_bits.png into --out.")
    _common_args(p)
    p.add_argument("--bits", default="16,32,48,64", help="comma-separated code lengths")
    p.add_argument("--splits", type=int, default=5, help="number of seeded unseen splits (split seeds 0..N-1)")
    p.add_argument("--tuned", metavar="FILE",
                   help="YAML of per-method defaults written by `vsb2net tune` (default: the dataset's committed "
                        "src/vsb2net/comparison/tuned/DATASET.yaml when there is one; 'none' trains with the package "
                        "defaults). "
                        "The settings each method's cells train with are printed first")
    p.add_argument("--out", metavar="DIR", help="results directory (default benchmarks/results/DATASET)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override for every cell")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="compute cells in N worker processes, sharing the CPU threads (default 1)")
    p.add_argument("--verify", type=int, metavar="N",
                   help="compute nothing new: recompute N of the current cells (a seeded choice) from their stored "
                        "configuration with the thread count each records, and say whether every figure is "
                        "reproduced exactly (exit status 1 if not)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_lazy("_cmd_benchmark"))

    p = sub.add_parser("tune", help="choose each method's settings and epochs on the validation protocol",
                       description="Search each method's space (declared in its own file: its loss weights, "
                                   "margins and the learning rate) with the same number of Optuna trials for every "
                                   "method (TPE, the paper's values first, a median pruner; a fold stops after 4 "
                                   "epochs without a better score) on the validation "
                                   "protocol (pseudo-unseen seen classes of split 0), and write the chosen defaults, "
                                   "with the command, the search spaces and every trial, to a YAML file for "
                                   "`vsb2net benchmark --tuned` and `vsb2net run --tuned`.")
    _common_args(p)
    p.add_argument("--bits", type=int, default=32, help="code length the trials are scored at")
    p.add_argument("--trials", type=int, default=20, metavar="N",
                   help="Optuna trials per method, the same for every method (default 20; a method with nothing "
                        "to search but its epoch count trains once)")
    p.add_argument("--max-epochs", type=int, default=10)
    p.add_argument("--val-folds", type=int, default=1, metavar="K",
                   help="average the validation score over K folds, each holding out other seen classes "
                        "as pseudo-unseen (each setting is trained K times, for all --max-epochs)")
    p.add_argument("--out", metavar="FILE",
                   help="tuned-defaults file to write or update (default src/vsb2net/comparison/tuned/DATASET.yaml, "
                        "the file `vsb2net benchmark` and `vsb2net run --tuned auto` read); other methods' choices "
                        "in it are kept")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="setting for every trial, saved with each method's choice (e.g. model.backbone=cnn28s)")
    p.add_argument("--jobs", type=int, default=1,
                   help="methods tuned at once, each in its own process (2 on a 2-core machine: two 1-thread "
                        "processes train more steps per second than one 2-thread one)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_lazy("_cmd_tune"))
