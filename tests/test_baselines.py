
import numpy as np
import pytest
import torch

from vsb2net.config import ModelConfig, TrainConfig
from vsb2net.models import METHODS, ClassContext, create_method, images_to_tensor, lle_weights
from vsb2net.models.feature_hashing import itq_rotation
from vsb2net.models.relations import hash_centres


def test_itq_rotation_is_orthogonal_and_lowers_quantisation_error():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    r = itq_rotation(v, iterations=30)
    assert np.allclose(r @ r.T, np.eye(8), atol=1e-8)
    err = lambda m: np.linalg.norm(np.sign(m) - m)  # noqa: E731
    assert err(v @ r) < err(v @ itq_rotation(v, iterations=0))


def test_hash_centres_are_far_apart():
    c = hash_centres(10, 32)
    assert c.shape == (10, 32) and set(np.unique(c)) == {-1.0, 1.0}
    d = (32 - c @ c.T) / 2
    assert d[~np.eye(10, dtype=bool)].min() >= 16  # Hadamard rows: exactly half the bits differ
    assert hash_centres(10, 48).shape == (10, 48)


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    imgs = (rng.random((90, 28, 28)) * 60).astype(np.uint8)
    for c in range(3):
        imgs[y == c, c * 9:(c + 1) * 9, :] = 255
    v = torch.from_numpy(rng.normal(size=(3, 8)).astype(np.float32))
    ctx = ClassContext(v, 3, torch.from_numpy(lle_weights(v.numpy(), 2)))
    return images_to_tensor(imgs), torch.from_numpy(y), ctx


@pytest.mark.parametrize("name", [n for n in METHODS.names() if n != "vsb2net"])
def test_every_baseline_trains_and_codes_by_class(name, toy):
    x, y, ctx = toy
    m = _fit(name, ModelConfig.of(name, bits=16, feature_dim=32), toy,
             TrainConfig(batch_size=16, progress=False, lr=3e-3), 3)
    m.eval()
    with torch.no_grad():
        b = torch.sign(m.hash_images(x)).numpy()
    assert b.shape == (90, 16)
    same = np.equal.outer(y.numpy(), y.numpy())
    agree = (b @ b.T) / 16
    gap = agree[same].mean() - agree[~same].mean()
    if name == "random":
        assert abs(gap) < 0.1, "random codes must not know the classes"
    else:
        assert gap > 0.2, f"{name} codes do not separate three trivially different classes"
    state = {k: v.clone() for k, v in m.state_dict().items()}
    fresh = create_method(name, ModelConfig.of(name, bits=16, feature_dim=32), (1, 28, 28), 8)
    fresh.load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        assert np.array_equal(np.sign(fresh.hash_images(x).numpy()), b)
    if name == "tsk":
        with torch.no_grad():
            assert m.hash_classes(ctx.vectors).shape == (3, 16)


def _fit(name: str, mcfg: ModelConfig, toy, tcfg: TrainConfig, epochs: int):
    """A method fitted on the toy data by the one fit lifecycle (``pipeline.fit_method``); the class
    context is built from ``mcfg`` (the fourth class is unseen: its vector only)."""
    from vsb2net.config import RunConfig
    from vsb2net.data.base import Dataset
    from vsb2net.data.splits import ZeroShotSplit
    from vsb2net.pipeline import Prepared, fit_method

    x, y, ctx = toy
    vectors = np.vstack([ctx.vectors.numpy(), np.ones((1, 8), np.float32)])
    labels = y.numpy()
    every = np.arange(len(labels))
    split = ZeroShotSplit(seen=[0, 1, 2], unseen=[3], train=every, database=every, query_seen=every[:0],
                          query_unseen=every[:0])
    ds = Dataset(name="toy", x=np.zeros((len(labels), 1), np.float32), labels=labels,
                 class_names=["a", "b", "c"], kind="features")
    prep = Prepared(ds, split, vectors, x)
    cfg = RunConfig(model=mcfg, train=tcfg)
    model, _ = fit_method(cfg, prep, split, epochs, torch.device("cpu"), name)
    return model
