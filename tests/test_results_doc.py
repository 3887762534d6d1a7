"""docs/RESULTS.md's plan (benchmarks/make_results.py's PLAN) and the parts of its rendering that
test_benchmark.py's regeneration test does not pin down on its own."""
import importlib.util
from pathlib import Path

import pytest

from vsb2net.comparison.results_doc import NOT_LEADING, README_END, README_START, readme_with_block, standing_section

ROOT = Path(__file__).resolve().parent.parent


def _plan():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "benchmarks" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PLAN


def test_the_plan_names_the_committed_benchmarks():
    plan = _plan()
    for name in plan.datasets:
        specs = plan.dataset_specs(name)
        assert Path(specs.main.out) == plan.results_dir / name and specs.main.splits == plan.splits
        assert specs.ablations.bits == [plan.ablation_bits] and specs.ablations.methods == list(plan.ablation_methods)
        assert [s for s, _ in specs.seeds] == list(plan.seed_check_seeds)
        assert specs.pairs.bits == [plan.pairs_bits]
        assert specs.asymmetric.bits == [plan.asymmetric_bits] and specs.asymmetric.methods == list(plan.main_methods)
        # the asymmetric table reads the main table's cells; computing it would rewrite the main folder's tables
        assert plan.stage_specs(name, "asymmetric") == []
        for sp in specs.every():
            assert (Path(sp.out) / "cells").is_dir(), sp.out
    # every stage is computed and shown once; the seed check and pairs come after the main table
    assert sorted(plan.compute_order) == sorted(plan.section_order)
    assert plan.compute_order[0] == "main" and "pairs" not in plan.seeded_stages


def test_readme_block_replaces_only_what_is_between_the_markers():
    text = f"intro\n{README_START}\nold\n{README_END}\nrest\n"
    out = readme_with_block(text, ["- a", "- b"])
    assert out.startswith(f"intro\n{README_START}\n- a\n- b\nSee [docs/RESULTS.md]")
    assert out.endswith(f"{README_END}\nrest\n")
    assert readme_with_block("no markers", ["- a"]) is None


def test_a_missed_aim_brings_its_conclusion():
    plan = _plan()
    met = standing_section(plan, ["- x"], leads=True, transfers=True)
    assert met == ["## Where VSB2-Net stands", "", "- x", ""]
    missed = standing_section(plan, ["- x"], leads=False, transfers=False)
    assert missed[4] == NOT_LEADING and f"below {plan.aim_class_ratio:.0f}x their chance" in missed[6]


def test_the_method_lists_of_the_docs_are_the_registrys():
    """README.md and docs/DATASETS.md list the methods in a block benchmarks/make_methods.py writes
    from the registry: the committed blocks are what it gives now (regenerate them when not)."""
    from vsb2net.comparison import method_lists
    from vsb2net.models import METHODS, REFERENCE

    for path, text, indent in ((ROOT / "README.md", method_lists.readme_text(), "  "),
                               (ROOT / "docs" / "DATASETS.md", method_lists.datasets_text(), "")):
        committed = path.read_text()
        assert method_lists.with_block(committed, text, indent=indent) == committed, \
            f"{path.name}: run .venv/bin/python benchmarks/make_methods.py"
    others = [n for names in method_lists.others_by_family().values() for n in names]
    assert sorted(n.strip("`") for n in others) == sorted(set(METHODS.names()) - {REFERENCE})
    out = method_lists.with_block("a <!-- methods:start -->old<!-- methods:end -->; b", "new words")
    assert out == "a <!-- methods:start -->new words<!-- methods:end -->; b"
    assert method_lists.with_block("no markers", "x") is None


def _module():
    spec = importlib.util.spec_from_file_location("make_results", ROOT / "benchmarks" / "make_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plan_has_distinct_balanced_splits_every_method_seeded_and_paired():
    from collections import Counter

    from vsb2net.comparison.spec import cell_config, load_tuned
    from vsb2net.data.splits import choose_unseen

    mr = _module()
    plan = mr.PLAN
    names = [f"c{i}" for i in range(10)]
    for name in plan.datasets:
        specs = plan.dataset_specs(name)
        tuned = load_tuned(specs.main.tuned) if Path(specs.main.tuned).is_file() else {}
        if tuned:  # every method tuned with the same budget, as the plan says
            from vsb2net.models import METHODS, variants

            tunable = {variants()[m][0] for m in plan.main_methods if METHODS.get(variants()[m][0]).tunable}
            assert tuned["search"]["trials"] == {m: plan.tune_trials for m in tunable}
            assert tuned["max_epochs"] == plan.tune_max_epochs and tuned["val_folds"] == plan.tune_folds
            assert all(c["model.code_layer"] == "center" for c in tuned["methods"].values())
        unseen = []
        for split in range(plan.splits):
            cfg = cell_config(specs.main, tuned, "dsh", 32, split)
            assert cfg.model.code_layer == "center" and cfg.data.unseen_split == "balanced"
            unseen.append(tuple(choose_unseen(names, [], cfg.data.n_unseen, cfg.data.split_seed,
                                              balanced=cfg.data.unseen_split == "balanced")))
        # 10 distinct splits, every class unseen exactly twice
        assert len(set(unseen)) == plan.splits == 10
        assert Counter(c for u in unseen for c in u) == {c: 2 for c in range(10)}
        # 3 training seeds per split at 32 bits for every main method (seed 0 is the main table's)
        assert 0 not in plan.seed_check_seeds and len(plan.seed_check_seeds) >= 2
        assert [sp.methods for _, sp in specs.seeds] == [list(plan.main_methods)] * len(plan.seed_check_seeds)
        assert all(sp.bits == [32] and sp.splits == plan.splits for _, sp in specs.seeds)
        # the 45 pairs for every main method, in their own split design, with the plan's settings
        assert sorted(specs.pairs.methods) == sorted(plan.main_methods) and specs.pairs.splits == 45
        pair_cfg = cell_config(specs.pairs, tuned, "dsh", 32, 44)
        assert pair_cfg.data.unseen_split == "combination" and pair_cfg.model.code_layer == "center"
        # its cells carry the asymmetric ranking: the asymmetric table reads them, nothing is recomputed
        assert specs.asymmetric.out == specs.main.out and specs.asymmetric.bits == [32]


def test_every_seed_lines_average_the_seeds_before_pairing():
    import numpy as np

    from vsb2net.comparison.results_doc import every_seed_lines, seed_means

    def cell(m, split, v):
        return {"variant": m, "split": split, "bits": 32, "unseen": {"map": v}}

    # vsb2net 0.5 / 0.7 on splits 0 / 1 whatever the seed; dsh 0.4 then 0.6 (seed 0) and 0.2 / 0.4 (seed 1)
    by_seed = [(0, [cell("vsb2net", 0, .5), cell("vsb2net", 1, .7), cell("dsh", 0, .4), cell("dsh", 1, .6)]),
               (1, [cell("vsb2net", 0, .5), cell("vsb2net", 1, .7), cell("dsh", 0, .2), cell("dsh", 1, .4),
                    cell("dsh", 2, .9)])]  # split 2 has one seed only: left out
    cells, spread, per_seed = seed_means(by_seed, 32)
    means = {(c["variant"], c["split"]): c["unseen"]["map"] for c in cells}
    assert means == {("vsb2net", 0): .5, ("vsb2net", 1): .7, ("dsh", 0): pytest.approx(.3),
                     ("dsh", 1): pytest.approx(.5)}
    assert per_seed["dsh"] == pytest.approx([.5, .3])  # over splits 0 and 1 only
    assert spread["vsb2net"] == 0 and spread["dsh"] == pytest.approx(np.std([.4, .2], ddof=1))
    lines = every_seed_lines(32, by_seed, ["vsb2net", "dsh"], 2)
    row = next(x for x in lines if x.startswith("| dsh |"))
    # gaps 0.2 on both splits: mean +0.200, standard error 0
    assert "| dsh | 0.500 | 0.300 | 0.141 |" in row and "+0.200 ± 0.000" in row


def test_the_whole_set_line_names_the_commits_its_cells_came_from():
    from vsb2net.comparison.results_doc import provenance

    clean = "0123456789abcdef0123456789abcdef01234567"
    assert provenance([{"git_commit": clean}] * 3) == "every cell computed from one clean commit, `0123456789`"
    mixed = provenance([{"git_commit": clean}] * 2 + [{"git_commit": "fedcba9876" + clean[10:] + "+dirty"}])
    assert mixed == ("cells computed from `0123456789` (2), `fedcba9876` with uncommitted source changes (1)")
