"""Move committed benchmark cells to the settings hash that leaves out unread options.

Since methods declare the ``model.*`` options they read (``HashingMethod.options``), a cell's hash
(``vsb2net.bench.cells.settings_hash``) leaves the others out.  A cell computed before that stores
the hash of its whole configuration.  This script checks, for every cell file, that the stored hash
is the whole-configuration hash of the configuration the file stores (so the cell is exactly what
that configuration computes), and only then replaces it by the new hash of the same configuration;
nothing is recomputed and no figure changes.  A cell whose stored hash does not match is left as it
is (it is stale, or already moved).

    .venv/bin/python benchmarks/rehash_cells.py            # every cell under benchmarks/results/
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from vsb2net.bench.cells import _NOT_HASHED, CELL_FORMAT, settings_hash
from vsb2net.config import ADDED_OPTIONS
from vsb2net.io import write_json

ROOT = Path(__file__).resolve().parents[1]


def whole_config_hash(config: dict) -> str:
    """The hash cells stored before the options declaration: every option of every method."""
    flat = {f"{section}.{k}": v for section, values in config.items() if isinstance(values, dict)
            for k, v in values.items()}
    flat = {k: v for k, v in flat.items()
            if k not in _NOT_HASHED and not (k in ADDED_OPTIONS and v == ADDED_OPTIONS[k])}
    return hashlib.sha256(json.dumps({"cell_format": CELL_FORMAT, "config": flat}, sort_keys=True,
                                     default=str).encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", nargs="?", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    moved = same = left = 0
    for path in sorted(Path(args.root).glob("*/cells/*.json")):
        cell = json.loads(path.read_text())
        new = settings_hash(cell["config"])
        if cell.get("config_hash") == new:
            same += 1
        elif cell.get("config_hash") == whole_config_hash(cell["config"]):
            cell["config_hash"] = new
            write_json(path, cell)
            moved += 1
        else:
            left += 1
    print(f"{moved} cells moved to the new hash, {same} already on it, {left} left (their stored hash matches "
          "neither: stale cells, recomputed when their benchmark runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
