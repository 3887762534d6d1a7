"""GreedyHash (Su et al., NeurIPS 2018).  Pointwise.

The forward pass uses the binary code itself, b = sign(h), and the backward pass hands the
gradient of b straight to h (the greedy principle: the optimum of the discrete problem, with the
gradient of the relaxed one).  Supervised by a linear classifier on b, with the penalty that
keeps h near sign(h):

    L = CE(W b, y) + alpha || |h| - 1 ||_3^3 / (N K)

alpha is ``model.w_q`` (0.1 in public re-implementations of the supervised variant).  Codes: sign(h).

Reference checked by
tests/test_field_methods.py::test_greedyhash_codes_with_sign_and_passes_the_gradient_straight_through:
Su et al., NeurIPS 2018, the supervised loss above (cross-entropy on b = sign(h) with the gradient
passed straight to h, plus alpha || |h| - 1 ||_3^3), worked by hand; reference implementation:
ssppp/GreedyHash (the authors'), cifar1.py (the hash layer: sign forward, gradient unchanged
backward; cross-entropy plus 0.1 mean | |h| - 1 |^3), as swuxyj/DeepHash-pytorch, GreedyHash.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..config import MethodParams, ModelConfig
from ..space import LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import classification_loss
from .relations import ClassContext


def greedy_sign(h: torch.Tensor) -> torch.Tensor:
    """sign(h) forward, identity backward (the gradient of the code reaches h unchanged)."""
    return h + (torch.sign(h) - h).detach()


def greedyhash_loss(h: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, dict]:
    terms = {"cls": classification_loss(logits, y), "q": (h.abs() - 1).abs().pow(3).mean()}
    return terms["cls"] + alpha * terms["q"], terms


@METHODS.register("greedyhash", help="GreedyHash: classifier on sign(h), straight-through gradient (pointwise)")
class GreedyHash(BackboneHashHead):
    family = "pointwise"
    paper = "Su et al.: Greedy Hash: Towards Fast Optimization for Accurate Hash Coding in CNN, NeurIPS 2018"

    @dataclass
    class Params(MethodParams):
        #: alpha, the weight of the penalty keeping h near sign(h)
        w_q: float = 0.1

    search = {"w_q": LogFloat(1e-3, 1.0), "train.lr": LR_SPACE}
    reference = {"w_q": 0.1, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        # sized by the training classes (set_class_reference) or by a loaded checkpoint
        self.classifier = nn.Linear(cfg.bits, 1, bias=False)

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        self._size_classifier(len(train_vectors))

    def _size_classifier(self, n_classes: int) -> None:
        if self.classifier.out_features != n_classes:
            self.classifier = nn.Linear(self.cfg.bits, n_classes, bias=False).to(self.hash_head.weight.device)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash_outputs(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        h = self.hash_outputs(x)
        loss, terms = greedyhash_loss(h, self.classifier(greedy_sign(h)), y, self.params.w_q)
        return loss, {k: float(v.detach()) for k, v in terms.items()}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        if prefix + "classifier.weight" in state_dict:
            self._size_classifier(state_dict[prefix + "classifier.weight"].shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
