import numpy as np
import pytest
import torch
from torch import nn

from vsb2net.config import ModelConfig, TrainConfig
from vsb2net.models import METHODS, ClassContext, images_to_tensor, lle_weights
from vsb2net.training import train


def test_lle_weights_reconstruct_points_in_the_span_of_their_neighbours():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 5))
    # a class vector that is an affine combination of three others is rebuilt exactly from them
    vecs = np.vstack([base, 0.2 * base[0] + 0.3 * base[1] + 0.5 * base[2], rng.normal(size=(2, 5)) * 10])
    w = lle_weights(vecs, k=3, reg=1e-9)
    assert np.allclose(w.sum(1), 1.0, atol=1e-5)
    assert np.allclose(np.diag(w), 0)
    assert np.allclose(w[3] @ vecs, vecs[3], atol=1e-3)
    assert (np.count_nonzero(w, axis=1) <= 3).all()


def make(bits=32, **kw):
    cfg = ModelConfig.of(bits=bits, feature_dim=32, semantic_hidden=32, **kw)
    return METHODS.get("vsb2net")(cfg, (1, 28, 28), 8)


def ctx(n_train=3, n_span=4):
    v = torch.from_numpy(np.random.default_rng(1).normal(size=(n_span, 8)).astype(np.float32))
    return ClassContext(v, n_train, torch.from_numpy(lle_weights(v.numpy(), 2)))


@pytest.mark.parametrize("bits", [16, 32, 48, 64])
def test_shapes_and_every_term(bits):
    torch.manual_seed(0)
    m = make(bits)
    x = torch.randn(5, 1, 28, 28)
    assert m.hash_images(x).shape == (5, bits)
    assert m.hash_classes(torch.randn(4, 8)).shape == (4, bits)
    loss, terms = m.training_loss(x, torch.tensor([0, 1, 2, 0, 1]), ctx())
    assert set(terms) == {"cls", "rec", "rel", "dis", "q"}
    assert torch.isfinite(loss)


def test_a_zero_weight_switches_the_term_off():
    m = make(w_rec=0, w_rel=0, w_dis=0, w_q=0)
    assert m.decoder is None
    _, terms = m.training_loss(torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 0]), ctx())
    assert set(terms) == {"cls"}


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_training_reduces_the_loss_and_is_deterministic(mixup):
    rng = np.random.default_rng(0)
    imgs = (rng.random((60, 28, 28)) * 255).astype(np.uint8)
    y = np.repeat(np.arange(3), 20)
    imgs[y == 1, :14] = 255  # make the classes learnable
    imgs[y == 2, 14:] = 0
    x = images_to_tensor(imgs)
    codes = []
    for _ in range(2):
        torch.manual_seed(0)
        m = make()
        res = train(m, x, torch.from_numpy(y), ctx(3, 3), TrainConfig(batch_size=16, progress=False, mixup=mixup),
                    epochs=4, device=torch.device("cpu"))
        m.eval()
        with torch.no_grad():
            codes.append(m.hash_images(x).numpy())
    assert res.history[-1]["cls"] < res.history[0]["cls"]
    assert np.array_equal(codes[0], codes[1])


def test_images_to_tensor_range_and_layout():
    t = images_to_tensor(np.array([[[0, 255]]], dtype=np.uint8))
    assert t.shape == (1, 1, 1, 2) and t.min() == -1 and t.max() == 1
    assert images_to_tensor(np.zeros((2, 4, 4, 3), np.uint8)).shape == (2, 3, 4, 4)


def test_semantic_smoothing_changes_the_target_not_the_terms():
    torch.manual_seed(0)
    x, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 0, 1, 2])
    c = ctx(3, 3)
    hard = make()
    soft = make(cls_semantic_smoothing=0.3)
    soft.load_state_dict(hard.state_dict())
    _, t_hard = hard.training_loss(x, y, c)
    _, t_soft = soft.training_loss(x, y, c)
    assert set(t_hard) == set(t_soft)
    assert t_hard["cls"] != pytest.approx(t_soft["cls"])
    assert t_hard["rec"] == pytest.approx(t_soft["rec"])


# ----------------------------------------------------------------------------- each term's formula

class _Fixed(torch.nn.Module):
    """A stand-in branch that returns fixed outputs, so each term can be computed by hand."""

    def __init__(self, out, out_dim=None):
        super().__init__()
        self.out = out
        self.out_dim = out_dim or out.shape[1]

    def forward(self, _x):
        return self.out


def _hand_model(**kw):
    """VSB2-Net with 4 bits whose branches return known values: u = tanh(atanh(U)) = U, z = Z (the
    linear code layer: centring the head's two outputs over the batch would move U)."""
    cfg = ModelConfig.of(bits=4, feature_dim=2, semantic_hidden=4, alpha=2.0, w_rec=1, w_rel=1, w_dis=1, w_q=1,
                      center_semantics=False, code_layer="linear", **kw)
    m = METHODS.get("vsb2net")(cfg, (1, 28, 28), 2)
    U = torch.tensor([[0.5, -0.5, 0.5, 0.5], [-0.5, -0.5, 0.5, -0.5]])
    Z = torch.tensor([[0.5, 0.5, 0.5, 0.5], [-0.5, -0.5, -0.5, 0.5], [0.5, -0.5, 0.5, -0.5]])
    F_ = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    m.backbone = _Fixed(F_)
    m.hash_head = _Fixed(torch.atanh(U))
    m.semantic = _Fixed(torch.atanh(Z))
    m.decoder = _Fixed(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))
    lle = torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    c = ClassContext(torch.zeros(3, 2), 2, lle)
    return m, U, Z, c


def test_each_loss_term_matches_its_formula_on_a_hand_computed_case():
    m, U, Z, c = _hand_model()
    y = torch.tensor([0, 1])
    loss, t = m.training_loss(torch.zeros(2, 1, 28, 28), y, c)
    k = 4
    # L_cls: logits alpha <u, z_c>/K over the 2 training classes; the inner products by hand:
    # U0.Z0 = .25-.25+.25+.25 = .5, U0.Z1 = -.25+.25-.25+.25 = 0; U1.Z0 = -.25-.25+.25-.25 = -.5,
    # U1.Z1 = .25+.25-.25-.25 = 0.  logits = 2 * ip / 4.
    l0 = torch.tensor([0.25, 0.0])
    l1 = torch.tensor([-0.25, 0.0])
    cls = 0.5 * (-(l0[0] - torch.logsumexp(l0, 0)) - (l1[1] - torch.logsumexp(l1, 0)))
    assert t["cls"] == pytest.approx(float(cls), abs=1e-6)
    # L_rec: decoder output vs f standardised per dimension over the batch: f = [[1,3],[3,1]] -> [[-1,1],[1,-1]]
    rec = ((torch.tensor([[0.0, 0.0], [2.0, 0.0]]) - torch.tensor([[-1.0, 1.0], [1.0, -1.0]])) ** 2).mean()
    assert t["rec"] == pytest.approx(float(rec), abs=1e-4)
    # L_rel: ||z_c - sum_j w_cj z_j||^2 / K, mean over the 3 span classes
    rel = sum(float(((Z[i] - c.lle[i] @ Z) ** 2).sum()) for i in range(3)) / 3 / k
    assert t["rel"] == pytest.approx(rel, abs=1e-6)
    # L_dis: mean over ordered pairs c != c' of relu(<z_c, z_c'>/K - m)^2 with margin 0
    sims = [float(Z[i] @ Z[j]) / k for i in range(3) for j in range(3) if i != j]
    assert t["dis"] == pytest.approx(np.mean([max(s, 0.0) ** 2 for s in sims]), abs=1e-6)
    # L_q: (||u - sign u||^2 + ||z - sign z||^2) / K, each a mean over its rows: every entry is 0.25 off
    assert t["q"] == pytest.approx((4 * 0.25 + 4 * 0.25) / k, abs=1e-6)
    assert float(loss) == pytest.approx(sum(t.values()), abs=1e-5)


def test_discrepancy_margin_spares_pairs_below_it():
    m, _, Z, c = _hand_model(dis_margin=0.2)
    _, t = m.training_loss(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), c)
    sims = [float(Z[i] @ Z[j]) / 4 for i in range(3) for j in range(3) if i != j]
    assert t["dis"] == pytest.approx(np.mean([max(s - 0.2, 0.0) ** 2 for s in sims]), abs=1e-6)


def test_similarity_term_matches_its_formula_on_the_hand_computed_case():
    m, U, _, c = _hand_model(w_sim=2.0)
    loss, t = m.training_loss(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), c)
    # f = [[1,3],[3,1]] centred: [[-1,1],[1,-1]], cosines [[1,-1],[-1,1]]; <u_i,u_j>/4 by hand:
    # U0.U0 = 4 * .25 = 1 -> .25, U0.U1 = -.25+.25+.25-.25 = 0, U1.U1 = 1 -> .25
    want = ((torch.tensor([[0.25, 0.0], [0.0, 0.25]]) - torch.tensor([[1.0, -1.0], [-1.0, 1.0]])) ** 2).mean()
    assert t["sim"] == pytest.approx(float(want), abs=1e-6)
    assert float(loss) == pytest.approx(sum(t.values()) + t["sim"], abs=1e-5)  # weighted 2


def test_semantic_noise_jitters_the_class_vectors_by_their_spread():
    class Recording(nn.Module):
        def __init__(self, out):
            super().__init__()
            self.out, self.seen = out, []

        def forward(self, v):
            self.seen.append(v.clone())
            return self.out

    vectors = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0]])  # spread over the 2 training classes: (1, 0)
    for noise in (0.0, 0.5):
        m, _, Z, c = _hand_model(semantic_noise=noise)
        m.semantic = Recording(torch.atanh(Z))
        c = ClassContext(vectors, 2, c.lle)
        torch.manual_seed(0)
        for _ in range(400):
            m.training_loss(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]), c)
        jitter = torch.stack(m.semantic.seen) - vectors
        # dimension 0 is jittered by noise * 1; dimension 1 has no spread over the training classes
        assert float(jitter[..., 0].std()) == pytest.approx(noise, abs=0.03)
        assert float(jitter[..., 1].abs().max()) < 1e-5


def test_relation_class_codes_rebuild_a_class_from_its_neighbours_mean_image_codes():
    from vsb2net.models.relations import reconstruction_weights

    torch.manual_seed(0)
    m = make(class_codes="relation")
    c = ctx(n_train=3, n_span=3)
    x = torch.randn(12, 1, 28, 28)
    y = torch.arange(12) % 3
    m.set_class_reference(c.vectors)
    m.train()
    semantic = m.hash_classes(c.vectors)  # training: always the semantic branch
    m.post_fit(x, y, c, torch.device("cpu"))
    assert m.training  # post_fit read the codes in eval mode and left the mode as it was
    m.eval()
    u = m.hash_images(x)
    means = torch.stack([u[y == k].mean(0) for k in range(3)])
    assert torch.allclose(m.seen_mean_codes, means, atol=1e-6)
    query = torch.randn(2, c.vectors.shape[1])
    w = torch.from_numpy(reconstruction_weights(query.numpy(), c.vectors.numpy(), 3))
    assert torch.allclose(m.hash_classes(query), w @ means, atol=1e-5)
    assert not torch.allclose(m.hash_classes(c.vectors), semantic)
    # the buffers travel with the checkpoint, whatever the number of training classes
    fresh = make(class_codes="relation")
    fresh.load_state_dict(m.state_dict())
    fresh.eval()
    assert torch.allclose(fresh.hash_classes(query), m.hash_classes(query))


def test_semantic_checkpoints_hold_no_relation_buffers():
    # checkpoints written before class_codes existed must still load, and index fingerprints stay
    assert not {"seen_vectors", "seen_mean_codes"} & set(make(class_codes="semantic").state_dict())
    assert {"seen_vectors", "seen_mean_codes"} <= set(make(class_codes="relation").state_dict())


def test_a_run_saved_before_class_codes_existed_keeps_semantic_class_codes():
    from vsb2net.config import saved_config_from_dict

    old = {"model": {"method": "vsb2net", "bits": 16}}
    assert saved_config_from_dict(old).model.params.class_codes == "semantic"
    assert old == {"model": {"method": "vsb2net", "bits": 16}}  # the caller's dict is left alone
    assert saved_config_from_dict({"model": {"class_codes": "relation"}}).model.params.class_codes == "relation"
    assert saved_config_from_dict({}).model.params.class_codes == "relation"  # nothing saved: today's default
