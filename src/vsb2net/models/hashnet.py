"""HashNet: Deep Learning to Hash by Continuation (Cao et al., ICCV 2017).  Pairwise.

Codes h = tanh(beta z) of the hash layer's output z, with beta raised during training
(continuation: beta_t = (1 + 0.005 t)^0.5 at step t, so h tends to sign(z)).  The loss is the
weighted maximum likelihood of the pairwise labels s_ij under an adaptive sigmoid of scale alpha:

    L = sum_{i != j} w_ij (log(1 + exp(alpha <h_i, h_j>)) - alpha s_ij <h_i, h_j>),

with w_ij = |S| / |S_1| for similar pairs and |S| / |S_0| for dissimilar ones (class imbalance of
the pairs of a batch); we divide by |S|.  alpha is ``model.alpha``.

Reference checked by tests/test_field_methods.py::test_hashnet_weights_similar_and_dissimilar_pairs_by_their_share:
Cao et al., ICCV 2017, "Model Formulation" (the weighted maximum likelihood, w_ij, the adaptive
sigmoid) and "Learning by Continuation" (beta_t); reference implementation: swuxyj/DeepHash-pytorch,
HashNet.py (``HashNetLoss``: these weights, alpha <h_i, h_j> over the batch's pairs, each item with
itself included, the sum divided by |S|), the form the test works by hand (pairs of different
items).  The authors' thuml/HashNet, pytorch/src/loss.py, differs: its ``pairwise_loss`` weights
similar pairs by a set constant (``class_num``) instead of |S| / |S_1| and takes log(1 + e^x) as x
above x = 15; pytorch/src/network.py raises beta every 200 steps, ours every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import MethodParams, ModelConfig
from ..errors import VsbError
from ..space import LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import off_diagonal, pair_similarity
from .relations import ClassContext

#: continuation schedule beta_t = (1 + GAMMA t)^POWER
GAMMA, POWER = 0.005, 0.5


def hashnet_loss(h: torch.Tensor, y: torch.Tensor, alpha: float) -> tuple[torch.Tensor, dict]:
    ip = off_diagonal(alpha * h @ h.T)
    s = off_diagonal(pair_similarity(y, y))
    n_similar = s.sum()
    w = torch.where(s > 0, len(s) / n_similar.clamp_min(1), len(s) / (len(s) - n_similar).clamp_min(1))
    terms = {"pair": (w * (F.softplus(ip) - s * ip)).mean()}
    return terms["pair"], terms


@METHODS.register("hashnet", help="HashNet: weighted pairwise likelihood, tanh sharpened by continuation (pairwise)")
class HashNet(BackboneHashHead):
    family = "pairwise"
    paper = "Cao et al.: HashNet: Deep Learning to Hash by Continuation, ICCV 2017"

    @dataclass
    class Params(MethodParams):
        #: the adaptive sigmoid's scale (the paper: 10 / K, 0.3 at K = 32 bits)
        alpha: float = 0.3

        def validate(self, model: ModelConfig) -> None:
            if not self.alpha > 0:
                raise VsbError(f"model.alpha = {self.alpha}: the sigmoid's scale must be positive, e.g. 0.3.")

    # the adaptive sigmoid's scale: 0.1 (public toolkits) to 10 / K at K = 32 bits
    search = {"alpha": LogFloat(0.01, 3.0), "train.lr": LR_SPACE}
    reference = {"alpha": 0.3, "train.lr": 2e-3}
    step: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        # training steps taken, for the continuation; saved with the weights so a resumed run goes on
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def beta(self) -> float:
        return float((1 + GAMMA * float(self.step)) ** POWER)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.beta() * self.hash_outputs(x))

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        loss, terms = hashnet_loss(self.hash_images(x), y, self.params.alpha)
        self.step += 1
        return loss, {**{k: float(v.detach()) for k, v in terms.items()}, "beta": self.beta()}
