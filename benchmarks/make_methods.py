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
import sys
from pathlib import Path

from vsb2net.comparison import method_lists
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
