import pytest
import torch

from vsb2net.data.augment import augment_batch
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
