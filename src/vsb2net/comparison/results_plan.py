"""What docs/RESULTS.md reports, as data: which datasets, which benchmarks beside each main table
(ablations, training-seed check, every unseen pair), the aims the document judges, and the order in
which the benchmarks are computed and their sections shown.

``benchmarks/make_results.py`` holds the one plan (:class:`ResultsPlan`); :mod:`.results_doc`
renders it from the cells.  A benchmark beside the main table may depend on the main table's cells
(the seed check and the pairs retrain its strongest methods), so its spec is read off the cells
there are when it is asked for.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..models import REFERENCE
from .cells import collect_cells
from .paired import best_rival
from .spec import BenchmarkSpec
from .tables import aggregate
from .tuned import TUNED_DIR

#: one dataset's benchmarks: the main table and those beside it
Stage = Literal["main", "seeds", "ablations", "pairs", "asymmetric"]


@dataclass(frozen=True)
class DatasetSpecs:
    """One dataset's benchmarks, as the plan names them now."""

    name: str
    main: BenchmarkSpec
    #: (train.seed, its benchmark) of the training-seed check; empty before the main table has a rival
    seeds: list[tuple[int, BenchmarkSpec]]
    ablations: BenchmarkSpec
    pairs: BenchmarkSpec
    asymmetric: BenchmarkSpec

    def every(self) -> list[BenchmarkSpec]:
        """The whole set of the dataset's benchmarks (the asymmetric table is left out: it recomputes
        main-table cells, which a full recompute gives with the asymmetric figures already in them)."""
        return [self.main, self.ablations, self.pairs] + [s for _, s in self.seeds]


@dataclass(frozen=True)
class ResultsPlan:
    #: the repository: where the cells and the tuned defaults are, and what the document's links start from
    root: Path
    #: dataset -> images per class (None: all)
    datasets: dict[str, int | None]
    #: the command that regenerates the document (the document names it)
    command: str
    #: seeded random unseen splits of the main tables
    splits: int
    #: the main tables: every method at every length, in this order
    main_methods: tuple[str, ...]
    #: VSB2-Net and its ablations (each switches one term off), on the main splits at one length
    ablation_methods: tuple[str, ...]
    ablation_bits: int
    #: the main tables train every cell with train.seed=0; VSB2-Net and the best baseline are retrained
    #: with these seeds at one length, to show how much of a gap the training seed alone moves
    seed_check_seeds: tuple[int, ...]
    seed_check_bits: int
    #: every pair of classes as the unseen split, at one length (no split-sampling noise at all):
    #: VSB2-Net and this many of the strongest other methods of the main table there (None: every main method)
    pairs_bits: int
    pair_rivals: int | None
    #: what the project set out to show (issue 11): VSB2-Net ahead of every baseline, paired, at this
    #: many of the code lengths, and class-name queries at this multiple of their chance level
    aim_wins: int
    aim_class_ratio: float
    #: the aim for computing one dataset's whole set of cells on the 2-core reference machine, minutes
    whole_set_aim_min: int
    #: every main method recomputed at one length on the main splits, its cells carrying the
    #: asymmetric ranking (real-valued query codes against the binary database) beside Hamming's
    asymmetric_bits: int = 32
    #: how the seeded stages draw each split's unseen classes: seeded random draws (``random``: split
    #: seeds may repeat a pair) or the balanced design (``balanced``: distinct splits, every class
    #: unseen equally often; :func:`vsb2net.data.splits.balanced_unseen`)
    unseen_split: Literal["random", "balanced"] = "random"
    #: settings every cell of the plan gets, whatever the tuned files say (e.g. the code layer)
    overrides: tuple[str, ...] = ()
    #: the name of the plan's tuned files (``<dataset>.<tuned_suffix>.yaml``; empty: ``<dataset>.yaml``)
    #: and the folder of its cells under benchmarks/results (empty: benchmarks/results itself)
    tuned_suffix: str = ""
    results_subdir: str = ""
    #: the training-seed check retrains every main method (True) or VSB2-Net and the best rival (False)
    seed_check_every_method: bool = False
    #: how `make_results.py --tune` tunes every method before computing (None: the plan's tuned files
    #: were written by the commands they name): Optuna trials per method, epoch cap, validation folds,
    #: at ``tune_bits``, with the plan's own settings
    tune_trials: int | None = None
    tune_max_epochs: int = 12
    tune_folds: int = 2
    tune_bits: int = 32
    #: the asymmetric table reads the main table's cells at ``asymmetric_bits`` (cells computed since
    #: every cell carries the asymmetric ranking) instead of its own recomputed ones
    asymmetric_in_main: bool = False
    #: the order a dataset's benchmarks are computed in: the seed check and the pairs read the main table
    compute_order: tuple[Stage, ...] = ("main", "seeds", "ablations", "pairs", "asymmetric")
    #: and the order of their sections in the document
    section_order: tuple[Stage, ...] = ("main", "ablations", "seeds", "pairs", "asymmetric")
    #: the benchmarks on the seeded random splits (``--splits N`` computes their first N); the
    #: every-pair table's splits are the pairs themselves
    seeded_stages: tuple[Stage, ...] = ("main", "seeds", "ablations", "asymmetric")

    @property
    def results_dir(self) -> Path:
        results = self.root / "benchmarks" / "results"
        return results / self.results_subdir if self.results_subdir else results

    def tuned_file(self, name: str) -> Path:
        return TUNED_DIR / (f"{name}.{self.tuned_suffix}.yaml" if self.tuned_suffix else f"{name}.yaml")

    def seeded_overrides(self) -> list[str]:
        """What every benchmark on the plan's seeded splits gets: the plan's settings and its split design."""
        return [*self.overrides, *([f"data.unseen_split={self.unseen_split}"] if self.unseen_split != "random" else [])]

    @property
    def docs_dir(self) -> Path:
        """Where the document lives: its links are relative to it."""
        return self.root / "docs"

    def main_spec(self, name: str) -> BenchmarkSpec:
        return BenchmarkSpec(dataset=name, max_per_class=self.datasets[name], splits=self.splits,
                             methods=list(self.main_methods), tuned=str(self.tuned_file(name)),
                             out=str(self.results_dir / name), overrides=self.seeded_overrides()).check()

    def beside(self, main: BenchmarkSpec, suffix: str, methods: list[str], bits: int, splits: int,
               overrides: list[str]) -> BenchmarkSpec:
        """A benchmark beside the main one: same dataset, subsample, tuned file and settings (``overrides``
        on top), its own cells."""
        return BenchmarkSpec(dataset=main.dataset, max_per_class=main.max_per_class, tuned=main.tuned,
                             methods=list(methods), bits=[bits], splits=splits,
                             overrides=[*main.overrides, *overrides],
                             out=str(self.results_dir / f"{main.dataset}-{suffix}")).check()

    def seed_specs(self, main: BenchmarkSpec) -> list[tuple[int, BenchmarkSpec]]:
        """Every main method (``seed_check_every_method``), or VSB2-Net and the main table's best baseline,
        at ``seed_check_bits``, once per seed."""
        if self.seed_check_bits not in main.bits:
            return []
        if self.seed_check_every_method:
            methods = list(main.methods)
        else:
            rival = best_rival(aggregate(collect_cells(Path(main.out), main), "unseen"), main.methods,
                               self.seed_check_bits)
            if rival is None:
                return []
            methods = [REFERENCE, rival]
        return [(seed, self.beside(main, f"seed{seed}", methods, self.seed_check_bits, main.splits,
                                   [f"train.seed={seed}"])) for seed in self.seed_check_seeds]

    def ablation_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        return self.beside(main, "ablations", list(self.ablation_methods), self.ablation_bits, main.splits, [])

    def pairs_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        """All C(10, 2) = 45 unseen pairs (data.unseen_split=combination) at ``pairs_bits``, for VSB2-Net
        and the ``pair_rivals`` other methods with the highest mean unseen-class mAP of the main table there
        (every main method when ``pair_rivals`` is None)."""
        if self.pair_rivals is None:
            rivals = [m for m in main.methods if m != REFERENCE]
        else:
            unseen = aggregate(collect_cells(Path(main.out), main), "unseen")
            others = [m for m in main.methods if not m.startswith(REFERENCE) and (m, self.pairs_bits) in unseen]
            rivals = sorted(others, key=lambda m: -unseen[(m, self.pairs_bits)][0])[:self.pair_rivals]
        # the pairs are their own split design: the plan's settings without its split design
        main = dataclasses.replace(main, overrides=list(self.overrides))
        return self.beside(main, "pairs", [REFERENCE, *rivals], self.pairs_bits, 45, ["data.unseen_split=combination"])

    def asymmetric_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        if self.asymmetric_in_main:
            return dataclasses.replace(main, bits=[self.asymmetric_bits])
        return self.beside(main, f"asym{self.asymmetric_bits}", list(self.main_methods), self.asymmetric_bits,
                           main.splits, [])

    def stage_specs(self, name: str, stage: Stage) -> list[BenchmarkSpec]:
        """The benchmarks of one stage of dataset ``name``, read off the cells there are now."""
        main = self.main_spec(name)
        if stage == "main":
            return [main]
        if stage == "seeds":
            return [s for _, s in self.seed_specs(main)]
        if stage == "asymmetric":
            return [self.asymmetric_spec(main)]
        return [self.ablation_spec(main) if stage == "ablations" else self.pairs_spec(main)]

    def dataset_specs(self, name: str) -> DatasetSpecs:
        main = self.main_spec(name)
        return DatasetSpecs(name, main, self.seed_specs(main), self.ablation_spec(main), self.pairs_spec(main),
                            self.asymmetric_spec(main))


def first_splits(spec: BenchmarkSpec, splits: int) -> BenchmarkSpec:
    """The same benchmark on its first ``splits`` splits only (its cells are the same files)."""
    return dataclasses.replace(spec, splits=min(spec.splits, splits))
