"""The field's deep hashing losses against cases computed by hand from each paper's formula."""
import math

import numpy as np
import pytest
import torch

from vsb2net.models.adsh import adsh_loss, dcc_update, dissimilar_weight, soft_similarity
from vsb2net.models.dpn import dpn_loss
from vsb2net.models.dpsh import dpsh_loss
from vsb2net.models.dsh import dsh_loss
from vsb2net.models.greedyhash import greedy_sign, greedyhash_loss
from vsb2net.models.hashnet import hashnet_loss
from vsb2net.models.orthohash import orthohash_loss

T = torch.tensor


def test_dsh_pulls_similar_pairs_and_pushes_dissimilar_ones_to_the_margin():
    b = T([[1.0, 0.0], [0.0, 1.0]])  # ||b1 - b2||^2 = 2; || |b| - 1 ||_1 = 1 for each
    loss, terms = dsh_loss(b, T([0, 0]), margin=2.0, alpha=0.01)
    assert float(terms["pair"]) == pytest.approx(0.5 * 2)            # 1/2 ||b1 - b2||^2
    assert float(loss) == pytest.approx(1 + 0.01 * 2)                # + alpha (1 + 1)
    _, terms = dsh_loss(b, T([0, 1]), margin=3.0, alpha=0.01)         # m = 3K = 6
    assert float(terms["pair"]) == pytest.approx(0.5 * (6 - 2))
    _, terms = dsh_loss(b, T([0, 1]), margin=0.5, alpha=0.01)         # beyond the margin: no loss
    assert float(terms["pair"]) == 0



def test_dsh_trains_with_the_authors_gradient_up_to_a_factor_two():
    """The first author's Caffe layer (hashing_loss_layer.cpp), written here as loops.  Forward:
    over the pairs i < j, ||b_i - b_j||^2 if similar else max(m - ||b_i - b_j||^2, 0), divided by
    N (N - 1), plus tradeoff / N sum_i || |b_i| - 1 ||_1.  Backward: +-(b_i - b_j) / (N (N - 1)) per
    active pair (half that pair term's derivative) and tradeoff / N times the regulariser's sign."""
    rng = np.random.default_rng(0)
    b, y = rng.normal(size=(6, 4)), np.array([0, 0, 1, 1, 2, 0])
    n, m, tradeoff = len(b), 2.0 * 4, 0.01
    pairs, grad = 0.0, np.zeros_like(b)
    for i in range(n):
        for j in range(i + 1, n):
            diff = b[i] - b[j]
            d = float(diff @ diff)
            if y[i] == y[j]:
                pairs += d
                grad[i] += diff / (n * (n - 1))
                grad[j] -= diff / (n * (n - 1))
            elif m - d > 0:
                pairs += m - d
                grad[i] -= diff / (n * (n - 1))
                grad[j] += diff / (n * (n - 1))
    grad += tradeoff / n * np.where((b >= 1) | ((b <= 0) & (b >= -1)), 1.0, -1.0)
    reg = float(np.abs(np.abs(b) - 1).sum()) / n
    bt = torch.from_numpy(b).requires_grad_()
    loss, terms = dsh_loss(bt, torch.from_numpy(y), margin=2.0, alpha=tradeoff)
    loss.backward()
    assert float(terms["pair"].detach()) == pytest.approx(pairs / (n * (n - 1)), rel=1e-9)
    # the paper's per-pair form counts both images of every pair: twice the release's forward value
    assert float(terms["reg"].detach()) == pytest.approx(2 * reg, rel=1e-9)
    # but the release trains with half the pair term's derivative: the same weighting as ours
    assert np.allclose(bt.grad.numpy(), 2 * grad, rtol=1e-9, atol=1e-12)


def test_dpsh_is_the_negative_log_likelihood_of_the_pair_labels():
    u = T([[1.0, 1.0], [1.0, -1.0]])  # Theta = 0; u = sign(u), so no penalty
    loss, _ = dpsh_loss(u, T([0, 0]), eta=10.0)
    assert float(loss) == pytest.approx(math.log(2))
    u = T([[2.0, 0.0], [1.0, 0.0]])   # Theta = 1, dissimilar; (b - u)^2 = 1, 0, 0, 0 (sign(0) = 0)
    loss, terms = dpsh_loss(u, T([0, 1]), eta=0.1)
    assert float(terms["pair"]) == pytest.approx(math.log(1 + math.e))
    assert float(loss) == pytest.approx(math.log(1 + math.e) + 0.1 * 0.25)


def test_hashnet_weights_similar_and_dissimilar_pairs_by_their_share():
    h = T([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    # 6 ordered pairs: 2 similar (w = 6/2), 4 dissimilar (w = 6/4); inner products 1 and -1
    loss, _ = hashnet_loss(h, T([0, 0, 1]), alpha=1.0)
    l_sim, l_dis = math.log(1 + math.e) - 1, math.log(1 + math.exp(-1))
    assert float(loss) == pytest.approx((2 * 3 * l_sim + 4 * 1.5 * l_dis) / 6)


def test_adsh_ties_network_codes_to_the_learned_codes_asymmetrically():
    u, v = T([[1.0, 0.0]]), T([[1.0, 1.0], [-1.0, 1.0]])
    s = T([[1.0, -1.0]])                       # K S = (2, -2); u^T v = (1, -1)
    loss, terms = adsh_loss(u, v, s, v[[0]], gamma=200.0)
    assert float(terms["asym"]) == pytest.approx((1 + 1) / 2)
    assert float(terms["q"]) == pytest.approx(1 / 2)              # ||v_0 - u||^2 = 1, over |B| |Gamma| = 2
    assert float(loss) == pytest.approx(1 + 200 * 0.5)


def test_adsh_similarity_is_the_references_soft_one():
    """The reference (ADSH_pytorch's calc_sim): S = 1 for a shared class, else -r with
    r = #similar / #dissimilar pairs of the block, so that S sums to zero."""
    y = T([0, 0, 1]).long()
    # pairs (with each item itself, as the reference counts them): 5 similar, 4 dissimilar
    assert dissimilar_weight(y, y) == pytest.approx(5 / 4)
    s = soft_similarity(y, y, 5 / 4)
    assert s.tolist() == [[1.0, 1.0, -1.25], [1.0, 1.0, -1.25], [-1.25, -1.25, 1.0]]
    assert float(s.sum()) == pytest.approx(0.0)
    # eight balanced classes: every column of the hard +-1 similarity sums to -0.75 N, the soft one to 0
    y = torch.arange(8).repeat(5)
    hard = 2 * (y[:, None] == y[None, :]).float() - 1
    assert float(hard.sum(0)[0]) == pytest.approx(-0.75 * 40)
    assert soft_similarity(y, y, dissimilar_weight(y, y)).sum(0).abs().max() < 1e-5


def test_adsh_dcc_step_solves_each_bit_and_lowers_the_objective():
    # one bit, soft S with r = 1 here (2 similar, 2 dissimilar pairs): V = sign(K S^T u + gamma u)
    u, y = T([[0.5], [-0.5]]), T([0, 1]).long()
    assert dcc_update(T([[-1.0], [1.0]]), u, y, gamma=1.0).tolist() == [[1.0], [-1.0]]
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.integers(0, 3, 60))
    u = torch.tanh(torch.from_numpy(rng.normal(size=(60, 8))).float() + 2 * torch.nn.functional.one_hot(y, 8))
    s = soft_similarity(y, y, dissimilar_weight(y, y))

    def objective(v):
        return float((u @ v.T - 8 * s).pow(2).sum() + 50 * (v - u).pow(2).sum())

    v0 = torch.from_numpy(np.where(rng.random((60, 8)) < 0.5, -1.0, 1.0)).float()
    v1 = dcc_update(v0, u, y, gamma=50.0)
    assert set(v1.unique().tolist()) <= {-1.0, 1.0}
    assert objective(v1) < objective(v0)
    # sampled queries: only their rows are tied to the network (U_bar), and from V = 0 (the
    # reference's start) one pass gives every bit a sign
    omega = torch.arange(0, 60, 3)
    v2 = dcc_update(torch.zeros(60, 8), u[omega], y, gamma=50.0, omega=omega)
    assert set(v2.unique().tolist()) <= {-1.0, 1.0} and len({tuple(r) for r in v2.tolist()}) >= 3


def test_adsh_dcc_step_is_the_references_update_on_sampled_queries():
    """The paper's discrete step, as the reference runs it (ADSH_pytorch/ADSH_CIFAR_10.py), written
    here in numpy: S from one-hot labels, 1 or -r with r = #similar / #dissimilar of the sampled
    block; Q = -2K S^T U - 2 gamma U_bar; bit by bit V_k = -sign(Q_k + 2 V_rest U_rest^T U_k)."""
    rng = np.random.default_rng(1)
    n, k, gamma = 40, 6, 50.0
    y = rng.integers(0, 4, n)
    omega = np.sort(rng.permutation(n)[:15])
    u = np.tanh(rng.normal(size=(15, k)) + 2 * np.eye(4, k)[y[omega]])
    v0 = np.where(rng.random((n, k)) < 0.5, -1.0, 1.0)
    onehot = np.eye(4)[y]
    s = (onehot[omega] @ onehot.T > 0).astype(float)
    r = s.sum() / (1 - s).sum()
    s = s * (1 + r) - r
    u_bar = np.zeros((n, k))
    u_bar[omega] = u
    q = -2 * k * s.T @ u - 2 * gamma * u_bar
    want = v0.copy()
    for bit in range(k):
        rest = [b for b in range(k) if b != bit]
        want[:, bit] = -np.sign(q[:, bit] + 2 * want[:, rest] @ (u[:, rest].T @ u[:, bit]))
    got = dcc_update(torch.from_numpy(v0).float(), torch.from_numpy(u).float(), torch.from_numpy(y), gamma,
                     torch.from_numpy(omega))
    assert np.array_equal(got.numpy(), want)


def test_orthohash_is_a_margin_cross_entropy_over_cosines_to_the_class_codes():
    u, centres = T([[1.0, 0.0]]), T([[1.0, 1.0], [1.0, -1.0]])  # both cosines 1/sqrt(2)
    loss, _ = orthohash_loss(u, centres, T([0]), scale=2.0, margin=0.0)
    assert float(loss) == pytest.approx(math.log(2))
    loss, _ = orthohash_loss(u, centres, T([0]), scale=2.0, margin=0.5)   # log(1 + e^{s m})
    assert float(loss) == pytest.approx(math.log(1 + math.e))
    # multi-label (the authors' label_smoothing): targets labels / #labels, the margin on every label
    centres = T([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]])                 # cosines c, c, -c with c = 1/sqrt(2)
    loss, _ = orthohash_loss(u, centres, T([[1.0, 1.0, 0.0]]), scale=2.0, margin=0.5)
    c = 1 / math.sqrt(2)
    log_p = 2 * (c - 0.5) - math.log(2 * math.exp(2 * (c - 0.5)) + math.exp(-2 * c))
    assert float(loss) == pytest.approx(-log_p, abs=1e-6)               # -(1/2 log p_0 + 1/2 log p_1)


def test_greedyhash_codes_with_sign_and_passes_the_gradient_straight_through():
    h = T([[0.5, -2.0]], requires_grad=True)
    b = greedy_sign(h)
    assert b.tolist() == [[1.0, -1.0]]
    (b * T([[3.0, 4.0]])).sum().backward()
    assert h.grad.tolist() == [[3.0, 4.0]]
    loss, terms = greedyhash_loss(h.detach(), torch.zeros(1, 2), T([1]), alpha=0.1)
    assert float(terms["q"]) == pytest.approx((0.5 ** 3 + 1 ** 3) / 2)   # mean of | |h| - 1 |^3
    assert float(loss) == pytest.approx(math.log(2) + 0.1 * 0.5625)


def test_dpn_is_a_bitwise_hinge_towards_the_target_code():
    loss, _ = dpn_loss(T([[0.5, -2.0]]), T([[1.0, 1.0]]), margin=1.0)
    assert float(loss) == pytest.approx((0.5 + 3.0) / 2)
    loss, _ = dpn_loss(T([[1.5, -2.0]]), T([[1.0, -1.0]]), margin=1.0)   # both beyond the margin
    assert float(loss) == 0
