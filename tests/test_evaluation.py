"""The one evaluation module: each transfer metric checked against a direct computation on tiny,
hand-made codes, and the method interface it relies on."""
import itertools

import numpy as np
import pytest
import torch

from vsb2net.codes import pack_codes
from vsb2net.data.splits import ZeroShotSplit
from vsb2net.evaluation.model_eval import (
    chance_ap,
    evaluate_model,
    semantic_alignment,
    validation_score,
    zero_shot_accuracy,
)
from vsb2net.evaluation.record import summary
from vsb2net.models import METHODS, HashingMethod
from vsb2net.registry import Registry


def _ap(ranked_relevance):
    rel = np.asarray(ranked_relevance, dtype=float)
    hits = np.cumsum(rel)
    return float((rel * hits / np.arange(1, len(rel) + 1)).sum() / max(rel.sum(), 1))


@pytest.mark.parametrize("n,r", [(1, 1), (5, 1), (6, 3), (7, 7)])
def test_chance_ap_is_the_mean_over_every_order(n, r):
    orders = {p for p in itertools.permutations([1] * r + [0] * (n - r))}
    assert chance_ap([r], n)[0] == pytest.approx(np.mean([_ap(o) for o in orders]), abs=1e-12)


class Lookup(HashingMethod):
    """Codes are looked up: an input is an index into a table of +-1 image codes."""

    codes_classes = True

    def __init__(self, image_codes, class_codes):
        super().__init__()
        self.register_buffer("img", torch.tensor(image_codes, dtype=torch.float32))
        self.register_buffer("cls", torch.tensor(class_codes, dtype=torch.float32))

    def hash_images(self, x):
        return self.img[x[:, 0].long()]

    def hash_classes(self, vectors):
        return self.cls[vectors[:, 0].long()]


def _toy():
    # 3 classes, 8 bits; class 2 is unseen.  Database: 4 items of each class; queries: 1 per class.
    base = np.array([[1] * 8, [-1] * 8, [1] * 4 + [-1] * 4], dtype=np.float32)
    rng = np.random.default_rng(0)
    codes, labels = [], []
    for c in range(3):
        for j in range(5):
            code = base[c].copy()
            if j % 2:
                code[rng.integers(8)] *= -1
            codes.append(code)
            labels.append(c)
    codes, labels = np.array(codes), np.array(labels)
    database = np.array([i for i in range(15) if i % 5 != 0])
    split = ZeroShotSplit(seen=[0, 1], unseen=[2], train=database[labels[database] != 2], database=database,
                          query_unseen=np.array([10]), query_seen=np.array([0, 5]))
    class_codes = np.stack([base[0], base[1], np.r_[[1] * 4, [-1] * 3, [1]]])  # class 2's is one bit off
    vectors = np.arange(3, dtype=np.float32)[:, None]
    x = torch.arange(15, dtype=torch.float32)[:, None]
    return Lookup(codes, class_codes), x, labels, split, vectors


def test_evaluate_model_transfer_metrics_match_direct_computation():
    model, x, labels, split, vectors = _toy()
    m, enc = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), topk=(2,))
    db_codes = enc.packed["database"]
    db_labels = labels[split.database]
    u = m["unseen"]
    # unseen@unseen: the same query against class 2's database items only: all relevant
    assert u["map_unseen_db"] == pytest.approx(1.0)
    # distinct codes among class 2's 4 database items, and the tie group at the nearest distance
    assert u["distinct_codes"] == len(np.unique(db_codes[db_labels == 2], axis=0))
    q = enc.packed["query_unseen"]
    d = np.unpackbits(q ^ db_codes, axis=1).sum(1)
    assert u["nearest_tie_group"] == (d == d.min()).sum()
    # the class-name query of class 2 against the whole database, tie-aware AP by enumeration
    assert u["class_query"]["n_queries"] == 1 and u["class_query_chance"] == pytest.approx(chance_ap([4], 12)[0])
    # oracle: sign of the mean of class 2's database codes as the query
    mean_code = np.where(model.img[split.database[db_labels == 2]].numpy().mean(0) >= 0, 1, -1)
    assert u["oracle_class_map"] >= u["map_chance"]
    assert (pack_codes(mean_code[None]) == pack_codes(np.r_[[1] * 4, [-1] * 4][None])).all()
    assert u["zero_shot_accuracy"] == 1.0 and u["zero_shot_chance"] == 1.0
    # seen row: candidates are every class (generalised), chance 1/3
    assert m["seen"]["zero_shot_chance"] == pytest.approx(1 / 3)
    assert m["seen"]["zero_shot_accuracy"] == 1.0
    s = summary(m)
    assert set(s) == {"unseen", "seen", "protocols", "semantics"} and "pr_curve" not in s["unseen"]
    assert s["protocols"] == m["protocols"] == {
        "seen@seen": m["seen"]["map_seen_db"], "seen@all": m["seen"]["map"],
        "unseen@unseen": u["map_unseen_db"], "unseen@all": u["map"]}
    assert s["unseen"]["map@2"] == u["map@2"]


def test_class_code_distances_say_where_each_class_code_lands():
    model, x, labels, split, vectors = _toy()
    m, enc = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), curves=False)
    d = m["unseen"]["class_code_distances"]
    code = model.cls[2].numpy()
    own_items = model.img[split.database[labels[split.database] == 2]].numpy()
    assert d["to_own_images"] == pytest.approx(float((own_items != code).sum(1).mean()))
    # the oracle of class 2 is its base code [1]*4 + [-1]*4: one bit from the class code; the seen
    # codes (all +1, all -1) are 3 and 5 bits away, so the code is nearer its own images' oracle
    assert d["to_oracle"] == 1.0 and d["to_nearest_other"] == 3.0 and d["nearer_other_share"] == 0.0
    # a class code moved onto a seen class's code: nearer the other class than its own oracle
    model.cls[2] = model.cls[0]
    m, _ = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), curves=False)
    d = m["unseen"]["class_code_distances"]
    assert d["to_nearest_other"] == 0.0 and d["to_oracle"] == 4.0 and d["nearer_other_share"] == 1.0
    # seen row: class a's code now equals the unseen class's (0 bits), class b's is 8 bits from it
    assert m["seen"]["class_code_distances"]["to_nearest_other"] == 4.0


def test_class_queries_are_none_without_a_semantic_branch():
    model, x, labels, split, vectors = _toy()
    model.codes_classes = False
    m, _ = evaluate_model(model, x, labels, split, vectors, ["a", "b", "c"], torch.device("cpu"), curves=False)
    for row in ("unseen", "seen"):
        assert m[row]["class_query_map"] is None and m[row]["zero_shot_accuracy"] is None
        assert m[row]["oracle_class_map"] is not None and m[row]["class_code_distances"] is None
    assert validation_score(m, "image+class") == m["unseen"]["map"]


def test_validation_score_mixes_image_and_class_map():
    m = {"unseen": {"map": 0.4, "class_query_map": 0.2}}
    assert validation_score(m, "image") == 0.4
    assert validation_score(m, "image+class") == pytest.approx(0.3)


def test_zero_shot_accuracy_nearest_class_code():
    q = pack_codes(np.array([[1] * 8, [-1] * 8], dtype=np.float32))
    s = pack_codes(np.array([[-1] * 8, [1] * 7 + [-1]], dtype=np.float32))
    assert zero_shot_accuracy(q, np.array([7, 3]), s, [3, 7], 8) == 1.0
    assert zero_shot_accuracy(q, np.array([3, 7]), s, [3, 7], 8) == 0.0
    assert zero_shot_accuracy(q, np.array([3, 7]), None, [3, 7], 8) is None


def test_semantic_alignment_rank_correlation():
    # class vectors equal to the classes' mean standardised inputs agree perfectly with them
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(40, 6)))
    labels = np.repeat(np.arange(4), 10)
    f = x.numpy()
    f = (f - f.mean(0)) / (f.std(0) + 1e-6)
    cent = np.stack([f[labels == c].mean(0) for c in range(4)])
    assert semantic_alignment(x, labels, np.arange(40), [0, 1, 2, 3], cent) == pytest.approx(1.0)
    assert semantic_alignment(x, labels, np.arange(40), [0, 1], cent) is None  # too few pairs


def test_every_registered_method_declares_the_interface():
    for name in METHODS.names():
        cls = METHODS.get(name)
        assert issubclass(cls, HashingMethod)
        provides_classes = cls.hash_classes is not HashingMethod.hash_classes
        assert provides_classes == cls.codes_classes, name


def test_registry_refuses_a_class_without_the_base():
    reg = Registry("method", base=HashingMethod)
    with pytest.raises(TypeError, match="HashingMethod"):
        reg.register("x")(torch.nn.Module)
