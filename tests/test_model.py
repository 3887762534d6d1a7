import numpy as np
import pytest
import torch

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
    cfg = ModelConfig(bits=bits, feature_dim=32, semantic_hidden=32, **kw)
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


def test_training_reduces_the_loss_and_is_deterministic():
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
        res = train(m, x, torch.from_numpy(y), ctx(3, 3), TrainConfig(batch_size=16, progress=False),
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
