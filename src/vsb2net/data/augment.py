"""Training-time augmentation of image batches, shared by every method alike.

Seeded per (seed, epoch, step) so that training stays deterministic and an epoch can be replayed.
"""
from __future__ import annotations

import numpy as np
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


def mixup_batch(x: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): every item blended with another item of the batch by one
    weight lam ~ Beta(alpha, alpha); the targets become the same blend of the two class
    distributions, which every method takes as it takes multi-label rows (soft rows summing to 1).

    Why: images between two seen classes then get codes between their prototypes, so the code
    space is trained to be graded instead of a few prototype corners, and an unseen class that
    resembles two seen ones has somewhere of its own to land.
    """
    from ..models.losses import class_distribution

    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x))).to(x.device)
    target = class_distribution(y, n_classes)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]
