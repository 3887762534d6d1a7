"""SitNet-style zero-shot hashing (Guo et al., IJCAI 2017): the approach VSB2-Net argues against.

The hash layer is mapped *into the class word-vector space* by a linear layer, and trained by
cosine similarity to the seen classes' vectors (softmax over seen classes), plus quantisation.
Zero-shot transfer comes from the semantic space; codes for classes are not defined.

Reference checked by
tests/test_loss_references.py::test_sitnet_is_a_cosine_softmax_over_the_seen_class_vectors_plus_quantisation:
Guo et al., IJCAI 2017, only in its idea (codes tied to the class word vectors through a layer into
the semantic space); the loss form is ours (above), worked by hand in the test; no public reference
implementation found.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MethodParams, ModelConfig
from ..space import Float, LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import classification_loss
from .relations import ClassContext


@METHODS.register("sitnet", help="SitNet-style: hash codes mapped into the word-vector space")
class SitNet(BackboneHashHead):
    codes_classes = False
    family = "zero-shot"
    paper = "Guo et al.: SitNet: Discrete Similarity Transfer Network for Zero-shot Hashing, IJCAI 2017"

    @dataclass
    class Params(MethodParams):
        #: scale of the cosine logits against the class vectors
        alpha: float = 30.0
        #: weight of the quantisation term
        w_q: float = 0.1

    # no published values for this loss form: our defaults first
    search = {"alpha": Float(2.0, 50.0), "w_q": LogFloat(1e-3, 1.0), "train.lr": LR_SPACE}
    reference = {"alpha": 30.0, "w_q": 0.1, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        self.to_semantic = nn.Linear(cfg.bits, semantic_dim)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        u = self.hash_images(x)
        s = F.normalize(self.to_semantic(u), dim=1)
        a = F.normalize(ctx.vectors[: ctx.n_train], dim=1)
        terms = {"cls": classification_loss(self.params.alpha * s @ a.T, y)}
        if self.params.w_q > 0:
            terms["q"] = (u - torch.sign(u).detach()).pow(2).mean()
        loss = terms["cls"] + self.params.w_q * terms.get("q", 0.0)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
