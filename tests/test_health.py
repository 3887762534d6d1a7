"""A model's health (vsb2net.evaluation.health): collapsed codes and a dead visual branch are seen before any
average, and every benchmark cell records them."""
import numpy as np
import pytest
import torch
from torch import nn

from vsb2net.codes import pack_codes
from vsb2net.evaluation.health import code_health, collapsed, effective_rank, feature_health
from vsb2net.models.base import HashingMethod


def test_code_health_counts_distinct_codes_and_bit_balance():
    same = pack_codes(np.ones((50, 16)))
    assert code_health(same, 16) == {"distinct_codes": 1, "bit_balance": 1.0}
    half = np.where(np.arange(16)[None, :] % 2 == np.arange(40)[:, None] % 2, 1.0, -1.0)  # two codes, every bit 50/50
    h = code_health(pack_codes(half), 16)
    assert h["distinct_codes"] == 2 and h["bit_balance"] == pytest.approx(0.0)


def test_effective_rank_counts_the_directions_used():
    rng = np.random.default_rng(0)
    assert effective_rank(rng.normal(size=(500, 3)) @ np.eye(3, 20)) == pytest.approx(3, abs=0.2)
    assert effective_rank(np.ones((10, 5))) == 0.0


class _Dead(HashingMethod):
    def __init__(self):
        super().__init__()
        # 4 feature units, 3 of them always 0 after the ReLU
        self.backbone = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
        with torch.no_grad():
            self.backbone[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
            self.backbone[0].bias.copy_(torch.tensor([0.0, -1.0, -1.0, -1.0]))


def test_feature_health_finds_dead_units():
    x = torch.rand(200, 2) + 0.1
    h = feature_health(_Dead(), x, torch.device("cpu"))
    assert h["dead_units"] == pytest.approx(0.75) and h["feature_rank"] == pytest.approx(1.0)


def test_a_cell_is_collapsed_by_its_codes_or_its_seen_map():
    assert collapsed({"distinct_codes": 8}, 8, 0.9, 0.12) == "8 distinct codes for 8 classes"
    assert "within 0.05 of chance" in collapsed({"distinct_codes": 500}, 8, 0.16, 0.125)
    assert collapsed({"distinct_codes": 500}, 8, 0.9, 0.125) is None
    assert collapsed(None, 8, None, None) is None
