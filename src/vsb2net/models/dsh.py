"""DSH: Deep Supervised Hashing (Liu et al., CVPR 2016).  Pairwise.

For a pair of real-valued network outputs b_1, b_2 with y = 0 when the images are similar and
y = 1 when not (the paper's convention):

    L = 1/2 (1 - y) ||b_1 - b_2||^2 + 1/2 y max(m - ||b_1 - b_2||^2, 0)
        + alpha (|| |b_1| - 1 ||_1 + || |b_2| - 1 ||_1)

with m = 2K in the paper (``model.margin_k`` is m / K) and alpha = 0.01 (``model.w_q``).  Every pair of
different images of a batch is a training pair (the paper's online pair generation); the loss is
their mean.  Codes: sign(b).

Reference checked by tests/test_field_methods.py::test_dsh_pulls_similar_pairs_and_pushes_dissimilar_ones_to_the_margin
and tests/test_field_methods.py::test_dsh_trains_with_the_authors_gradient_up_to_a_factor_two: Liu et
al., CVPR 2016, the relaxed pairwise loss above, worked by hand; reference implementation:
lhmRyan/deep-supervised-hashing-DSH (the first author's Caffe release),
src/caffe/layers/hashing_loss_layer.cpp (every pair of the batch; CIFAR-10/train_test.prototxt sets
the margin 24 at 12 bits, m = 2K, and the trade-off 0.01), written out as loops in the second test.
Its forward value has our pair term but counts the regulariser once per image (tradeoff / N sum_i
|| |b_i| - 1 ||_1, half of ours at one alpha); its backward pass applies half the pair term's
derivative, so the gradient it trains with is half of ours: the same weighting of the two terms.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import MethodParams, ModelConfig
from ..space import Float, LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms
from .losses import off_diagonal, pair_similarity
from .relations import ClassContext


def dsh_loss(b: torch.Tensor, y: torch.Tensor, margin: float, alpha: float) -> tuple[torch.Tensor, dict]:
    k = b.shape[1]
    dist = torch.cdist(b, b).pow(2)                       # ||b_i - b_j||^2
    similar = pair_similarity(y, y)
    pair = 0.5 * similar * dist + 0.5 * (1 - similar) * F.relu(margin * k - dist)
    reg = (b.abs() - 1).abs().sum(1)                      # || |b_i| - 1 ||_1
    terms = {"pair": off_diagonal(pair).mean(), "reg": off_diagonal(reg[:, None] + reg[None, :]).mean()}
    return terms["pair"] + alpha * terms["reg"], terms


@METHODS.register("dsh", help="DSH: contrastive loss on pairs of real-valued codes with a margin (pairwise)")
class DSH(BackboneHashHead):
    family = "pairwise"
    paper = "Liu et al.: Deep Supervised Hashing for Fast Image Retrieval, CVPR 2016"

    @dataclass
    class Params(MethodParams):
        #: the squared distance dissimilar pairs are pushed beyond, in units of K (the paper's m = 2K)
        margin_k: float = 2.0
        #: alpha, the weight of the regulariser pulling |b| to 1
        w_q: float = 0.01
        renamed = {"margin": "margin_k"}
        added = {"margin_k": 1.0}

    # the paper's m = 2K and alpha = 0.01 first
    search = {"margin_k": Float(0.25, 4.0), "w_q": LogFloat(1e-3, 1.0), "train.lr": LR_SPACE}
    reference = {"margin_k": 2.0, "w_q": 0.01, "train.lr": 2e-3}

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return self.hash_outputs(x)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        loss, terms = dsh_loss(self.hash_outputs(x), y, self.params.margin_k, self.params.w_q)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
