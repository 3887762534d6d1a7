"""Ranking many methods over blocks (vsb2net.comparison.ranking): the omnibus and pairwise tests from
scipy and scikit-posthocs, the Nemenyi critical difference the issue quotes, the smallest gap a
comparison could detect."""
import numpy as np
import pytest

from vsb2net.comparison.ranking import nemenyi_cd, rank_methods, smallest_detectable_gap
from vsb2net.errors import VsbError


def test_nemenyi_critical_difference_as_demsar_tabulates():
    # Demsar (2006), Table 5: q_0.05 = 3.354 for 14 methods; CD = q sqrt(k (k+1) / 6N)
    assert nemenyi_cd(14, 8) == pytest.approx(3.354 * np.sqrt(14 * 15 / 48), rel=2e-3)   # about 7 ranks
    assert nemenyi_cd(14, 45) == pytest.approx(2.96, abs=0.02)                          # about 3
    assert nemenyi_cd(3, 10) == pytest.approx(2.343 * np.sqrt(12 / 60), rel=2e-3)


def test_a_clear_winner_is_found_and_equal_methods_are_not_told_apart():
    rng = np.random.default_rng(0)
    blocks = [f"s{i}" for i in range(12)]
    base = rng.normal(0.3, 0.05, 12)
    scores = {"a": dict(zip(blocks, base + 0.1)), "b": dict(zip(blocks, base + rng.normal(0, 0.005, 12))),
              "c": dict(zip(blocks, base + rng.normal(0, 0.005, 12)))}
    r = rank_methods(scores)
    assert r.mean_ranks["a"] == 1.0 and r.friedman_p < 0.01
    assert r.differs("a", "b") and r.differs("a", "c") and not r.differs("b", "c")
    assert r.pairwise_p.shape == (3, 3)


def test_too_few_blocks_or_methods_say_so():
    with pytest.raises(VsbError, match="need at least 3 methods and 5 blocks"):
        rank_methods({"a": {"s0": 1.0}, "b": {"s0": 0.5}, "c": {"s0": 0.2}})


def test_smallest_detectable_gap_shrinks_with_blocks_and_grows_with_spread():
    rng = np.random.default_rng(1)
    d8, d45 = rng.normal(0.01, 0.03, 8), rng.normal(0.01, 0.03, 45)
    assert smallest_detectable_gap(d45) < smallest_detectable_gap(d8)
    # (t_0.975 + t_0.8) s / sqrt(n), n = 8: (2.365 + 0.896) s / sqrt(8)
    assert smallest_detectable_gap(d8) == pytest.approx((2.365 + 0.896) * d8.std(ddof=1) / np.sqrt(8), rel=2e-3)
    assert smallest_detectable_gap(np.array([0.1])) == float("inf")


def test_the_diagram_is_written(tmp_path):
    rng = np.random.default_rng(2)
    blocks = [f"s{i}" for i in range(8)]
    r = rank_methods({m: dict(zip(blocks, rng.random(8) + i * 0.2)) for i, m in enumerate("abcd")})
    path = r.diagram(tmp_path / "cd.png", "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same ranking again leaves the file alone (a regeneration changes no committed picture)
    before = path.stat().st_mtime_ns
    assert r.diagram(path, "test") == path and path.stat().st_mtime_ns == before
    r.diagram(path, "another title")
    assert path.stat().st_mtime_ns != before
