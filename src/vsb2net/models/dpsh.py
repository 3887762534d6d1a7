"""DPSH: Deep Pairwise-Supervised Hashing (Li et al., IJCAI 2016).  Pairwise.

The likelihood of the pairwise labels s_ij (1: same class) given the codes, with
Theta_ij = 1/2 u_i^T u_j and p(s_ij = 1) = sigmoid(Theta_ij), plus the relaxation penalty:

    L = - sum_{i != j} (s_ij Theta_ij - log(1 + exp(Theta_ij))) + eta sum_i ||b_i - u_i||^2,

b_i = sign(u_i), u_i the real-valued network output; eta is ``model.w_q``.  We take the mean over
the pairs of a batch and the mean over its images and bits of the penalty, as public
re-implementations do (the paper sums: n pairs per image against one penalty of K bits, so its
eta = 10 is a far smaller weight per pair than it looks).

Reference checked by tests/test_field_methods.py::test_dpsh_is_the_negative_log_likelihood_of_the_pair_labels:
Li et al., IJCAI 2016, the relaxed objective above, worked by hand; reference implementation:
swuxyj/DeepHash-pytorch, DPSH.py (``DPSHLoss``: the likelihood's mean over pairs plus alpha = 0.1
times the mean of (u - sign u)^2, the normalisation taken here).  Its pairs are the batch against
every training item's stored code (each item with itself included), ours the batch's pairs of
different items.  jiangqy/DPSH-pytorch, DPSH_CIFAR_10.py divides both sums by N x batch instead,
with lambda = 10 (the paper's sum).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import MethodParams, ModelConfig
from ..space import LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import off_diagonal, pair_similarity
from .relations import ClassContext


def dpsh_loss(u: torch.Tensor, y: torch.Tensor, eta: float) -> tuple[torch.Tensor, dict]:
    theta = 0.5 * u @ u.T
    s = pair_similarity(y, y)
    terms = {"pair": off_diagonal(F.softplus(theta) - s * theta).mean(),
             "q": (u - torch.sign(u).detach()).pow(2).mean()}
    return terms["pair"] + eta * terms["q"], terms


@METHODS.register("dpsh", help="DPSH: pairwise likelihood of inner products of codes (pairwise)")
class DPSH(BackboneHashHead):
    family = "pairwise"
    paper = "Li et al.: Feature Learning based Deep Supervised Hashing with Pairwise Labels, IJCAI 2016"

    @dataclass
    class Params(MethodParams):
        #: eta, the weight of the relaxation penalty (per pair and bit: see the module's docstring)
        w_q: float = 0.1

    # public re-implementations use eta = 0.1 with this normalisation
    search = {"w_q": LogFloat(1e-3, 10.0), "train.lr": LR_SPACE}
    reference = {"w_q": 0.1, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash_outputs(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        loss, terms = dpsh_loss(self.hash_outputs(x), y, self.params.w_q)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
