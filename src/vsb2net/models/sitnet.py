"""SitNet-style zero-shot hashing (Guo et al., IJCAI 2017): the approach VSB2-Net argues against.

The hash layer is mapped *into the class word-vector space* by a linear layer, and trained by
cosine similarity to the seen classes' vectors (softmax over seen classes), plus quantisation.
Zero-shot transfer comes from the semantic space; codes for classes are not defined.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import BackboneHashHead
from .base import METHODS
from .losses import classification_loss


@METHODS.register("sitnet", help="SitNet-style: hash codes mapped into the word-vector space")
class SitNet(BackboneHashHead):
    codes_classes = False
    options = frozenset({"alpha", "w_q"})
    family = "zero-shot"
    paper = "Guo et al.: SitNet: Discrete Similarity Transfer Network for Zero-shot Hashing, IJCAI 2017"
    grid = {"model.alpha": [10.0, 30.0]}

    def __init__(self, cfg, in_shape, semantic_dim):
        super().__init__(cfg, in_shape)
        self.to_semantic = nn.Linear(cfg.bits, semantic_dim)

    def training_loss(self, x, y, ctx):
        u = self.hash_images(x)
        s = F.normalize(self.to_semantic(u), dim=1)
        a = F.normalize(ctx.vectors[: ctx.n_train], dim=1)
        terms = {"cls": classification_loss(self.cfg.alpha * s @ a.T, y)}
        if self.cfg.w_q > 0:
            terms["q"] = (u - torch.sign(u).detach()).pow(2).mean()
        loss = terms["cls"] + self.cfg.w_q * terms.get("q", 0.0)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
