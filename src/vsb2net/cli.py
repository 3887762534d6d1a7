"""Command-line interface: ``vsb2net run | train | evaluate | datasets | methods | backbones``, plus the
command groups of COMMAND_MODULES (benchmark, tune, index, search, serve).

Building the parser imports no torch, model or data module (``vsb2net --help`` answers at once):
the commands import what they need when they run, and names that registries define (methods,
backbones) are checked then, with the known names in the error.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import VsbError
from .threads import set_wait_policy

# flag -> config key; each is a shortcut for --set KEY=VALUE (and wins over --set)
SHORTCUTS = {
    "dataset": "data.dataset", "data_root": "data.root", "class_vectors": "data.class_vectors",
    "unseen": "data.unseen", "split_seed": "data.split_seed", "max_per_class": "data.max_per_class",
    "method": "model.method", "bits": "model.bits", "epochs": "train.epochs", "seed": "train.seed",
    "device": "train.device", "name": "name", "out": "out_dir",
}


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (defaults < --tuned < --config < --set < flags)")
    g.add_argument("--config", metavar="FILE", help="YAML or TOML file with sections data, model, train, eval; "
                        "a file written by `vsb2net tune` is read as --tuned")
    g.add_argument("--tuned", metavar="FILE",
                   help="YAML written by `vsb2net tune` (e.g. src/vsb2net/comparison/tuned/animal-mnist.yaml), or "
                        "'auto' for the committed src/vsb2net/comparison/tuned/DATASET.yaml of the run's dataset when "
                        "there is one (what `make run` uses): its dataset and "
                        "its settings for the run's method (--method, default vsb2net) are the starting "
                        "configuration, which --config, --set and the flags override. Its train.epochs (the "
                        "best epoch on the validation protocol) becomes the maximum: training still picks the "
                        "epoch count on the validation protocol unless --set train.select_epochs=false")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override any config key, e.g. --set model.w_rel=0 or --set model.backbone=cnn28s "
                        "(see `vsb2net backbones`); repeatable")
    g.add_argument("--dataset", help="dataset name (see `vsb2net datasets`); default animal-mnist")
    g.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files")
    g.add_argument("--class-vectors", metavar="SRC",
                   help="auto (default: the dataset's attributes when it ships them, else glove), glove, attributes, "
                        "or a .npy/.csv file of class vectors")
    g.add_argument("--unseen", metavar="NAMES",
                   help="comma-separated unseen class names (default: the dataset's proposed split, e.g. xlsa17's, "
                        "else 2 drawn by --split-seed; see data.unseen_split)")
    g.add_argument("--split-seed", type=int, help="seed of the seen/unseen split and query draw")
    g.add_argument("--max-per-class", type=int, metavar="N", help="use at most N images per class (quick runs)")
    g.add_argument("--method", help="hashing method (default vsb2net; `vsb2net methods` lists them)")
    g.add_argument("--bits", type=int, help="code length, a multiple of 8 (default 32)")
    g.add_argument("--epochs", type=int, help="maximum epochs (the validation protocol picks the count)")
    g.add_argument("--seed", type=int, help="training seed")
    g.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    g.add_argument("--name", help="run name (directory under --out); default from dataset, method, bits, seed")
    g.add_argument("--out", metavar="DIR", help="parent directory of runs (default runs)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_resume_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the interrupted training in RUN_DIR from its last finished epoch, with the "
                        "configuration it started with (same final codes as an uninterrupted run)")


def _overrides_from_args(args: argparse.Namespace, flags=SHORTCUTS) -> dict[str, object]:
    """``{"section.key": value}`` of --set, then of the shortcut flags (which win)."""
    from .config import parse_overrides

    overrides: dict[str, object] = dict(parse_overrides(args.set))
    for flag, key in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides.pop(key, None)
            overrides[key] = value
    if getattr(args, "no_progress", False):
        overrides.pop("train.progress", None)
        overrides["train.progress"] = False
    return overrides


def _config_from_args(args: argparse.Namespace):
    from .comparison.tuned import tuned_config

    return tuned_config(args.config, _overrides_from_args(args), tuned=getattr(args, "tuned", None))


def _resume_from_args(args: argparse.Namespace):
    """(config, training state) of ``--resume RUN_DIR``, or (config from the flags, None)."""
    if not getattr(args, "resume", None):
        return _config_from_args(args), None
    from .run import resume_config

    changed = [f"--{flag.replace('_', '-')}" for flag in SHORTCUTS
               if flag != "device" and getattr(args, flag, None) is not None]
    changed += ["--config"] if args.config else []
    changed += ["--tuned"] if getattr(args, "tuned", None) else []
    if changed:
        raise VsbError(f"--resume continues {args.resume} with the configuration it started with; drop "
                       f"{', '.join(changed)} (only --device, --no-progress and --set train.device=... may be given).")
    overrides = _overrides_from_args(args, {"device": "train.device"})
    return resume_config(args.resume, [f"{key}={value}" for key, value in overrides.items()])


def cmd_train(args: argparse.Namespace) -> int:
    from .distributed import from_env, leave_helper_rank
    from .pipeline import train_run

    cfg, state = _resume_from_args(args)
    out = train_run(cfg, resume=state, out=args.resume)
    if not from_env().is_main:
        leave_helper_rank()
    print(f"run directory: {out}")
    return 0


def _evaluate_and_report(path, prep=None):
    """Evaluate a trained run (its codes and metrics.json) and write its report.md; the metrics."""
    from .pipeline import evaluate_run
    from .report import write_report

    ev = evaluate_run(path, prep)
    write_report(ev.path, ev.cfg, ev.metrics, ev.prep, ev.packed)
    return ev.metrics


def cmd_run(args: argparse.Namespace) -> int:
    from .distributed import from_env, leave_helper_rank
    from .pipeline import prepare, train_run
    from .report import print_tables
    from .run import REPORT

    t0 = time.perf_counter()
    cfg, state = _resume_from_args(args)
    prep = prepare(cfg)
    out = train_run(cfg, prep, resume=state, out=args.resume)
    if not from_env().is_main:
        leave_helper_rank()  # rank 0 evaluates; the other ranks only helped train
    metrics = _evaluate_and_report(out, prep)
    print_tables(metrics)
    print(f"\nunseen-class mAP@all (tie-aware): {metrics['unseen']['map']:.4f}   "
          f"[{cfg.model.method}, {cfg.model.bits} bits, {cfg.data.dataset}]")
    print(f"report: {out / REPORT}   ({time.perf_counter() - t0:.0f} s)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .report import print_tables
    from .run import REPORT
    from .threads import use_cpu_threads

    use_cpu_threads()
    metrics = _evaluate_and_report(args.run_dir)
    print_tables(metrics)
    print(f"report: {Path(args.run_dir) / REPORT}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import list_datasets

    rows = []
    for info in list_datasets():
        ok, detail = info.probe(args.data_root)
        rows.append((info.name, "available" if ok else "MISSING", info.description, detail,
                     "" if ok else info.how_to_get))
    for name, state, desc, detail, how in rows:
        print(f"{name:16s} {state:10s} {desc}")
        if detail:
            print(f"{'':16s} {'':10s} {detail}")
        if how:
            print(f"{'':16s} {'':10s} how to get it: {how}")
    return 0


def _print_registry(registry, label: str, column: tuple[str, Callable[[Any], str]] | None = None) -> None:
    """One line per registered name: the name, an optional column (title, value of the class), the help."""
    names = registry.names()
    width = max(len(label), *map(len, names))
    title, value = column if column else ("", None)
    pad = len(title)
    print(f"{label:{width}s}  " + (f"{title}  " if title else "") + "description")
    for name in names:
        middle = f"{value(registry.get(name)):{pad}s}  " if value else ""
        print(f"{name:{width}s}  {middle}{registry.help(name)}")


def cmd_methods(args: argparse.Namespace) -> int:
    from .models import FAMILIES, METHODS, variants

    names = list(dict.fromkeys(m for m, _ in variants().values()))
    width = max(map(len, names))
    print(f"{'method':{width}s}  {'family':12s}  semantic  description")
    for name in names:
        cls = METHODS.get(name)
        print(f"{name:{width}s}  {cls.family:12s}  {'yes' if cls.codes_classes else 'no':8s}  {METHODS.help(name)}")
        print(f"{'':{width}s}  {'':12s}  {'':8s}  paper: {cls.paper}")
        own = ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls.Params))
        print(f"{'':{width}s}  {'':12s}  {'':8s}  parameters (model.*): {own or '(none of its own)'}")
        for suffix, overrides in cls.ablations.items():
            shown = ", ".join(f"{k}={v}" for k, v in overrides.items())
            print(f"{'':{width}s}  {'':12s}  {'':8s}  ablation {name}-{suffix}: {shown}")
    print("\nfamilies: " + "; ".join(f"{k}: {v}" for k, v in FAMILIES.items()) + ".")
    print("semantic: the method has a semantic branch, which hashes class vectors too (class-name queries "
          "with `vsb2net search --class-name`, the class-name mAP); the others hash images only. "
          "Losses, options and tuned settings: docs/METHODS.md.")
    return 0


def cmd_backbones(args: argparse.Namespace) -> int:
    from .models import BACKBONES

    _print_registry(BACKBONES, "backbone")
    print("\nchoose one with --set model.backbone=NAME (default auto: cnn28 for images, mlp for "
          "precomputed features).")
    return 0


# Modules that add command groups of their own: each has ``register(subparsers, add_config_flags)``
# and, like this one, imports nothing heavy (torch, models, data) before a command runs.
COMMAND_MODULES: list[str] = ["vsb2net.comparison.cli", "vsb2net.index.cli", "vsb2net.serve.cli"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vsb2net",
        description="Zero-shot hashing with VSB2-Net: train on seen classes, retrieve unseen classes "
                    "by Hamming distance, report mAP with an explicit tie rule.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sp = sub.add_parser("run", help="train, evaluate and write the report (the main job)",
                        description="Train VSB2-Net on the seen classes (epochs chosen on the validation "
                                    "protocol), encode queries and database, compute the metrics and write "
                                    "runs/<name>/report.md.")
    _add_config_flags(sp)
    _add_resume_flag(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("train", help="train and save the checkpoint, without evaluating",
                        description="Train on the seen classes and write config.yaml, checkpoint.pt, "
                                    "split.json and training.json into the run directory.")
    _add_config_flags(sp)
    _add_resume_flag(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="evaluate a trained run directory and write its report",
                        description="Encode the queries and database with the run's checkpoint, compute "
                                    "metrics.json and write report.md with its pictures.")
    sp.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `vsb2net train` or `run`")
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("datasets", help="list the datasets, which are available here and how to get the rest",
                        description="List the registered datasets, whether their files are available on this "
                                    "machine and, for missing ones, how to get them.")
    sp.add_argument("--data-root", metavar="DIR", help="look for the files in DIR instead of the default places")
    sp.set_defaults(func=cmd_datasets)

    sp = sub.add_parser("methods", help="list the hashing methods (--method) and which have a semantic branch",
                        description="List the registered hashing methods, for --method or model.method, with "
                                    "whether each has a semantic branch (codes for class vectors).")
    sp.set_defaults(func=cmd_methods)

    sp = sub.add_parser("backbones", help="list the backbones (--set model.backbone=NAME)",
                        description="List the registered backbones, for --set model.backbone=NAME.")
    sp.set_defaults(func=cmd_backbones)

    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub, _add_config_flags)
    _accept_debug_everywhere(sub)
    return p


def _accept_debug_everywhere(sub: argparse._SubParsersAction) -> None:
    """--debug also after a command or subcommand (`vsb2net index build RUN --debug`); SUPPRESS
    keeps a --debug given earlier from being reset to False by a later parser's default."""
    for command in sub.choices.values():
        if "--debug" not in command._option_string_actions:
            command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="show Python tracebacks for errors")
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_debug_everywhere(action)


class _Signalled(KeyboardInterrupt):
    """SIGTERM (or another stop signal) delivered as an interruption, so it unwinds like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_signalled(signum, _frame):
    raise _Signalled(signum)


def _one_paragraph(text: object) -> str:
    # messages that quote a parser or library may hold line breaks; the error stays one paragraph
    return " ".join(str(text).split())


def _rank_prefix() -> str:
    from .distributed import from_env

    try:
        d = from_env()
    except VsbError:
        return ""
    return f" (rank {d.rank} of {d.world})" if d.world > 1 else ""


def _interrupted_message(exc: KeyboardInterrupt, command: str) -> str:
    from .errors import TrainingInterrupted

    signum = getattr(exc, "signum", signal.SIGINT)
    what = "interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    if not isinstance(exc, TrainingInterrupted):
        again = (" The finished shards of the index build are kept (INDEX.shards/): run the same command again to "
                 "code only the rest." if command == "index" else "")
        return f"vsb2net: {what}; files already written are complete, nothing half-written was kept.{again}"
    if not exc.resumable:
        return (f"vsb2net: {what} before the first epoch finished; nothing was kept. Run the same command "
                "again to start over.")
    command = "run" if command == "run" else "train"
    launcher = "torchrun [the same torchrun options] -m vsb2net" if "WORLD_SIZE" in os.environ else "vsb2net"
    return (f"vsb2net: {what}; the last finished epoch is saved ({exc.where}) in {exc.run_dir}. "
            f"Continue with:\n  {launcher} {command} --resume {shlex.quote(str(exc.run_dir))}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # before any command loads torch's OpenMP runtime, which reads it once (vsb2net.threads)
    set_wait_policy()
    debug = getattr(args, "debug", False)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _raise_signalled)
    except ValueError:
        pass  # not the main thread: leave signal handling to whoever runs us
    try:
        return args.func(args)
    except VsbError as exc:
        if debug:
            raise
        print(f"vsb2net: error{_rank_prefix()}: {_one_paragraph(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a file system refusing a read or write (permissions, full disk, a file where a directory
        # should be) is the environment's, not a bug
        if debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"vsb2net: error{_rank_prefix()}: cannot access{where}: {exc.strerror or exc}. Check the path, "
              "its permissions and the free disk space.", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        if _is_main_rank():
            print(_interrupted_message(exc, args.command), file=sys.stderr)
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _is_main_rank() -> bool:
    from .distributed import from_env

    try:
        return from_env().is_main
    except VsbError:
        return True


if __name__ == "__main__":
    sys.exit(main())
