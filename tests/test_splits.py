import numpy as np
import pytest

from vsb2net.data.splits import (
    choose_unseen,
    subsample_per_class,
    validation_size,
    validation_split,
    zero_shot_split,
)
from vsb2net.errors import VsbError

NAMES = [f"c{i}" for i in range(10)]


def labels(per_class=20, n_classes=10):
    return np.repeat(np.arange(n_classes), per_class)


def test_split_is_a_partition_and_trains_on_seen_database_only():
    y = labels()
    sp = zero_shot_split(y, [3, 7], 0.1, seed=1)
    q = np.concatenate([sp.query_unseen, sp.query_seen])
    assert len(np.intersect1d(q, sp.database)) == 0, "a query is also in the database"
    assert sorted(np.concatenate([q, sp.database]).tolist()) == list(range(len(y)))
    assert set(y[sp.train]) == set(range(10)) - {3, 7}
    assert set(y[sp.query_unseen]) == {3, 7}
    assert not np.isin(sp.train, q).any()
    assert np.isin(sp.train, sp.database).all()
    assert sp.sizes() == {"train": 8 * 18, "database": 180, "query_unseen": 4, "query_seen": 16}


def test_split_is_seeded():
    y = labels()
    a, b, c = (zero_shot_split(y, [0], 0.25, seed=s) for s in (5, 5, 6))
    assert np.array_equal(a.query_seen, b.query_seen)
    assert not np.array_equal(a.query_seen, c.query_seen)


def test_choose_unseen_by_name_and_by_seed():
    assert choose_unseen(NAMES, ["C7", "c2"], 2, 0) == [2, 7]
    s1 = choose_unseen(NAMES, [], 3, seed=4)
    assert len(s1) == 3 and s1 == choose_unseen(NAMES, [], 3, seed=4)
    with pytest.raises(VsbError, match="unknown unseen class"):
        choose_unseen(NAMES, ["cat"], 2, 0)
    with pytest.raises(VsbError, match="n_unseen"):
        choose_unseen(NAMES, [], 10, 0)


def test_validation_protocol_never_touches_unseen_classes_or_test_queries():
    y = labels()
    sp = zero_shot_split(y, [3, 7], 0.1, seed=1)
    val = validation_split(y, sp, 2, 0.1, seed=1)
    used = np.concatenate([val.train, val.database, val.query_unseen, val.query_seen])
    assert np.isin(used, sp.train).all()
    assert not set(val.unseen) & {3, 7}
    assert set(val.unseen) <= set(sp.seen)
    assert set(y[val.train]) == set(sp.seen) - set(val.unseen)
    with pytest.raises(VsbError, match="at least 1 seen class"):
        validation_split(y, sp, 0, 0.1, seed=1)


def test_validation_protocol_adapts_to_few_seen_classes():
    y = labels()
    # 8 seen classes: asking for 8 pseudo-unseen holds out 7 and says so
    sp = zero_shot_split(y, [3, 7], 0.1, seed=1)
    assert validation_size(8, 2) == (2, "")
    n, note = validation_size(8, 8)
    assert n == 7 and "room for 7 pseudo-unseen classes" in note and "n_val_unseen = 8" in note
    val = validation_split(y, sp, 8, 0.1, seed=1)
    assert len(val.unseen) == 7 and len(set(y[val.train])) == 1
    # a folder of 3 classes, one unseen: the default 2 becomes 1
    y3 = y[y < 3]
    sp3 = zero_shot_split(y3, [0], 0.1, seed=1)
    assert validation_size(len(sp3.seen), 2) == (1, validation_size(2, 2)[1])
    assert "room for 1 pseudo-unseen class (" in validation_size(2, 2)[1]
    val3 = validation_split(y3, sp3, 2, 0.1, seed=1)
    assert len(val3.unseen) == 1 and set(y3[val3.train]) == set(sp3.seen) - set(val3.unseen)
    # one seen class: nothing to hold out, and the message says what to do instead
    with pytest.raises(VsbError, match="at least 2 seen classes.*at least 3 classes.*select_epochs=false"):
        validation_split(y3, zero_shot_split(y3, [0, 1], 0.1, seed=1), 2, 0.1, seed=1)


def test_subsample_per_class():
    y = labels(per_class=30)
    keep = subsample_per_class(y, 5, seed=0)
    assert np.bincount(y[keep]).tolist() == [5] * 10
    assert len(subsample_per_class(y, None, 0)) == len(y)


def test_too_small_class_is_a_clear_error():
    y = np.array([0, 0, 1, 2, 2])
    with pytest.raises(VsbError, match="class 1 has 1 image"):
        zero_shot_split(y, [2], 0.5, seed=0)


def test_combination_split_numbers_every_pair_once():
    from vsb2net.data.splits import choose_unseen
    from vsb2net.errors import VsbError

    names = [f"c{i}" for i in range(10)]
    pairs = [tuple(choose_unseen(names, [], 2, k, combination=True)) for k in range(45)]
    assert len(set(pairs)) == 45 and pairs[0] == (0, 1) and pairs[-1] == (8, 9)
    with pytest.raises(VsbError, match="0 to 44"):
        choose_unseen(names, [], 2, 45, combination=True)


@pytest.mark.parametrize("n_classes, n_unseen", [(10, 2), (10, 3), (50, 10), (3, 1)])
def test_balanced_splits_are_distinct_and_hold_out_every_class_equally_often(n_classes, n_unseen):
    names = [f"c{i}" for i in range(n_classes)]
    splits = [tuple(choose_unseen(names, [], n_unseen, k, balanced=True)) for k in range(n_classes)]
    assert len(set(splits)) == n_classes and all(len(s) == n_unseen for s in splits)
    counts = np.bincount([c for s in splits for c in s], minlength=n_classes)
    assert counts.tolist() == [n_unseen] * n_classes
    with pytest.raises(VsbError, match=f"0 to {n_classes - 1}"):
        choose_unseen(names, [], n_unseen, n_classes, balanced=True)


def test_random_draws_repeat_splits_where_the_balanced_design_does_not():
    """Why the benchmark uses the design: 10 seeded draws of 2 of 10 classes repeat two pairs."""
    drawn = [tuple(choose_unseen(NAMES, [], 2, k)) for k in range(10)]
    assert len(set(drawn)) == 8
    assert len({tuple(choose_unseen(NAMES, [], 2, k, balanced=True)) for k in range(10)}) == 10
