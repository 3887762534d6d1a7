"""What a benchmark computes: methods and their ablations, code lengths, splits, and the
configuration each cell trains with (the tuned defaults of ``vsb2net tune`` under the variant's
switches and the ``--set`` overrides)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig, build_config, parse_overrides, setting_applies, setting_known
from ..errors import VsbError
from .tuned import load_tuned_file


def variants() -> dict[str, tuple[str, dict[str, object]]]:
    """Variant name -> (registered method, config overrides), from the method registry: every
    method, and each method's declared ablations (:func:`vsb2net.models.variants`)."""
    from ..models import variants as registered  # imports torch: only when a benchmark is built

    return registered()


def overrides_of(values: dict[str, object]) -> list[str]:
    return [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in values.items()]


def tuned_for(tuned: dict, variant: str) -> dict:
    methods = tuned.get("methods", {})
    if variant in methods:
        return dict(methods[variant])
    base = variants()[variant][0]
    return dict(methods.get(base, {}))


def load_tuned(path: str | Path | None) -> dict:
    """The tuned-defaults file at ``path`` (checked by :func:`vsb2net.comparison.tuned.load_tuned_file`);
    {} for none."""
    return load_tuned_file(path) if path else {}


@dataclass
class BenchmarkSpec:
    dataset: str = "animal-mnist"
    root: str | None = None
    methods: list[str] = field(default_factory=lambda: list(variants()))
    bits: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    splits: int = 5
    max_per_class: int | None = None
    tuned: str | None = None
    out: str = ""
    overrides: list[str] = field(default_factory=list)

    def check(self) -> BenchmarkSpec:
        known = variants()
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise VsbError(f"unknown method(s) {unknown}; known: {', '.join(known)} (see `vsb2net methods`).")
        if self.splits < 1:
            raise VsbError("--splits must be at least 1.")
        for b in self.bits:
            if b <= 0 or b % 8:
                raise VsbError(f"--bits {b}: code lengths must be positive multiples of 8.")
        for key in parse_overrides(self.overrides):
            if not setting_known(key):
                raise VsbError(f"--set {key}: unknown key for every method; `vsb2net methods` lists each method's "
                               "settings (a method parameter holds for the methods that have it).")
        self.out = self.out or f"benchmarks/results/{self.dataset}"
        return self


def cell_config(spec: BenchmarkSpec, tuned: dict, variant: str, bits: int, split: int) -> RunConfig:
    method, variant_overrides = variants()[variant]
    values = {"data.dataset": spec.dataset, "data.split_seed": split, "model.method": method,
              "model.bits": bits, "train.select_epochs": False, "train.progress": False}
    if spec.root:
        values["data.root"] = spec.root
    if spec.max_per_class:
        values["data.max_per_class"] = spec.max_per_class
    values.update(tuned_for(tuned, variant))
    values.update(variant_overrides)
    # a method parameter given with --set holds for the methods that have it
    mine = {k: v for k, v in parse_overrides(spec.overrides).items() if setting_applies(k, method)}
    return build_config(None, overrides_of(values) + [f"{k}={v}" for k, v in mine.items()])


def cell_path(out: Path, variant: str, bits: int, split: int) -> Path:
    return out / "cells" / f"{variant}_{bits}bits_split{split}.json"


