"""What docs/RESULTS.md reports, as data: which datasets, which benchmarks beside each main table
(ablations, training-seed check, every unseen pair), the aims the document judges, and the order in
which the benchmarks are computed and their sections shown.

``benchmarks/make_results.py`` holds the one plan (:class:`ResultsPlan`); :mod:`.results_doc`
renders it from the cells.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..models import REFERENCE
from .spec import BenchmarkSpec
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
        """The whole set of the dataset's benchmarks (the asymmetric table is left out: it reads
        main-table cells)."""
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
    #: the main tables train every cell with train.seed=0; every main method is retrained with these
    #: seeds at one length, so that the training-seed spread enters the paired errors
    seed_check_seeds: tuple[int, ...]
    seed_check_bits: int
    #: every pair of classes as the unseen split, every main method, at one length (no split-sampling noise)
    pairs_bits: int
    #: what the project set out to show (issue 11): VSB2-Net ahead of every baseline, paired, at this
    #: many of the code lengths, and class-name queries at this multiple of their chance level
    aim_wins: int
    aim_class_ratio: float
    #: the aim for computing one dataset's whole set of cells on the 2-core reference machine, minutes
    whole_set_aim_min: int
    #: the asymmetric table: the main table's cells at this length (every cell carries the asymmetric
    #: ranking, real-valued query codes against the binary database, beside Hamming's)
    asymmetric_bits: int = 32
    #: settings every cell of the plan gets, whatever the tuned files say (e.g. the code layer)
    overrides: tuple[str, ...] = ()
    #: how `make_results.py --tune` tunes every method before computing: Optuna trials per method,
    #: epoch cap, validation folds, at ``tune_bits``, with the plan's own settings
    tune_trials: int = 20
    tune_max_epochs: int = 12
    tune_folds: int = 2
    tune_bits: int = 32
    #: the order a dataset's benchmarks are computed in
    compute_order: tuple[Stage, ...] = ("main", "seeds", "ablations", "pairs", "asymmetric")
    #: and the order of their sections in the document
    section_order: tuple[Stage, ...] = ("main", "ablations", "seeds", "pairs", "asymmetric")
    #: the benchmarks on the numbered splits of the balanced design (``--splits N`` computes their first
    #: N); the every-pair table's splits are the pairs themselves
    seeded_stages: tuple[Stage, ...] = ("main", "seeds", "ablations", "asymmetric")

    @property
    def results_dir(self) -> Path:
        return self.root / "benchmarks" / "results"

    def tuned_file(self, name: str) -> Path:
        return TUNED_DIR / f"{name}.yaml"

    def seeded_overrides(self) -> list[str]:
        """What every benchmark on the plan's seeded splits gets: the plan's settings and the balanced
        split design (distinct splits, every class unseen equally often;
        :func:`vsb2net.data.splits.balanced_unseen`)."""
        return [*self.overrides, "data.unseen_split=balanced"]

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
        """Every main method at ``seed_check_bits``, once per seed."""
        if self.seed_check_bits not in main.bits:
            return []
        return [(seed, self.beside(main, f"seed{seed}", list(main.methods), self.seed_check_bits, main.splits,
                                   [f"train.seed={seed}"])) for seed in self.seed_check_seeds]

    def ablation_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        return self.beside(main, "ablations", list(self.ablation_methods), self.ablation_bits, main.splits, [])

    def pairs_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        """All C(10, 2) = 45 unseen pairs (data.unseen_split=combination) at ``pairs_bits``, every main
        method (VSB2-Net first)."""
        # the pairs are their own split design: the plan's settings without its split design
        main = dataclasses.replace(main, overrides=list(self.overrides))
        methods = [REFERENCE, *(m for m in main.methods if m != REFERENCE)]
        return self.beside(main, "pairs", methods, self.pairs_bits, 45, ["data.unseen_split=combination"])

    def asymmetric_spec(self, main: BenchmarkSpec) -> BenchmarkSpec:
        return dataclasses.replace(main, bits=[self.asymmetric_bits])

    def stage_specs(self, name: str, stage: Stage) -> list[BenchmarkSpec]:
        """The benchmarks one stage of dataset ``name`` computes."""
        main = self.main_spec(name)
        if stage == "main":
            return [main]
        if stage == "seeds":
            return [s for _, s in self.seed_specs(main)]
        if stage == "asymmetric":
            # its cells are the main table's: running the main benchmark at one length would only rewrite
            # the main folder's table.md, results.csv, plot and spec.json with that length alone
            return []
        return [self.ablation_spec(main) if stage == "ablations" else self.pairs_spec(main)]

    def dataset_specs(self, name: str) -> DatasetSpecs:
        main = self.main_spec(name)
        return DatasetSpecs(name, main, self.seed_specs(main), self.ablation_spec(main), self.pairs_spec(main),
                            self.asymmetric_spec(main))


def first_splits(spec: BenchmarkSpec, splits: int) -> BenchmarkSpec:
    """The same benchmark on its first ``splits`` splits only (its cells are the same files)."""
    return dataclasses.replace(spec, splits=min(spec.splits, splits))
