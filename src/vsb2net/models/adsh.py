"""ADSH: Asymmetric Deep Supervised Hashing (Jiang, Li, AAAI 2018).  Asymmetric.

The network codes query points, u_i = tanh(F(x_i)); the database points get learned binary codes
v_j directly, and the two are tied asymmetrically:

    min  sum_{i in Omega} sum_{j in Gamma} (u_i^T v_j - K S_ij)^2 + gamma sum_{i in Omega} ||v_i - u_i||^2

gamma = 200 in the paper (``model.w_q``).  S is the reference implementation's soft similarity
(the authors' ADSH_pytorch ``calc_sim``, also DeepHash-pytorch's): 1 for a shared class and -r
otherwise, r = #similar / #dissimilar pairs of the Omega x Gamma block, so that every column of S
sums to zero.  A hard +-1 similarity makes every column of S sum to about -(1 - 2/C) |Omega|
with C balanced classes; in the update of V below the shared mean of the network's outputs then
dominates Q and every row of V gets the same code, which the network fits: the codes collapse
(measured here: 3 of 10 Animal-MNIST cells at 32 bits had one distinct code).

The paper alternates: the network on sampled queries with V fixed, then V by discrete cyclic
coordinate descent (DCC), bit by bit, V_k = -sign(2 V_hat U_hat^T u_k + Q_k),
Q = -2K S^T U - 2 gamma U_bar (U: the sampled queries' codes, U_bar: U in their rows, 0 elsewhere).
V starts at zero, as in the reference.

Inductive protocol (how the learned database codes are handled here): Gamma is the training set
(the seen classes' database images).  Before every epoch, V is updated by one DCC pass with the
current network's codes of ``model.n_samples`` training items drawn at random (Omega, the
reference's sampled queries per round; all of them when the set is smaller), then the epoch
trains the network against V on every training item, each batch a sample of queries; the loss is
divided by |B| |Gamma|.  (The reference trains each round's 3 epochs on Omega only; here an epoch
covers the whole training set, so that every method sees the same images per epoch.)  V exists
only for training: at test time *every* database image, seen or unseen class, is coded by the
network like the queries, as for every other method (the transductive reading, where the database
keeps V, would need the unseen classes' labels).

Reference checked by tests/test_field_methods.py::test_adsh_ties_network_codes_to_the_learned_codes_asymmetrically,
tests/test_field_methods.py::test_adsh_similarity_is_the_references_soft_one,
tests/test_field_methods.py::test_adsh_dcc_step_solves_each_bit_and_lowers_the_objective and
tests/test_field_methods.py::test_adsh_dcc_step_is_the_references_update_on_sampled_queries: Jiang &
Li, AAAI 2018, the objective above ("Model Formulation") and the discrete cyclic coordinate descent for V
("Learning Algorithm"); reference implementation: jiangqy/ADSH-AAAI2018, ADSH_pytorch/ADSH_CIFAR_10.py
(``calc_sim``, the soft similarity, and the DCC update of V, both written out in the tests) and
ADSH_pytorch/utils/adsh_loss.py (both sums divided by |B| |Gamma|, gamma on the tie).  One
difference: a bit whose DCC value is exactly 0 keeps its sign here, where the reference writes 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import MethodParams, ModelConfig
from ..errors import VsbError
from ..space import Int, LogFloat
from .backbones import BackboneHashHead
from .base import LR_SPACE, METHODS, LossTerms, encode
from .losses import pair_similarity
from .relations import ClassContext

#: rows of the training set per block of the (N, N) similarity products
BLOCK = 2048


def dissimilar_weight(y_a: torch.Tensor, y_b: torch.Tensor) -> float:
    """r = #similar / #dissimilar pairs of the (A, B) block (0 when no pair is dissimilar)."""
    similar = sum(float(pair_similarity(y_a[i:i + BLOCK], y_b).sum()) for i in range(0, len(y_a), BLOCK))
    dissimilar = len(y_a) * len(y_b) - similar
    return similar / dissimilar if dissimilar else 0.0


def soft_similarity(y_a: torch.Tensor, y_b: torch.Tensor, r: float) -> torch.Tensor:
    """(A, B): 1 for a shared class, -r otherwise (the reference's ``calc_sim``)."""
    return pair_similarity(y_a, y_b) * (1 + r) - r


def adsh_loss(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, v_own: torch.Tensor,
              gamma: float) -> tuple[torch.Tensor, dict]:
    """``u`` (B, K) network codes of a batch, ``v`` (N, K) learned codes of the training set,
    ``s`` (B, N) the soft similarity, ``v_own`` (B, K) the batch items' own rows of ``v``."""
    k = u.shape[1]
    terms = {"asym": (u @ v.T - k * s).pow(2).sum() / (len(u) * len(v)),
             "q": (v_own - u).pow(2).sum() / (len(u) * len(v))}
    return terms["asym"] + gamma * terms["q"], terms


def dcc_update(v: torch.Tensor, u: torch.Tensor, y: torch.Tensor, gamma: float,
               omega: torch.Tensor | None = None, r: float | None = None) -> torch.Tensor:
    """One pass of discrete cyclic coordinate descent over the bits of ``v`` (N, K), ``y`` the
    labels of all N items.  The queries are the items ``omega`` (positions; None = all) with
    network codes ``u`` (|Omega| x K); ``r`` the soft similarity's weight (None: from the labels)."""
    k = v.shape[1]
    omega = torch.arange(len(y), device=y.device) if omega is None else omega
    y_q = y[omega]
    r = dissimilar_weight(y_q, y) if r is None else r
    # S^T U over the (|Omega| x N) block, blockwise over the queries
    st_u = sum(soft_similarity(y_q[i:i + BLOCK], y, r).T @ u[i:i + BLOCK] for i in range(0, len(y_q), BLOCK))
    u_bar = torch.zeros_like(v)
    u_bar[omega] = u
    q = -2 * k * st_u - 2 * gamma * u_bar
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
        #: |Omega|, training items drawn as the queries of each epoch's update of V (the
        #: reference's num_samples = 2000)
        n_samples: int = 2000

        def validate(self, model: ModelConfig) -> None:
            if self.n_samples < 1:
                raise VsbError(f"model.n_samples = {self.n_samples}: give at least 1 (the reference uses 2000).")

    # the paper's gamma = 200 first
    search = {"w_q": LogFloat(1.0, 1000.0), "n_samples": Int(500, 5000, log=True), "train.lr": LR_SPACE}
    reference = {"w_q": 200.0, "n_samples": 2000, "train.lr": 2e-3}
    index_batches = True
    sized_by_training = ("train_codes", "train_labels")
    train_codes: torch.Tensor
    train_labels: torch.Tensor
    #: the soft similarity's weight of the current round's queries (None before the first round)
    r: float | None = None

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg, in_shape)
        # V, sized by the training set at the first epoch (or by a loaded checkpoint)
        self.register_buffer("train_codes", torch.zeros(0, cfg.bits))
        self.register_buffer("train_labels", torch.zeros(0, dtype=torch.long))

    def epoch_start(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext, device: torch.device) -> None:
        y = y.to(device)
        if len(self.train_codes) != len(x):
            # V starts at zero (the reference); sized by the training set
            self.train_codes = torch.zeros(len(x), self.cfg.bits, device=device)
            self.train_labels = y.clone()
        # the queries of this round: drawn from the global torch generator, which the training
        # seed sets (a resumed run restores it)
        omega = torch.randperm(len(x))[: self.params.n_samples].sort().values
        was = self.training
        self.eval()  # BatchNorm statistics must not move while the codes are read
        u = torch.from_numpy(encode(self.hash_images, x[omega], device)).to(device)
        self.train(was)
        omega = omega.to(device)
        self.r = dissimilar_weight(y[omega], y)
        self.train_codes = dcc_update(self.train_codes, u, y, self.params.w_q, omega, self.r)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext,
                      idx: torch.Tensor | None = None) -> LossTerms:
        if idx is None:
            raise TypeError("ADSH trains with index_batches: training_loss needs idx, the batch's positions")
        u = self.hash_images(x)
        v = self.train_codes.to(u.device)
        labels = self.train_labels.to(y.device)
        # the similarity's weight of this round's queries, or of the batch's after a resume
        s = soft_similarity(y, labels, dissimilar_weight(y, labels) if self.r is None else self.r)
        loss, terms = adsh_loss(u, v, s, v[idx.to(u.device)], self.params.w_q)
        return loss, {k: float(v.detach()) for k, v in terms.items()}
