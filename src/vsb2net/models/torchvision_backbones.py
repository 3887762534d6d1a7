"""Torchvision image backbones (ResNet-18/34/50/101, and more) for image inputs of any resolution.

An optional extra: the core never imports torchvision.  Weights (``model.backbone_weights``):

* ``imagenet``: torchvision's ImageNet weights, from its cache or, when the machine can reach
  the internet, downloaded once into it.  Offline and not cached: a clear error naming the file
  to fetch and the other two choices.
* a path to a local weights file (a torchvision state dict, e.g. ``resnet18-f37072fd.pth``).
* ``random``: random initialisation, only when asked for explicitly.

The classification layer is replaced by a linear layer to ``model.feature_dim`` + ReLU, so a
torchvision backbone is a drop-in for ``cnn28`` in every method.  Images are mapped from our
[-1, 1] scale to ImageNet's normalisation; greyscale images are repeated to three channels, and
images smaller than 32x32 (MNIST-style 28x28) are upsampled to 32 pixels on their short side,
since the models shrink their input 32-fold (``data.image_size`` resizes them further).
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VsbError
from .backbones import BACKBONES, Backbone

INSTALL = ("torchvision is not installed. It is an optional extra: on x86_64 Linux "
           "`pip install torch==2.14.1 torchvision==0.29.1` (the torchvision wheel on PyPI does not import "
           "beside the torch 2.13.0 CPU wheel); elsewhere a torch/torchvision pair from pytorch.org.")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: torchvision model names registered as backbones
#: smaller images are upsampled to this side: every registered model shrinks its input 32-fold
#: (convnext_tiny fails below 32x32; 28x28 MNIST-style images would reach a 0-pixel map)
MIN_SIDE = 32
MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "mobilenet_v3_small", "efficientnet_b0",
          "convnext_tiny")


def _torchvision() -> Any:
    try:
        return importlib.import_module("torchvision")
    except ImportError:
        raise VsbError(INSTALL) from None
    except Exception as exc:  # e.g. "operator torchvision::nms does not exist": a torch/torchvision mismatch
        raise VsbError(f"torchvision is installed but does not import ({type(exc).__name__}: {exc}); its "
                       f"version must match torch {torch.__version__}. {INSTALL}") from None


def _strip_classifier(net: nn.Module, name: str) -> tuple[int, str]:
    """Replace the last linear layer of the classification head by Identity.

    Returns its input width and its parameter prefix in a state dict (e.g. ``fc.``).
    """
    for attr in ("fc", "classifier", "head"):
        head = getattr(net, attr, None)
        if isinstance(head, nn.Linear):
            setattr(net, attr, nn.Identity())
            return head.in_features, f"{attr}."
        if isinstance(head, nn.Sequential):
            for i in reversed(range(len(head))):
                layer = head[i]
                if isinstance(layer, nn.Linear):
                    head[i] = nn.Identity()
                    return layer.in_features, f"{attr}.{i}."
    raise VsbError(f"torchvision model {name!r} has no linear classification layer vsb2net knows how to replace.")


def _weights_file(name: str, weights: Any) -> str:
    url, cache = getattr(weights, "url", "?"), _cache_path(weights)
    return (f"could not get the ImageNet weights of {name} ({url}): this machine seems offline and they are "
            f"not in torchvision's cache. Copy that file to {cache}, or pass model.backbone_weights=PATH "
            "with a local copy, or model.backbone_weights=random to train from random initialisation.")


def build_torchvision(name: str, weights: str) -> tuple[nn.Module, int]:
    tv = _torchvision()
    try:
        enum = tv.models.get_model_weights(name)
    except Exception:  # noqa: BLE001 - unknown model in this torchvision version
        raise VsbError(f"this torchvision ({getattr(tv, '__version__', '?')}) has no model {name!r}.") from None
    choice = weights.strip()
    if choice.lower() == "random":
        net = tv.models.get_model(name, weights=None)
    elif choice.lower() == "imagenet":
        w = enum.DEFAULT
        try:
            net = tv.models.get_model(name, weights=w)
        except OSError:  # urllib's URLError when offline
            raise VsbError(_weights_file(name, w)) from None
        except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:  # a damaged file in the cache
            raise VsbError(f"torchvision's cached ImageNet weights of {name} are damaged ({_first_line(exc)}); "
                           f"delete {_cache_path(w)} and run again, or pass model.backbone_weights=PATH.") from None
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise VsbError(f"model.backbone_weights = {choice!r}: no such file. Give a torchvision weights file "
                           "(a state dict saved with torch.save), 'imagenet' or 'random'.")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise VsbError(f"the weights file {path} holds more than tensors (a whole pickled model?); save "
                           "model.state_dict() with torch.save and give that file.") from None
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the file's fault
            raise VsbError(f"cannot read the weights file {path} ({type(exc).__name__}: {_first_line(exc)}).") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise VsbError(f"the weights file {path} holds a {type(state).__name__}, not a state dict; save "
                           "model.state_dict() with torch.save.")
        net = tv.models.get_model(name, weights=None)
        width, prefix = _strip_classifier(net, name)
        # the file's classifier (ImageNet's 1000 classes or a fine-tuned one) is dropped anyway
        state = {k: v for k, v in state.items() if not str(k).startswith(prefix)}
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            detail = next((ln.strip() for ln in str(exc).splitlines()
                           if ln.strip() and not ln.strip().startswith("Error(s) in loading")), str(exc))
            raise VsbError(f"the weights file {path} does not fit torchvision's {name} ({detail[:300]}).") from None
        return net, width
    return net, _strip_classifier(net, name)[0]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _cache_path(weights: Any) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(getattr(weights, "url", "?")).name


class TorchvisionBackbone(Backbone):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, name: str, in_shape: tuple[int, ...], feature_dim: int, weights: str = "imagenet"):
        super().__init__()
        if len(in_shape) != 3:
            raise VsbError(f"backbone {name!r} takes images; got inputs of shape {tuple(in_shape)}. Use "
                           "model.backbone=auto for precomputed features.")
        self.in_channels = in_shape[0]
        self.net, width = build_torchvision(name, weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.fc = nn.Sequential(nn.Linear(width, feature_dim), nn.ReLU(inplace=True))
        self.out_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise VsbError(f"torchvision backbones take 1- or 3-channel images, got {x.shape[1]} channels.")
        if min(x.shape[-2:]) < MIN_SIDE:
            scale = MIN_SIDE / min(x.shape[-2:])
            size = (max(MIN_SIDE, round(x.shape[-2] * scale)), max(MIN_SIDE, round(x.shape[-1] * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.fc(self.net(x))


def _register(name: str) -> None:
    def factory(in_shape: tuple[int, ...], feature_dim: int, weights: str = "imagenet") -> TorchvisionBackbone:
        return TorchvisionBackbone(name, in_shape, feature_dim, weights)

    BACKBONES.register(name, help=f"torchvision {name} (optional extra; model.backbone_weights: "
                                  "imagenet, random or a weights file)")(factory)


for _name in MODELS:
    _register(_name)
