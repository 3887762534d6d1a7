"""CSQ-style supervised deep hashing (Yuan et al., CVPR 2020, "Central Similarity Quantization").

Each seen class gets a binary hash centre; image codes are pulled to their class's centre by
binary cross-entropy, plus a quantisation term.  No class semantics: this is what a practitioner
uses without a zero-shot method.  Centres are rows of a Hadamard matrix when K is a power of two
and K >= number of classes (as in CSQ), otherwise seeded Bernoulli(0.5) vectors.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import hadamard

from . import METHODS
from .backbones import BackboneHashHead
from .losses import class_distribution


def hash_centres(n_classes: int, bits: int, seed: int = 0) -> np.ndarray:
    if bits & (bits - 1) == 0 and n_classes <= 2 * bits:
        h = hadamard(bits)
        return np.vstack([h, -h])[:n_classes].astype(np.float32)
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n_classes, bits)) < 0.5, -1.0, 1.0).astype(np.float32)


@METHODS.register("csq", help="CSQ-style hash centres per seen class (supervised, no semantics)")
class CSQ(BackboneHashHead):
    codes_classes = False
    options = frozenset({"w_q"})

    def __init__(self, cfg, in_shape, semantic_dim):
        super().__init__(cfg, in_shape)
        self.register_buffer("centres", torch.zeros(0, cfg.bits))

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        self.centres = torch.from_numpy(hash_centres(len(train_vectors), self.cfg.bits))

    def training_loss(self, x, y, ctx):
        u = self.hash_images(x)
        centres = self.centres.to(u.device)
        # multi-label: the centroid of the labels' centres (CSQ), kept soft: a bit on which the
        # labels disagree gets target 0.5 instead of a coin flip
        target = ((class_distribution(y, len(centres)) @ centres if y.ndim == 2 else centres[y]) + 1) / 2
        central = F.binary_cross_entropy((u + 1) / 2, target, reduction="none").clamp_max(100).mean()
        terms = {"central": central}
        if self.cfg.w_q > 0:
            terms["q"] = (u.abs() - 1).pow(2).mean()
        loss = central + self.cfg.w_q * terms.get("q", 0.0)
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.centres = torch.zeros_like(state_dict["centres"])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
