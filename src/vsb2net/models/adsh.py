"""ADSH: Asymmetric Deep Supervised Hashing (Jiang, Li, AAAI 2018).  Asymmetric.

The network codes query points, u_i = tanh(F(x_i)); the database points get learned binary codes
v_j directly, and the two are tied asymmetrically:

    min  sum_{i in Omega} sum_{j in Gamma} (u_i^T v_j - K S_ij)^2 + gamma sum_{i in Omega} ||v_i - u_i||^2

with S_ij = +1 for a shared class, -1 otherwise, and gamma = 200 in the paper (``model.w_q``).  The
paper alternates: a few epochs of the network on sampled queries with V fixed, then V by
discrete cyclic coordinate descent (DCC), bit by bit,
V_k = -sign(2 V_hat U_hat^T u_k + Q_k), Q = -2K S^T U - 2 gamma U_bar.

Inductive protocol (how the learned database codes are handled here): Gamma is the training set
(the seen classes' database images).  Before every epoch, V is updated by one DCC pass with the
current network's codes of every training image as the queries (Omega = Gamma), then the epoch
trains the network against V, each batch a sample of queries; the loss is divided by |B| |Gamma|.
V exists only for training: at test time *every* database image, seen or unseen class, is coded by
the network like the queries, as for every other method (the transductive reading, where the
database keeps V, would need the unseen classes' labels).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import MethodParams, ModelConfig
from ..space import LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms, encode
from .losses import pair_similarity
from .relations import ClassContext

#: rows of the training set per block of the (N, N) similarity products
BLOCK = 2048


def adsh_loss(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, v_own: torch.Tensor,
              gamma: float) -> tuple[torch.Tensor, dict]:
    """``u`` (B, K) network codes of a batch, ``v`` (N, K) learned codes of the training set,
    ``s`` (B, N) in {-1, +1}, ``v_own`` (B, K) the batch items' own rows of ``v``."""
    k = u.shape[1]
    terms = {"asym": (u @ v.T - k * s).pow(2).sum() / (len(u) * len(v)),
             "q": (v_own - u).pow(2).sum() / (len(u) * len(v))}
    return terms["asym"] + gamma * terms["q"], terms


def dcc_update(v: torch.Tensor, u: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """One pass of discrete cyclic coordinate descent over the bits of ``v`` (N, K), the queries
    being the whole set (``u``, N x K, network codes of the same items)."""
    k = v.shape[1]
    st_u = torch.cat([(2 * pair_similarity(y[i:i + BLOCK], y) - 1) @ u for i in range(0, len(y), BLOCK)])
    q = -2 * k * st_u - 2 * gamma * u
    v = v.clone()
    for bit in range(k):
        rest = [b for b in range(k) if b != bit]
        v_hat, u_hat = v[:, rest], u[:, rest]
        new = -torch.sign(2 * v_hat @ (u_hat.T @ u[:, bit]) + q[:, bit])
        v[:, bit] = torch.where(new == 0, v[:, bit], new)
    return v


@METHODS.register("adsh", help="ADSH: network codes against learned codes of the training set (asymmetric)")
class ADSH(BackboneHashHead):
    family = "asymmetric"
    paper = "Jiang, Li: Asymmetric Deep Supervised Hashing, AAAI 2018"

    @dataclass
    class Params(MethodParams):
        #: gamma, the weight tying a training item's network code to its learned code
        w_q: float = 200.0

    # the paper's gamma = 200 first
    search = {"w_q": LogFloat(1.0, 1000.0), "train.lr": LR_SPACE}
    reference = {"w_q": 200.0, "train.lr": 2e-3}
    index_batches = True
    sized_by_training = ("train_codes", "train_labels")
    train_codes: torch.Tensor
    train_labels: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        # V, sized by the training set at the first epoch (or by a loaded checkpoint)
        self.register_buffer("train_codes", torch.zeros(0, cfg.bits))
        self.register_buffer("train_labels", torch.zeros(0, dtype=torch.long))

    def epoch_start(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext, device: torch.device) -> None:
        was = self.training
        self.eval()  # BatchNorm statistics must not move while the codes are read
        u = torch.from_numpy(encode(self.hash_images, x, device)).to(device)
        self.train(was)
        y = y.to(device)
        if len(self.train_codes) != len(x):
            g = torch.Generator().manual_seed(int(self.cfg.bits))
            self.train_codes = (torch.randint(0, 2, (len(x), self.cfg.bits), generator=g) * 2 - 1).float().to(device)
            self.train_labels = y.clone()
        self.train_codes = dcc_update(self.train_codes, u, y, self.params.w_q)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext,
                      idx: torch.Tensor | None = None) -> LossTerms:
        if idx is None:
            raise TypeError("ADSH trains with index_batches: training_loss needs idx, the batch's positions")
        u = self.hash_images(x)
        v = self.train_codes.to(u.device)
        s = 2 * pair_similarity(y, self.train_labels.to(y.device)) - 1
        loss, terms = adsh_loss(u, v, s, v[idx.to(u.device)], self.params.w_q)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
