"""model.backbone=efficientnet-lite0: the offline ImageNet weights, the frozen trunk's on-disk
cache, fine-tuning of the last blocks, and a run that codes images and cached features alike."""
import json

import numpy as np
import pytest
import torch

from vsb2net.cli import main
from vsb2net.config import build_config
from vsb2net.errors import VsbError
from vsb2net.models import efficientnet_lite as eff
from vsb2net.models import images_to_tensor
from vsb2net.models.feature_cache import cache_dir, cache_key, trunk_output

pytest.importorskip("efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch not installed (make install)")


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return eff.EfficientNetLite((1, 28, 28), 16).eval()


@pytest.fixture(scope="module")
def images():
    g = np.random.default_rng(0)
    return images_to_tensor(g.integers(0, 256, (6, 28, 28), dtype=np.uint8))


def test_packaged_weights_are_the_pinned_imagenet_file():
    path, sha = eff._weights_path("efficientnet-lite0")
    assert eff.file_sha256(path) == sha
    state, ident = eff.load_weights("efficientnet-lite0", "imagenet")
    assert ident == sha and len(state) == 296  # every tensor of the architecture, loaded strictly


def test_a_damaged_or_foreign_weights_file_is_refused(tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(VsbError, match="not a PyTorch weights file"):
        eff.EfficientNetLite((1, 28, 28), 16, weights=str(bad))
    torch.save({"model": torch.nn.Linear(1, 1)}, bad)  # a pickled module: refused unread
    with pytest.raises(VsbError, match="holds more than tensors"):
        eff.EfficientNetLite((1, 28, 28), 16, weights=str(bad))
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(VsbError, match="does not fit efficientnet-lite0"):
        eff.EfficientNetLite((1, 28, 28), 16, weights=str(bad))
    with pytest.raises(VsbError, match="no such file"):
        eff.EfficientNetLite((1, 28, 28), 16, weights=str(tmp_path / "missing.pth"))


def test_images_and_cached_trunk_output_give_the_same_features(backbone, images):
    with torch.no_grad():
        cached = backbone.frozen_features(images)
        assert cached.shape == (6, backbone.cached_channels) == (6, 1280)
        assert torch.allclose(backbone(images), backbone(cached), atol=1e-5)
    with pytest.raises(VsbError, match="1- or 3-channel images"):
        backbone(torch.zeros(2, 5, 28, 28))


def test_the_trunk_stays_frozen_and_in_eval_mode_while_training(backbone):
    backbone.train()
    try:
        assert not backbone.trunk.training
        assert not any(p.requires_grad for p in backbone.trunk.parameters())
        assert all(p.requires_grad for p in backbone.fc.parameters())
    finally:
        backbone.eval()


def test_finetuning_the_last_blocks_caches_the_part_before_them(images):
    torch.manual_seed(0)
    bb = eff.EfficientNetLite((1, 28, 28), 16, finetune_blocks=2)
    with torch.no_grad():
        cached = bb.frozen_features(images)
        assert cached.ndim == 4 and cached.shape[1] == bb.cached_channels != 1280
        assert torch.allclose(bb(images), bb(cached), atol=1e-5)
    trainable = {n.split(".")[0] for n, p in bb.named_parameters() if p.requires_grad}
    assert trainable == {"tuned", "fc"}
    with pytest.raises(VsbError, match="finetune_blocks = 99"):
        eff.EfficientNetLite((1, 28, 28), 16, finetune_blocks=99)


def test_the_cache_is_keyed_by_images_and_trunk_and_written_once(backbone, images, tmp_path, capsys):
    first = trunk_output(backbone, images, str(tmp_path), log=print)
    files = sorted(tmp_path.glob("*.npy"))
    assert len(files) == 1 and "computed the frozen trunk output of 6 images" in capsys.readouterr().out
    mtime = files[0].stat().st_mtime_ns
    again = trunk_output(backbone, images, str(tmp_path), log=print)
    assert "cached" in capsys.readouterr().out and files[0].stat().st_mtime_ns == mtime
    assert torch.equal(first, again)
    meta = json.loads(files[0].with_suffix(".json").read_text())
    assert meta["weights_sha256"] == eff.WEIGHTS["efficientnet-lite0"][2] and meta["images_shape"] == [6, 1, 28, 28]
    # other images, or the same images through another frozen part: another key
    assert cache_key(backbone, images[:5])[0] != cache_key(backbone, images)[0]
    other = eff.EfficientNetLite((1, 28, 28), 16, finetune_blocks=1)
    assert cache_key(other, images)[0] != cache_key(backbone, images)[0]
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_a_damaged_cache_file_is_computed_again(backbone, images, tmp_path, capsys):
    trunk_output(backbone, images, str(tmp_path))
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(path.read_bytes()[:100])
    out = trunk_output(backbone, images, str(tmp_path), log=print)
    assert "damaged" in capsys.readouterr().out and out.shape == (6, 1280)
    assert np.load(path).shape == (6, 1280)


def test_cache_settings(tmp_path, monkeypatch):
    assert cache_dir("none") is None
    monkeypatch.setenv("VSB2NET_CACHE", str(tmp_path))
    assert cache_dir("auto") == tmp_path / "features"
    assert cache_dir(str(tmp_path / "x")) == tmp_path / "x"


@pytest.mark.parametrize("override, message", [
    ("model.backbone_weights=random", "random weights would never learn"),
    ("train.augment=shift", "cannot be augmented"),
    ("model.rec_target=input", "cached trunk output"),
])
def test_settings_that_cannot_work_with_a_frozen_trunk_are_refused(override, message):
    with pytest.raises(VsbError, match=message):
        build_config(None, ["model.backbone=efficientnet-lite0", override])


@pytest.mark.slow
def test_a_run_trains_on_cached_features_and_codes_image_files(tmp_path, monkeypatch):
    from PIL import Image

    from vsb2net.pipeline import prepare
    from vsb2net.run import Run

    monkeypatch.setenv("VSB2NET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "runs"
    assert main(["run", "--max-per-class", "12", "--epochs", "1", "--bits", "16", "--no-progress",
                 "--set", "model.backbone=efficientnet-lite0", "--set", "model.feature_dim=32",
                 "--out", str(out), "--name", "e"]) == 0
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 1
    # the report sets its split beside chance, not beside the benchmark's cnn28 means
    report = (out / "e" / "report.md").read_text()
    assert "This split against chance" in report and "and the benchmark" not in report
    loaded = Run.load(out / "e")
    cfg, model, ckpt = loaded.cfg, loaded.model, loaded.ckpt
    assert ckpt["in_shape"] == [1, 28, 28]  # the model codes images, not only the cached tensor
    prep = prepare(cfg)
    i = int(np.load(out / "e" / "codes.npz")["database_index"][0])
    Image.fromarray(prep.dataset.x[i]).save(tmp_path / "q.png")
    assert main(["index", "build", str(out / "e"), "--dataset", "animal-mnist", "-o", str(tmp_path / "i.vsbidx")]) == 0
    assert main(["search", str(out / "e"), str(tmp_path / "i.vsbidx"), "--image", str(tmp_path / "q.png"),
                 "-k", "1", "--json"]) == 0
    with torch.no_grad():
        a = model.hash_images(images_to_tensor(prep.dataset.x[i:i + 1]))
        b = model.hash_images(prep.x[i:i + 1])
    assert torch.equal(torch.sign(a), torch.sign(b))
