"""Regenerate docs/METHODS.md from the method registry and the committed tuned settings.

    .venv/bin/python benchmarks/make_methods.py

Also rewrites the method lists in README.md and docs/DATASETS.md (their methods blocks).
Every method's section comes from what its class declares (family, paper, parameters and their
defaults, search space and reference values, ablations) and its file's docstring (the loss as
written from the paper); the tuned settings are
read from src/vsb2net/comparison/tuned/*.yaml, where `vsb2net tune` wrote them.  Nothing here is typed in by hand:
a new method file appears with no edit to this script.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
from pathlib import Path

import numpy as np

from vsb2net.comparison import method_lists
from vsb2net.comparison.levers_doc import gap, pick
from vsb2net.comparison.tuned import TUNED_DIR, load_tuned_file
from vsb2net.config import SHARED_MODEL_KEYS
from vsb2net.io import write_text
from vsb2net.models import FAMILIES, METHODS, variants
from vsb2net.space import describe

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ".venv/bin/python benchmarks/make_methods.py"


def tuned_files() -> list[tuple[str, dict]]:
    """(file name, its document) of every committed tuned file, the datasets' own first."""
    paths = sorted(TUNED_DIR.glob("*.yaml"), key=lambda p: (p.stem.count("."), p.name))
    return [(p.name, load_tuned_file(p)) for p in paths]


def _setting(chosen: dict) -> str:
    shown = ", ".join(f"`{k}={v}`" for k, v in chosen.items() if k != "train.epochs") or "(only the epochs)"
    return f"{shown}; {chosen.get('train.epochs', '?')} epoch(s)"


def method_section(name: str, tuned: list[tuple[str, dict]]) -> list[str]:
    cls = METHODS.get(name)
    doc = inspect.getdoc(sys.modules[cls.__module__]) or ""
    params = ", ".join(f"`model.{f.name}={f.default}`" for f in dataclasses.fields(cls.Params)) or "none"
    lines = [f"## `{name}`", "", f"- family: {cls.family} ({FAMILIES[cls.family]})", f"- paper: {cls.paper}",
             f"- `src/vsb2net/models/{Path(inspect.getfile(cls)).name}`; semantic branch (class codes): "
             f"{'yes' if cls.codes_classes else 'no'}",
             f"- its own parameters (`{cls.__name__}.Params`, with their defaults): {params}"]
    if not cls.tunable:
        lines.append("- tuning: none (nothing is trained)")
    else:
        space = "; ".join(f"`{k}` in {describe(v)}, first trial {cls.reference.get(k, '-')}"
                          for k, v in cls.search.items()) or "only the epoch count"
        lines.append(f"- search space (`vsb2net tune`, validation protocol, with the epoch count): {space}")
    for suffix, overrides in cls.ablations.items():
        lines.append(f"- ablation `{name}-{suffix}`: " + ", ".join(f"`{k}={v}`" for k, v in overrides.items()))
    rows = []
    for file, doc_tuned in tuned:
        chosen = doc_tuned.get("methods", {}).get(name)
        if chosen is not None:
            scores = [r["val_map"] for r in doc_tuned.get("trials", doc_tuned.get("grid", []))
                      if r["method"] == name and r.get("val_map") is not None]
            best = f"{max(scores):.3f}" if scores else "-"
            rows.append(f"| `{file}` | {_setting(chosen)} | {best} | {len(scores)} |")
    if rows:
        lines += ["", "| tuned file | chosen setting | pseudo-unseen mAP of the choice | settings tried |",
                  "|---|---|---:|---:|", *rows]
    else:
        lines += ["", "Not tuned in any committed file yet."]
    return lines + ["", "```text", doc, "```", ""]


#: benchmarks/transfer_experiments.py's batch that chose the code layer (benchmarks/results/transfer/COMMANDS.md)
CODE_LAYER_DIR = ROOT / "benchmarks" / "results" / "transfer" / "code_layer"


def code_layer_section() -> list[str]:
    """Linear against centred code layer, every method, on the validation protocol (batch 11)."""
    paths = sorted(CODE_LAYER_DIR.glob("*.jsonl"))
    if not paths:
        return []
    lines = ["## The code layer", "",
             "Every method's codes are the backbone's features through one linear layer. `model.code_layer=center` "
             "standardises that layer's outputs over the batch (a batch norm without scale and shift; running "
             "statistics at test time) before any loss sees them, so that no method starves on a component every "
             "image shares (the backbone ends in a ReLU). Judged on the validation protocol only (seen classes held "
             "out as pseudo-unseen; each method at its paper's settings, 8 epochs, 32 bits; commands in "
             "`benchmarks/results/transfer/COMMANDS.md`, batch 11): pseudo-unseen image mAP at each "
             "setting's best epoch, mean over pools x folds, and the paired gap over the same runs.", "",
             "| dataset | method | runs | linear | center | center minus linear (± s.e.) |",
             "|---|---|---:|---:|---:|---:|"]
    ahead = total = 0
    for path in paths:
        rows = {r["name"]: r for r in map(json.loads, path.read_text().splitlines()) if r}
        for name in [n[:-len("-linear")] for n in rows if n.endswith("-linear")]:
            if f"{name}-center" not in rows:
                continue
            (lin, lin_cls, _), (cen, cen_cls, _) = (pick(rows[f"{name}-{k}"]) for k in ("linear", "center"))
            total += 1
            ahead += int((cen - lin).mean() > 0)
            lines.append(f"| {path.stem} | {name} | {len(lin)} | {lin.mean():.3f} | {cen.mean():.3f} | "
                         f"{gap(cen, lin)} |")
            if np.isfinite(lin_cls).all() and np.isfinite(cen_cls).all():
                lines.append(f"| {path.stem} | {name} (class-name mAP) | {len(lin)} | {lin_cls.mean():.3f} | "
                             f"{cen_cls.mean():.3f} | {gap(cen_cls, lin_cls)} |")
    return lines + ["", f"Centred codes gave the higher pseudo-unseen image mAP for {ahead} of {total} method x "
                        "dataset pairs, so every method of the benchmark (`benchmarks/make_results.py`) is tuned and "
                        "trained with `model.code_layer=center`: one decision for all, on image mAP, the tables' "
                        "figure, and `center` is the default of every run. What it costs VSB2-Net's class-name queries "
                        "is in the class-name rows above.", ""]


def render() -> str:
    names = list(dict.fromkeys(m for m, _ in variants().values()))
    tuned = tuned_files()
    lines = ["# Methods", "",
             f"Generated from the method registry by `{COMMAND}`: each method's family, paper, its parameters, "
             "its search space and ablations are what its class declares, its loss is its file's docstring, and its "
             "tuned settings are read from `src/vsb2net/comparison/tuned/` (chosen by `vsb2net tune` on the validation "
             "protocol: "
             "seen classes held out as pseudo-unseen, never a test query). Every method uses the same backbone, "
             "training loop and protocol. Settings every method shares: "
             + ", ".join(f"`model.{o}`" for o in SHARED_MODEL_KEYS) + ".", "",
             "| method | family | paper | tuned on |", "|---|---|---|---|"]
    for name in names:
        cls = METHODS.get(name)
        files = [f for f, d in tuned if name in d.get("methods", {})]
        lines.append(f"| [`{name}`](#{name}) | {cls.family} | {cls.paper} | {', '.join(files) or '-'} |")
    lines += ["", "Families: " + "; ".join(f"**{k}**: {v}" for k, v in FAMILIES.items()) + ".", ""]
    lines += code_layer_section()
    for name in names:
        lines += method_section(name, tuned)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=str(ROOT / "docs" / "METHODS.md"))
    args = ap.parse_args()
    write_text(Path(args.output), render())
    print(f"wrote {args.output}")
    for path, text, indent in ((ROOT / "README.md", method_lists.readme_text(), "  "),
                               (ROOT / "docs" / "DATASETS.md", method_lists.datasets_text(), "")):
        block = method_lists.with_block(path.read_text(), text, indent=indent)
        if block is None:
            raise SystemExit(f"{path} has no {method_lists.START} ... {method_lists.END} block")
        write_text(path, block)
        print(f"wrote the method list of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
