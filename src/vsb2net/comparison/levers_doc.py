"""The last section of docs/RESULTS.md, "Levers tried on the validation protocol": the batches of
``benchmarks/transfer_experiments.py`` (one JSON line per setting, under
``benchmarks/results/transfer/``) and batch 8, the class-code constructions of
``benchmarks/class_code_experiments.py`` (under its ``codes/``).  Only seen classes took part.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

#: the class-code constructions shown (``benchmarks/class_code_experiments.py`` names), with the
#: class vectors of the trained model ("run": the hand-written attributes)
CODE_BUILDS = ("lle", "lle1", "lle2", "lle5", "lle-all", "lle-reg0.1", "lle-c", "lle-signmean", "soft0.05", "soft0.1",
               "soft0.2-c", "ridge0.1", "ridge1", "repel0.3", "repel0.6", "lle+qe20", "lle+qe100", "lle+qe400",
               "ridge0.1+qe100", "semantic-branch")
CODE_SOURCES = ("attributes", "glove", "minilm-name", "minilm-desc", "attr+desc")


def levers_section(transfer_dir: Path, docs_dir: Path) -> list[str]:
    """The section, from the batch files in ``transfer_dir``; links relative to ``docs_dir``."""
    paths = sorted(transfer_dir.glob("*.jsonl"))
    if not paths:
        return []
    return ["## Levers tried on the validation protocol", "",
            "Each batch trains its settings on the same pools and pseudo-unseen folds of seen classes "
            "(`benchmarks/transfer_experiments.py`; the exact commands and which classes the pools held are in "
            f"[{os.path.relpath(transfer_dir / 'COMMANDS.md', docs_dir)}]"
            f"({os.path.relpath(transfer_dir / 'COMMANDS.md', docs_dir)})). No test query was used. "
            "32 bits; image and class-name mAP of the pseudo-unseen classes at the epoch with the best mean image "
            "mAP; the paired gaps compare each setting with its batch's baseline for the same dataset (the row "
            "named `*base`, else the batch's first), run by run.", "",
            *levers_table(paths), "", *selection_lines(paths), *class_code_section(transfer_dir / "codes")]


def pick(d: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """Per run of one setting (a batch file's row), the pseudo-unseen image and class-name mAP at the
    setting's epoch with the best mean image mAP, and that epoch (0-based)."""
    img = np.array([r["image"] for r in d["runs"]], dtype=float)
    cls = np.array([[np.nan if v is None else v for v in r["class"]] for r in d["runs"]], dtype=float)
    e = int(np.argmax(img.mean(0)))
    return img[:, e], cls[:, e], e


def gap(a: np.ndarray, b: np.ndarray) -> str:
    """The paired gap ``a - b`` over the same runs, ± its standard error ('-' when not paired)."""
    d = a - b
    if len(a) != len(b) or np.isnan(d).any():
        return "-"
    return f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}"


def levers_table(paths: list[Path]) -> list[str]:
    """Markdown: each batch file's settings against the batch's baseline for the same dataset (its
    row named ``*base``, else its first row), paired over the same runs.  A setting's epoch is the
    one with the best mean image mAP; the gaps are per-run differences of image and of class-name
    mAP, each setting at its own such epoch, with their standard errors."""
    lines = ["| batch | setting | runs | epoch | pseudo-unseen image mAP | paired image gap to the batch's "
             "baseline (± s.e.) | class-name mAP | paired class-name gap (± s.e.) | oracle mAP | distinct codes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    for path in paths:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        bases: dict[str, dict] = {}
        for d in rows:
            ds = d.get("dataset", "")
            if ds not in bases or (d["name"].endswith("base") and not bases[ds]["name"].endswith("base")):
                bases[ds] = d
        for d in rows:
            base = bases[d.get("dataset", "")]
            img, cls, e = pick(d)
            b_img, b_cls, _ = pick(base)
            extra = []
            for key, fmt in (("oracle", "{:.3f}"), ("distinct", "{:.0f}")):
                vals = [r.get(key) for r in d["runs"]]
                extra.append(fmt.format(np.mean([v[e] for v in vals])) if all(vals) else "-")
            first = d is base
            lines.append(f"| {path.stem} | {d['name']} | {len(d['runs'])} | {e + 1} | {img.mean():.3f} | "
                         f"{'-' if first else gap(img, b_img)} | "
                         f"{'-' if np.isnan(cls).all() else f'{np.nanmean(cls):.3f}'} | "
                         f"{'-' if first else gap(cls, b_cls)} | " + " | ".join(extra) + " |")
    return lines


def _epoch_change(m: np.ndarray, e_img: int, e_both: int) -> str:
    """Mean of curves ``m`` (runs x epochs) at epoch ``e_img`` -> at ``e_both``, and the paired change ± s.e."""
    g = m[:, e_both] - m[:, e_img]
    return (f"{m[:, e_img].mean():.3f} -> {m[:, e_both].mean():.3f} "
            f"({g.mean():+.3f} ± {g.std(ddof=1) / np.sqrt(len(g)):.3f})")


def selection_lines(paths: list[Path]) -> list[str]:
    """What choosing the epoch on image+class mAP (``train.select_on=image+class``) instead of image
    mAP would have changed, on the curves of the batches' relation-code rows (named ``*rel``)."""
    out = []
    for path in paths:
        for d in (json.loads(line) for line in path.read_text().splitlines() if line.strip()):
            if not d["name"].endswith("rel"):
                continue
            img = np.array([r["image"] for r in d["runs"]], dtype=float)
            cls = np.array([[np.nan if v is None else v for v in r["class"]] for r in d["runs"]], dtype=float)
            if np.isnan(cls).any():
                continue
            e_img, e_both = int(np.argmax(img.mean(0))), int(np.argmax(img.mean(0) + cls.mean(0)))
            out.append(f"| {path.stem} | {d['name']} | {len(d['runs'])} | {e_img + 1} | {e_both + 1} | "
                       f"{_epoch_change(img, e_img, e_both)} | {_epoch_change(cls, e_img, e_both)} |")
    if not out:
        return []
    return ["Choosing the epoch on the mean of pseudo-unseen image and class-name mAP (`train.select_on=image+class`) "
            "instead of image mAP alone, on the same curves (relation class codes):", "",
            "| batch | setting | runs | epoch (image) | epoch (image+class) | image mAP (paired change ± s.e.) "
            "| class-name mAP (paired change ± s.e.) |", "|---|---|---:|---:|---:|---:|---:|", *out, ""]


def class_code_section(codes_dir: Path) -> list[str]:
    """Batch 8: ways of turning a class vector into a query code, on the same trained models."""
    paths = sorted(codes_dir.glob("*.jsonl"))
    if not paths:
        return []
    runs = {}
    for path in paths:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            runs[rows[0]["dataset"]] = rows
    names = list(runs)

    def cell(rows: list[dict], key: str) -> str:
        if any(key not in r["map"] for r in rows):
            return "- | -"
        v = np.array([r["map"][key] for r in rows])
        d = v - np.array([r["map"]["run/lle"] for r in rows])
        return f"{v.mean():.3f} | " + ("-" if key == "run/lle" else
                                      f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f}")

    head = ("| " + " | ".join(f"{n} class-name mAP | paired gap to LLE (± s.e.)" for n in names) + " |",
            "|---|" + "---:|---:|" * len(names))
    lines = ["### Batch 8: how a class vector becomes a query code", "",
             "`benchmarks/class_code_experiments.py` (commands in COMMANDS.md): one VSB2-Net (attributes, "
             "`model.w_rec=3`, 32 bits, the tuned epochs) per pool and fold, "
             + ", ".join(f"{n}: {len(r)} runs" for n, r in runs.items())
             + "; then each pseudo-unseen class's query code is built in several ways from the *same* image codes, so "
             "the paired gap to the default (LLE weights over the 3 nearest training classes applied to their mean "
             "image codes, `model.class_codes=relation`) measures the construction alone. `lleN`: N neighbours; "
             "`-c`: vectors centred on the training classes' mean; `softT`: softmax of cosines at temperature T; "
             "`ridgeL`: a linear map from class vectors to mean codes, ridge L; `repelB`: the LLE code minus B times "
             "the mean code of the nearest training class (an unseen class's images are not that class's); "
             "`signmean`: means of binary codes; "
             "`+qeK`: query expansion (the code's K nearest database codes, averaged, as the new query; no label "
             "read); `semantic-branch`: sign(z_c).", "",
             "| construction (attributes) " + head[0], head[1]]
    for b in CODE_BUILDS:
        lines.append(f"| {b} | " + " | ".join(cell(runs[n], f"run/{b}") for n in names) + " |")
    for n in names:
        where = [r["class_code_distances"] for r in runs[n] if r.get("class_code_distances")]
        if where:
            mean = {k: np.mean([w[k] for w in where]) for k in where[0]}
            lines += ["", f"Where the default codes land on {n} (mean over {len(where)} runs, Hamming distance in bits "
                      f"of 32; `class_code_distances` of the one evaluation): {mean['to_own_images']:.1f} to the "
                      f"class's own images, {mean['to_oracle']:.1f} to its own mean-code oracle, "
                      f"{mean['to_nearest_other']:.1f} to the nearest training class's code; "
                      f"{mean['nearer_other_share']:.0%} of the pseudo-unseen classes' codes are nearer a training "
                      "class's code than their own oracle."]
    lines += ["", "Other class vectors for the same construction (the model was trained with attributes; only the "
              "query codes change):", "", "| class vectors / construction " + head[0], head[1]]
    for src in CODE_SOURCES:
        for b in ("lle", "lle-all", "ridge0.1"):
            lines.append(f"| {src} / {b} | " + " | ".join(cell(runs[n], f"{src}/{b}") for n in names) + " |")
    lines.append("| oracle (mean image code) | " + " | ".join(cell(runs[n], "oracle") for n in names) + " |")
    return lines + [""]
