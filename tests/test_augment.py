import numpy as np
import pytest
import torch

from vsb2net.config import build_config
from vsb2net.data.augment import augment_batch, mixup_batch
from vsb2net.errors import VsbError


def test_shift_keeps_content_and_is_seeded():
    x = torch.zeros(8, 1, 10, 10)
    x[:, :, 4:6, 4:6] = 1.0
    a = augment_batch(x, "shift", torch.Generator().manual_seed(3))
    b = augment_batch(x, "shift", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.all(a.sum((1, 2, 3)) == 4)  # the 2x2 square moves by <= 2 px but stays whole
    assert not torch.equal(a, x.expand_as(a))


def test_flip_and_passthrough():
    x = torch.zeros(64, 1, 6, 6)
    x[:, :, :, 0] = 1.0
    out = augment_batch(x, "shift-flip", torch.Generator().manual_seed(0), max_shift=0)
    flipped = out[:, 0, 0, -1] == 1
    assert 10 < int(flipped.sum()) < 54
    feats = torch.randn(4, 7)
    assert augment_batch(feats, "shift-flip", torch.Generator()) is feats
    assert augment_batch(x, "none", torch.Generator()) is x
    with pytest.raises(VsbError):
        augment_batch(x, "rotate", torch.Generator())


def test_mixup_blends_items_and_targets_alike():
    x = torch.randn(6, 1, 4, 4)
    y = torch.arange(6)  # one class per item, so a target row tells the weight and the partner
    xm, t = mixup_batch(x, y, 6, 0.4, np.random.default_rng(5))
    assert t.shape == (6, 6) and torch.allclose(t.sum(1), torch.ones(6))
    again = mixup_batch(x, y, 6, 0.4, np.random.default_rng(5))
    assert torch.equal(again[0], xm) and torch.equal(again[1], t)
    lam = float(t[torch.arange(6), y].min())  # items paired with themselves show 1, the rest lam
    assert 0 < lam < 1
    for i in range(6):
        if t[i, i] == 1:
            assert torch.allclose(xm[i], x[i])
            continue
        partner = int(torch.argmax(t[i] * (torch.arange(6) != i)))
        assert torch.isclose(t[i, i], torch.tensor(lam)) and torch.isclose(t[i, partner], torch.tensor(1 - lam))
        assert torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-6)


def test_mixup_config_is_checked():
    assert build_config(None, ["train.mixup=0.4"]).train.mixup == 0.4
    with pytest.raises(VsbError, match="train.mixup"):
        build_config(None, ["train.mixup=-1"])
