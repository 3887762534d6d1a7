"""Replay a tuned file's stored fold curves with an early stop: for each patience, which setting and
epoch each method would have chosen, and how many epochs its finished trials would have trained.

    .venv/bin/python benchmarks/replay_patience.py [TUNED.yaml] [PATIENCE ...]

The default file is a copy of Animal-MNIST's committed tuning, made before the early stop existed,
which ran every finished trial to the 12-epoch cap
(benchmarks/results/transfer/tuning/animal-mnist.v2-no-patience.yaml). The rule is the tuning's own
(vsb2net.comparison.tuning): a fold stops after PATIENCE epochs without a better pseudo-unseen mAP, a
later fold trains no longer than the shortest before it, the mean over folds runs over the epochs
every fold reached. Pruned trials are left as they were (the pruner's steps do not change); so is the
sampler's path, which in a real rerun follows the scores it sees.
"""
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "benchmarks/results/transfer/tuning/animal-mnist.v2-no-patience.yaml"


def stopped_length(curve: list[float], patience: int) -> int:
    """Epochs a fold trains before ``patience`` epochs pass without a better score."""
    best, stale = -np.inf, 0
    for epoch, value in enumerate(curve, 1):
        best, stale = (value, 0) if value > best else (best, stale + 1)
        if stale >= patience:
            return epoch
    return len(curve)


def replay(trials: list[dict], patience: int) -> tuple[dict[str, tuple], int, int]:
    """Per method (best mean, trial, epoch) under ``patience``; epochs trained before and after."""
    best: dict[str, tuple] = {}
    before = after = 0
    for row in trials:
        if row["state"] != "complete" or "folds" not in row:
            continue
        limit, cut = len(row["folds"][0]), []
        for curve in row["folds"]:
            n = stopped_length(curve[:limit], patience)
            cut.append(curve[:n])
            limit = min(limit, n)
            before += len(curve)
            after += n
        mean = np.mean([c[:limit] for c in cut], axis=0)
        epoch = int(np.argmax(mean))
        if row["method"] not in best or mean[epoch] > best[row["method"]][0]:
            best[row["method"]] = (float(mean[epoch]), row["trial"], epoch + 1)
    return best, before, after


def main() -> None:
    args = sys.argv[1:]
    path = Path(args.pop(0)) if args and not args[0].isdigit() else DEFAULT
    patiences = [int(a) for a in args] or [3, 4, 5]
    doc = yaml.safe_load(path.read_text())
    full, _, _ = replay(doc["trials"], 10 ** 6)
    print(f"{path.name}: {len(full)} methods; choice without an early stop -> with each patience")
    for patience in patiences:
        best, before, after = replay(doc["trials"], patience)
        kept = [m for m in full if best[m][1:] == full[m][1:]]
        print(f"patience {patience}: epochs of finished trials {before} -> {after} ({after / before:.0%}); "
              f"{len(kept)} of {len(full)} choices kept")
        for m in sorted(set(full) - set(kept)):
            (a, ta, ea), (b, tb, eb) = full[m], best[m]
            print(f"  {m}: trial {ta} epoch {ea} ({a:.3f}) -> trial {tb} epoch {eb} ({b:.3f})")


if __name__ == "__main__":
    main()
