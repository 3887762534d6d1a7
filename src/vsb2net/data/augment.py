"""Training-time augmentation of image batches, shared by every method alike.

Seeded per (seed, epoch, step) so that training stays deterministic and an epoch can be replayed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import VsbError

KINDS = ("none", "shift", "shift-flip")


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding) and, for "shift-flip", a
    horizontal flip of half the images.  Feature vectors (2-D input) pass through unchanged."""
    if kind == "none" or x.dim() != 4:
        return x
    if kind not in KINDS:
        raise VsbError(f"train.augment = {kind!r}: use one of {', '.join(KINDS)}.")
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=float(x.min()))
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, x.shape[1], h, w + 2 * max_shift)
    out = padded.gather(2, rows.to(x.device))
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, x.shape[1], h, w)
    out = out.gather(3, cols.to(x.device))
    if kind == "shift-flip":
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out
