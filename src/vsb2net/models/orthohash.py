"""OrthoHash: One Loss for All (Hoe et al., NeurIPS 2021).  Pointwise.

One objective: the cosine similarity between a batch-normalised continuous code u and each
class's fixed binary code c_k (an orthogonal codebook: Hadamard rows, else Bernoulli), turned into
a margin softmax cross-entropy (OrthoCos, the paper's default):

    L = - log  exp(s (cos(u, c_y) - m)) / (exp(s (cos(u, c_y) - m)) + sum_{k != y} exp(s cos(u, c_k)))

Maximising cos(u, c_y) both separates the classes and shrinks the quantisation error to c_y,
which is why the paper needs no other term.  s is ``model.alpha`` (8 in the paper), m is
``model.cos_margin`` (0.2 by default, 0.3 for CIFAR-10 in the authors' release).  Multi-label items
use the mean of their labels' target distributions (soft cross-entropy), margins on every label.
Codes: sign(u).

Reference checked by
tests/test_field_methods.py::test_orthohash_is_a_margin_cross_entropy_over_cosines_to_the_class_codes:
Hoe et al., NeurIPS 2021, the OrthoCos objective above, worked by hand; reference implementation:
kamwoh/orthohash (the authors'), functions/loss/orthohash.py (``OrthoHashLoss``: cross-entropy of
s (cos - m on the label), label-smoothing targets for multi-label, s = 8 and m = 0.2 by default)
and models/alexnet.py (``CosSim`` against a fixed codebook, the hash layer batch-normalised).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MethodParams, ModelConfig
from ..space import Float
from .backbones import CodebookHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import class_distribution
from .relations import ClassContext


def orthohash_loss(u: torch.Tensor, centres: torch.Tensor, y: torch.Tensor, scale: float,
                   margin: float) -> tuple[torch.Tensor, dict]:
    cos = F.normalize(u, dim=1) @ F.normalize(centres, dim=1).T
    target = class_distribution(y, len(centres))
    logits = scale * (cos - margin * (target > 0).float())
    terms = {"ce": -(target * F.log_softmax(logits, dim=1)).sum(1).mean()}
    return terms["ce"], terms


@METHODS.register("orthohash", help="OrthoHash: margin cosine cross-entropy to orthogonal class codes (pointwise)")
class OrthoHash(CodebookHead):
    family = "pointwise"
    paper = ("Hoe et al.: One Loss for All: Deep Hashing with a Single Cosine Similarity based "
             "Learning Objective, NeurIPS 2021")

    @dataclass
    class Params(MethodParams):
        #: s, the scale of the cosine logits
        alpha: float = 8.0
        #: m, subtracted from the cosine to the item's own class code
        cos_margin: float = 0.2
        renamed = {"margin": "cos_margin"}
        added = {"cos_margin": 1.0}

    # the paper's s = 8 and m = 0.2 first (0.3 was the authors' CIFAR-10 setting)
    search = {"alpha": Float(2.0, 16.0), "cos_margin": Float(0.0, 0.5), "train.lr": LR_SPACE}
    reference = {"alpha": 8.0, "cos_margin": 0.2, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        # the paper's batch normalisation of the code layer: balanced bits without a balance term
        self.code_norm = nn.BatchNorm1d(cfg.bits)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.code_norm(self.hash_outputs(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        loss, terms = orthohash_loss(self.hash_images(x), self.centres.to(x.device), y, self.params.alpha,
                                     self.params.cos_margin)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
