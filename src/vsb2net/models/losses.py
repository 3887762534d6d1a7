"""Classification targets shared by every method: class ids (single-label) or 0/1 rows (multi-label).

Training labels reach a method as an int64 vector of training-class positions, or, for
multi-label data, a float (N, C_train) 0/1 matrix.  A multi-label item's target distribution
spreads its mass evenly over its labels (softmax cross-entropy with soft targets, as in the
multi-label variants of DPSH/CSQ-style training); for one label it is the usual one-hot target.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def is_multilabel(y: torch.Tensor) -> bool:
    return y.ndim == 2


def class_distribution(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(B, C) target probabilities: one-hot rows for class ids, normalised 0/1 rows for multi-label."""
    if is_multilabel(y):
        y = y.float()
        return y / y.sum(1, keepdim=True).clamp_min(1.0)
    return F.one_hot(y, n_classes).float()


def classification_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy against class ids or against the multi-label target distribution."""
    if is_multilabel(y):
        return F.cross_entropy(logits, class_distribution(y, logits.shape[1]))
    return F.cross_entropy(logits, y)


def pair_similarity(y_a: torch.Tensor, y_b: torch.Tensor) -> torch.Tensor:
    """(A, B) float 0/1: 1 where two items share a class (for multi-label rows: at least one
    label), the pairwise supervision of DSH, DPSH, HashNet and ADSH."""
    if is_multilabel(y_a):
        return ((y_a.float() @ y_b.float().T) > 0).float()
    return (y_a[:, None] == y_b[None, :]).float()


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The entries of a square matrix off its diagonal: the pairs of different items of a batch."""
    return m[~torch.eye(len(m), dtype=torch.bool, device=m.device)]
