"""What RESULTS.md states beside its averages (vsb2net.comparison.soundness): collapsed cells flagged,
epochs at the tuning cap named, repeated splits counted once in the ranking."""
from pathlib import Path

from vsb2net.comparison.soundness import (
    at_cap_lines,
    collapse_lines,
    collapsed_cells,
    independent_blocks,
    ranking_lines,
)
from vsb2net.comparison.spec import BenchmarkSpec


def _cell(method, split, unseen, seen_seen, distinct, value=0.3):
    return {"variant": method, "method": method, "bits": 32, "split": split, "unseen_classes": unseen,
            "seen": {"map_chance": 0.1, "distinct_codes": distinct, "map_seen_db": seen_seen, "map": seen_seen},
            "unseen": {"map": value, "map_unseen_db": 0.6}}


def test_a_collapsed_learned_cell_is_named_and_the_floor_is_not():
    rows = [_cell("adsh", 0, ["a", "b"], 0.30, 1), _cell("dpsh", 0, ["a", "b"], 0.16, 400),
            _cell("csq", 0, ["a", "b"], 0.9, 800), _cell("random", 0, ["a", "b"], 0.126, 7000)]
    bad = collapsed_cells(rows)
    assert bad == {("adsh", 32, 0): "1 distinct codes for 10 classes",
                   ("dpsh", 32, 0): "seen@seen 0.160 within 0.05 of chance 0.125"}
    text = " ".join(collapse_lines(rows))
    assert text.startswith("**Collapsed cells (2), averaged in the table above and flagged here:**")
    assert "adsh 32 bits split 0" in text and "csq" not in text and "random" not in text
    assert collapse_lines(rows[2:])[0].startswith("Health: no learned method's cell collapsed")


def test_epochs_at_the_cap_are_named():
    tuned = {"max_epochs": 12, "methods": {"a": {"train.epochs": 12}, "b": {"train.epochs": 3}}}
    assert at_cap_lines(tuned) == ["**Epoch count at the tuning cap (12):** a; raise `--max-epochs` and retune.", ""]
    assert at_cap_lines({"methods": {}}) == []


def test_repeated_splits_are_one_block(tmp_path):
    rows = [_cell(m, s, u, 0.9, 500, value=v + s / 100)
            for s, u in enumerate([["a", "b"], ["c", "d"], ["a", "b"], ["e", "f"], ["g", "h"], ["i", "j"]])
            for m, v in (("vsb2net", 0.4), ("lsh", 0.3), ("csq", 0.2))]
    assert independent_blocks(rows) == {0: "a+b", 1: "c+d", 3: "e+f", 4: "g+h", 5: "i+j"}
    spec = BenchmarkSpec(dataset="toy", methods=["vsb2net", "lsh", "csq"], bits=[32], splits=6)
    lines = ranking_lines(rows, spec, 32, "unseen@all", tmp_path / "cd.png", tmp_path)
    assert "the 5 distinct unseen splits (1 split(s) that repeat" in lines[2]
    assert "no pair can be shown to differ here" in lines[2]  # 5 blocks: 2/2^5 x 3 pairs > 0.05
    assert "| vsb2net | 1.0 |" in "\n".join(lines) and Path(tmp_path / "cd.png").is_file()


def test_the_every_pair_table_of_every_method_ranks_them_over_its_pairs(tmp_path, monkeypatch):
    """With every method on the 45 pairs, the pairs section ranks all methods over the pairs (45 blocks:
    the omnibus test with power)."""
    import itertools

    from vsb2net.comparison import results_doc
    from vsb2net.comparison.results_plan import ResultsPlan

    pairs = list(itertools.combinations("abcdefghij", 2))
    rows = [_cell(m, s, list(u), 0.9, 500, value=v + (s % 7) / 100 + (0.02 if m == "lsh" and s % 3 else 0))
            for s, u in enumerate(pairs) for m, v in (("vsb2net", 0.4), ("lsh", 0.38), ("csq", 0.2))]
    for r in rows:
        r["unseen"]["map_unseen_db"] = r["unseen"]["map"] + 0.3
    monkeypatch.setattr(results_doc, "collect_cells", lambda out, spec: rows)
    monkeypatch.setattr(results_doc, "load_tuned", lambda path: {})
    monkeypatch.setattr(results_doc, "verdict_lines", lambda *a: [])
    spec = BenchmarkSpec(dataset="toy", methods=["vsb2net", "lsh", "csq"], bits=[32], splits=45,
                         out=str(tmp_path))
    plan = ResultsPlan(root=tmp_path, datasets={"toy": None}, command="x", splits=10, main_methods=("vsb2net",),
                       ablation_methods=(), ablation_bits=32, seed_check_seeds=(1, 2), seed_check_bits=32,
                       pairs_bits=32, aim_wins=3, aim_class_ratio=3.0, whole_set_aim_min=180)
    text = "\n".join(results_doc.pairs_section(plan, spec))
    assert "### Ranking of all methods: unseen@all at 32 bits" in text and "the 45 distinct unseen splits" in text
    assert "### Ranking of all methods: unseen@unseen at 32 bits" in text
    assert (tmp_path / "cd_unseen_at_all.png").is_file()


def test_health_runs_at_convergence_are_set_beside_the_bar(tmp_path):
    import json

    from vsb2net.comparison.soundness import convergence_lines

    health = tmp_path / "transfer" / "health"
    health.mkdir(parents=True)
    run = {"split": 0, "epochs": 15, "unseen@all": 0.3, "seen_distinct": 100, "dead_units": 0.5, "feature_rank": 40.0}
    path = health / "toy.jsonl"
    path.write_text("\n".join(json.dumps({**run, **r}) for r in [
        {"method": "greedyhash", "over": ["data.unseen_split=balanced"], "seen@seen": 0.9},
        {"method": "dsh", "over": [], "seen@seen": 0.8},
        {"method": "dsh", "over": ["model.margin_k=2"], "seen@seen": 0.88}]) + "\n")
    text = "\n".join(convergence_lines(path, tmp_path / "docs"))
    assert "| dsh | - | 0.800 | -0.100 (below the bar) |" in text
    assert "| dsh | model.margin_k=2 | 0.880 | -0.020 | 100 | 0.50 | 40.0 | 0.300 |" in text
    assert "(../transfer/COMMANDS.md)" in text
    assert convergence_lines(tmp_path / "missing.jsonl", tmp_path) == []
