"""Feature mode (MLP visual branch over precomputed features) and multi-label data, end to end,
on small .npy directories the tests write themselves (the `npy` dataset format)."""
import json

import numpy as np
import pytest
import torch

from vsb2net.cli import main
from vsb2net.data import load_dataset
from vsb2net.data.splits import class_targets, subsample_per_class, validation_split, zero_shot_split
from vsb2net.errors import VsbError
from vsb2net.models.backbones import build_backbone
from vsb2net.models.losses import classification_loss

FAST = ["--epochs", "2", "--bits", "16", "--no-progress", "--set", "model.feature_dim=32",
        "--set", "data.n_val_unseen=1"]
#: FAST for VSB2-Net (the default method): a narrower semantic branch too
FAST_VSB = [*FAST, "--set", "model.semantic_hidden=32"]


def _write_dir(d, x, labels, names, *, attributes=None, unseen=None, x_name="features.npy"):
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / x_name, x)
    np.save(d / "labels.npy", labels)
    (d / "classes.txt").write_text("\n".join(names) + "\n")
    if attributes is not None:
        np.save(d / "attributes.npy", attributes)
    if unseen is not None:
        (d / "unseen.txt").write_text("\n".join(unseen) + "\n")
    return d


def _class_features(n_classes=6, per_class=30, dim=20, seed=0):
    """Features that carry their class (class mean + noise) and attributes that describe the means."""
    rng = np.random.default_rng(seed)
    attributes = rng.normal(size=(n_classes, 8))
    means = attributes @ rng.normal(size=(8, dim)) * 2.0
    labels = np.repeat(np.arange(n_classes), per_class)
    x = means[labels] + rng.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels, attributes


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("features")
    x, labels, att = _class_features()
    names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    d = _write_dir(tmp / "data", x, labels, names, attributes=att, unseen=["beta", "zeta"])
    assert main(["run", "--dataset", "npy", "--data-root", str(d), *FAST_VSB, "--out", str(tmp / "runs"),
                 "--name", "feat"]) == 0
    return tmp / "runs" / "feat"


def test_feature_mode_trains_an_mlp_and_uses_the_datasets_split_and_attributes(feature_run):
    split = json.loads((feature_run / "split.json").read_text())
    assert split["unseen"] == ["beta", "zeta"]  # the proposed split (unseen.txt)
    state = torch.load(feature_run / "checkpoint.pt", weights_only=True)["state_dict"]
    assert "backbone.in_mean" in state and not any(k.startswith("backbone.features") for k in state)
    vectors = np.load(feature_run / "class_vectors.npy")
    assert vectors.shape == (6, 8)  # the attributes, not GloVe
    metrics = json.loads((feature_run / "metrics.json").read_text())
    # class-separable features: seen-class retrieval must be far above the 1/6 chance level
    assert metrics["seen"]["map"] > 0.5
    assert 0 <= metrics["unseen"]["map"] <= 1


def test_feature_run_evaluates_again_from_its_directory(feature_run):
    before = json.loads((feature_run / "metrics.json").read_text())
    assert main(["evaluate", str(feature_run)]) == 0
    after = json.loads((feature_run / "metrics.json").read_text())
    assert after["unseen"]["map"] == before["unseen"]["map"]


def _multilabel(n=240, n_concepts=5, dim=16, seed=1):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, n_concepts)) < 0.3).astype(np.uint8)
    labels[np.arange(n), rng.integers(0, n_concepts, n)] = 1  # at least one label each
    labels[:5] = 0  # unlabelled items, as in NUS-WIDE: the loader drops them
    means = rng.normal(size=(n_concepts, dim)) * 2
    x = labels @ means + rng.normal(size=(n, dim))
    return x.astype(np.float32), labels, rng.normal(size=(n_concepts, 6))


def test_multilabel_split_trains_only_on_items_without_unseen_concepts():
    _, labels, _ = _multilabel()
    labels = labels[5:]
    sp = zero_shot_split(labels, [1, 3], 0.2, seed=0)
    assert sp.unseen == [1, 3] and 1 not in sp.seen and 3 not in sp.seen
    assert not labels[sp.train][:, [1, 3]].any()
    assert labels[sp.query_unseen][:, [1, 3]].any(axis=1).all()
    assert not labels[sp.query_seen][:, [1, 3]].any()
    q = np.concatenate([sp.query_unseen, sp.query_seen])
    assert not np.intersect1d(q, sp.database).size and len(q) + len(sp.database) == len(labels)
    t = class_targets(labels, sp.train, sp.seen)
    assert t.shape == (len(sp.train), len(sp.seen)) and (t.sum(1) >= 1).all()
    val = validation_split(labels, sp, 1, 0.2, seed=0)
    assert set(val.unseen) <= set(sp.seen) and np.isin(val.database, sp.train).all()
    assert len(subsample_per_class(labels, 10, seed=0)) == 50  # 10 x 5 concepts


def test_multilabel_split_errors_are_clear():
    labels = np.array([[1, 1], [1, 1], [1, 1]], dtype=np.uint8)
    with pytest.raises(VsbError, match="no seen-class item is left"):
        zero_shot_split(labels, [1], 0.34, seed=0)


def test_classification_loss_of_one_label_rows_is_cross_entropy():
    logits = torch.randn(4, 3)
    y = torch.tensor([0, 2, 1, 1])
    rows = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(classification_loss(logits, rows), classification_loss(logits, y))


@pytest.mark.parametrize("method", ["vsb2net", "csq", "tsk"])
def test_multilabel_end_to_end(tmp_path, method):
    x, labels, att = _multilabel()
    names = ["sky", "water", "animal", "person", "building"]
    d = _write_dir(tmp_path / "data", x, labels, names, attributes=att, unseen=["person"])
    ds = load_dataset("npy", d)
    assert ds.multilabel and len(ds) == 235 and "5 items without any label dropped" in ds.source
    fast = FAST_VSB if method == "vsb2net" else FAST
    assert main(["run", "--dataset", "npy", "--data-root", str(d), *fast, "--set", f"model.method={method}",
                 "--out", str(tmp_path / "runs"), "--name", "ml"]) == 0
    metrics = json.loads((tmp_path / "runs" / "ml" / "metrics.json").read_text())
    assert metrics["unseen"]["n_queries"] > 0 and 0 <= metrics["unseen"]["map"] <= 1
    assert metrics["seen"]["map"] > 0.3  # relevance = sharing a label: high base rate, but not trivially 1
    if method != "csq":
        assert 0 <= metrics["unseen"]["zero_shot_accuracy"] <= 1
        assert metrics["unseen"]["class_query_map"] is not None


@pytest.mark.parametrize("case, match", [
    ("both", "exactly one of features.npy and images.npy"),
    ("no_classes", "no classes.txt"),
    ("count", "holds 10 items but the labels 9"),
    ("not01", "only 0 and 1"),
    ("not_npy", "not a .npy file"),
    ("no_root", "no directory given"),
    ("labels_txt_bad", "not a row of integers"),
])
def test_npy_dir_errors(tmp_path, case, match, monkeypatch):
    monkeypatch.delenv("VSB2NET_NPY_DIR", raising=False)
    x = np.zeros((10, 4), np.float32)
    d = _write_dir(tmp_path / "d", x, np.arange(10) % 2, ["a", "b"])
    root = d
    if case == "both":
        np.save(d / "images.npy", np.zeros((10, 4, 4), np.uint8))
    elif case == "no_classes":
        (d / "classes.txt").unlink()
    elif case == "count":
        np.save(d / "labels.npy", np.arange(9) % 2)
    elif case == "not01":
        np.save(d / "labels.npy", np.full((10, 2), 2))
    elif case == "not_npy":
        (d / "features.npy").write_text("1,2,3\n")
    elif case == "no_root":
        root = None
    elif case == "labels_txt_bad":
        (d / "labels.npy").unlink()
        (d / "labels.txt").write_text("0\n1\nx\n")
    with pytest.raises(VsbError, match=match):
        load_dataset("npy", root)


def test_labels_txt_and_images_npy(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    np.save(d / "images.npy", np.zeros((4, 6, 6), np.uint8))
    (d / "labels.txt").write_text("1 0\n0 1\n1 1\n0 1\n")
    (d / "classes.txt").write_text("a\nb\n")
    ds = load_dataset("npy", d)
    assert ds.kind == "image" and ds.multilabel and ds.class_counts().tolist() == [2, 3]


def test_backbone_must_fit_the_input():
    with pytest.raises(VsbError, match="cannot take precomputed features"):
        build_backbone("cnn28", (20,), 8)
    with pytest.raises(VsbError, match="cannot take images"):
        build_backbone("mlp", (1, 28, 28), 8)
    with pytest.raises(VsbError, match="loads no weights file"):
        build_backbone("cnn28", (1, 28, 28), 8, weights="/tmp/w.pth")
    assert build_backbone("auto", (20,), 8).out_dim == 8


def _write_nus_wide(d, n=120, seed=2):
    """The NUS-WIDE distribution layout, tiny: label files per concept and low-level feature files."""
    rng = np.random.default_rng(seed)
    concepts = ["sky", "water", "animal", "person", "buildings"]
    labels = (rng.random((n, len(concepts))) < 0.35).astype(np.uint8)
    labels[:3] = 0
    (d / "Groundtruth" / "AllLabels").mkdir(parents=True)
    (d / "ConceptsList").mkdir()
    (d / "ConceptsList" / "Concepts81.txt").write_text("\n".join(concepts) + "\n")
    for j, c in enumerate(concepts):
        (d / "Groundtruth" / "AllLabels" / f"Labels_{c}.txt").write_text("\n".join(map(str, labels[:, j])) + "\n")
    fdir = d / "NUS_WID_Low_Level_Features" / "Low_Level_Features"
    fdir.mkdir(parents=True)
    means = rng.normal(size=(len(concepts), 12)) * 2
    x = labels @ means + rng.normal(size=(n, 12))
    for name, block in (("Normalized_CH.dat", x[:, :7]), ("Normalized_EDH.dat", x[:, 7:])):
        (fdir / name).write_text("\n".join(" ".join(f"{v:.5f}" for v in row) + " " for row in block) + "\n")
    return labels


def test_nus_wide_distribution_layout_end_to_end(tmp_path):
    d = tmp_path / "NUS-WIDE"
    labels = _write_nus_wide(d)
    ds = load_dataset("nus-wide", d)
    kept = int(labels.any(axis=1).sum())
    assert ds.multilabel and ds.x.shape == (kept, 12) and ds.class_names == ["sky", "water", "animal", "person",
                                                                              "buildings"]
    assert ds.labels.sum() == labels.sum() and f"{120 - kept} images without any" in ds.source
    assert main(["run", "--dataset", "nus-wide", "--data-root", str(d), "--unseen", "person", *FAST_VSB,
                 "--set", "data.class_vectors=glove", "--out", str(tmp_path / "runs"), "--name", "nus"]) == 0
    metrics = json.loads((tmp_path / "runs" / "nus" / "metrics.json").read_text())
    assert metrics["unseen"]["n_queries"] > 0


@pytest.mark.parametrize("damage, match", [
    ("short_labels", "different number of lines"),
    ("bad_feature", "not a number"),
    ("short_features", "rows but the label files"),
    ("no_features", "no Low_Level_Features"),
])
def test_nus_wide_damaged_files(tmp_path, damage, match):
    d = tmp_path / "NUS-WIDE"
    _write_nus_wide(d)
    fdir = d / "NUS_WID_Low_Level_Features" / "Low_Level_Features"
    if damage == "short_labels":
        p = d / "Groundtruth" / "AllLabels" / "Labels_water.txt"
        p.write_text("\n".join(p.read_text().splitlines()[:-2]) + "\n")
    elif damage == "bad_feature":
        (fdir / "Normalized_CH.dat").write_text("0.1 abc\n")
    elif damage == "short_features":
        p = fdir / "Normalized_CH.dat"
        p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")
    elif damage == "no_features":
        import shutil
        shutil.rmtree(d / "NUS_WID_Low_Level_Features")
    with pytest.raises(VsbError, match=match):
        load_dataset("nus-wide", d)


def test_benchmark_on_multilabel_features_and_the_one_proposed_split(tmp_path):
    from vsb2net.comparison.cells import run_benchmark
    from vsb2net.comparison.spec import BenchmarkSpec

    x, labels, att = _multilabel()
    d = _write_dir(tmp_path / "data", x, labels, ["sky", "water", "animal", "person", "building"],
                   attributes=att, unseen=["person"])
    overrides = ["train.epochs=1", "model.feature_dim=16", "model.semantic_hidden=16"]
    with pytest.raises(VsbError, match="every split would be the same"):
        run_benchmark(BenchmarkSpec(dataset="npy", root=str(d), methods=["lsh"], bits=[16], splits=2,
                                    out=str(tmp_path / "b2"), overrides=overrides), progress=False, log=lambda *a: None)
    out = run_benchmark(BenchmarkSpec(dataset="npy", root=str(d), methods=["vsb2net", "tsk", "lsh"], bits=[16],
                                      splits=1, out=str(tmp_path / "b1"), overrides=overrides),
                        progress=False, log=lambda *a: None)
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == 3
    for c in cells:
        r = json.loads(c.read_text())
        assert r["unseen_classes"] == ["person"] and 0 <= r["unseen"]["map"] <= 1


def test_strided_cnn_has_cnn28s_layers_at_a_quarter_of_the_positions():
    import torch

    pooled, strided = build_backbone("cnn28", (1, 28, 28), 8), build_backbone("cnn28s", (1, 28, 28), 8)
    # the same parameter shapes: only the backbone name saved in a run's config tells the two apart
    assert {k: v.shape for k, v in pooled.state_dict().items()} == {k: v.shape for k, v in strided.state_dict().items()}
    convs = [m for m in strided.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.modules())
    x = torch.randn(3, 1, 28, 28)
    assert strided(x).shape == (3, 8)
    assert build_backbone("cnn28s", (3, 32, 32), 8)(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    with pytest.raises(VsbError, match="backbone cnn28s trains from random"):
        build_backbone("cnn28s", (1, 28, 28), 8, weights="/tmp/w.pth")
