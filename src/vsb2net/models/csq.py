"""CSQ-style supervised deep hashing (Yuan et al., CVPR 2020, "Central Similarity Quantization").

Each seen class gets a binary hash centre; image codes are pulled to their class's centre by
binary cross-entropy, plus a quantisation term.  No class semantics: this is what a practitioner
uses without a zero-shot method.  Centres are rows of a Hadamard matrix and their negations when K
is a power of two and 2K >= number of classes (as in CSQ), otherwise seeded Bernoulli(0.5) vectors.

Loss: BCE((u + 1)/2, (c_y + 1)/2), the mean over bits and items, plus lambda mean (|u| - 1)^2
(``model.w_q``), u = tanh of the hash layer.  Reference checked by
tests/test_loss_references.py::test_csq_is_the_cross_entropy_to_the_class_centre_plus_quantisation:
Yuan et al., CVPR 2020, the central similarity loss plus lambda times the quantisation loss, worked
by hand; reference implementation: swuxyj/DeepHash-pytorch, CSQ.py (``CSQLoss``: ``BCELoss`` plus
lambda = 1e-4 times the quantisation term, Hadamard centres), which this loss follows.  The authors'
yuanli2333/Hadamard-Matrix-for-hashing, train.py, adds a pairwise likelihood term on the two halves
of each batch (lambda1 = 0.2 in options.py) and weighs the quantisation term by lambda2 = 0.05; we
keep the paper's two terms, as the toolkit does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import MethodParams, ModelConfig
from ..space import LogFloat
from .backbones import CodebookHead
from .base import LR_SPACE, METHODS, LossTerms
from .relations import ClassContext


@METHODS.register("csq", help="CSQ-style hash centres per seen class (supervised, no semantics)")
class CSQ(CodebookHead):
    codes_classes = False
    family = "pointwise"
    paper = "Yuan et al.: Central Similarity Quantization for Efficient Image and Video Retrieval, CVPR 2020"

    @dataclass
    class Params(MethodParams):
        #: weight of the quantisation term, the paper's lambda
        w_q: float = 1e-4

    # the paper's lambda = 1e-4 (its Section 4) and the shared learning rate first
    search = {"w_q": LogFloat(1e-5, 1.0), "train.lr": LR_SPACE}
    reference = {"w_q": 1e-4, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        u = self.hash_images(x)
        # multi-label: the centroid of the labels' centres (CSQ), kept soft: a bit on which the
        # labels disagree gets target 0.5 instead of a coin flip
        target = (self.target_codes(y) + 1) / 2
        central = F.binary_cross_entropy((u + 1) / 2, target, reduction="none").clamp_max(100).mean()
        terms = {"central": central}
        if self.params.w_q > 0:
            terms["q"] = (u.abs() - 1).pow(2).mean()
        loss = central + self.params.w_q * terms.get("q", 0.0)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
