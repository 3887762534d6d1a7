"""DPN: Deep Polarized Network for Supervised Learning of Accurate Binary Hashing Codes (Fan et al.,
IJCAI 2020).  Pointwise.

Each class has a fixed binary target code t_c (as CSQ's centres); every output bit is pushed to
the target's side with a margin, bit by bit (the polarisation loss):

    L = mean_i mean_k max(m - v_ik t_{y_i k}, 0)

v the real-valued output of the hash layer, m ``model.polar_margin`` (1 in the paper).  Multi-label
items use the mean of their labels' codes as the target (a bit the labels disagree on gets target 0: no push).  Codes:
sign(v).

Reference checked by tests/test_field_methods.py::test_dpn_is_a_bitwise_hinge_towards_the_target_code:
Fan et al., IJCAI 2020, the polarisation loss above, worked by hand; reference implementation:
kamwoh/DPN (the authors'), scripts/train_hashing.py (``calculate_loss``: relu(m - v t), m = 1), and
swuxyj/DeepHash-pytorch, DPN.py (``DPNLoss``, the same hinge).  The authors sum over the bits before
the mean over items (K times our value at the same m); the toolkit takes the mean over both, as here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import MethodParams, ModelConfig
from ..space import Float
from .backbones import CodebookHead
from .base import LR_SPACE, METHODS, LossTerms
from .relations import ClassContext


def dpn_loss(v: torch.Tensor, target: torch.Tensor, margin: float) -> tuple[torch.Tensor, dict]:
    terms = {"polar": F.relu(margin - v * target).mean()}
    return terms["polar"], terms


@METHODS.register("dpn", help="DPN: bit-wise hinge polarisation towards class target codes (pointwise)")
class DPN(CodebookHead):
    family = "pointwise"
    paper = ("Fan et al.: Deep Polarized Network for Supervised Learning of Accurate Binary Hashing Codes, "
             "IJCAI 2020")

    @dataclass
    class Params(MethodParams):
        #: the polarisation hinge's margin m: every output bit is pushed beyond m on its target's side
        polar_margin: float = 1.0
        renamed = {"margin": "polar_margin"}
        added = {"polar_margin": 1.0}

    search = {"polar_margin": Float(0.1, 2.0), "train.lr": LR_SPACE}
    reference = {"polar_margin": 1.0, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash_outputs(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        loss, terms = dpn_loss(self.hash_outputs(x), self.target_codes(y), self.params.polar_margin)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
