"""Visual backbones phi(x) -> f.  Each registers itself by name; VSB2-Net and the baselines share them."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..errors import VsbError
from ..registry import Registry
from .base import HashingMethod
from .losses import class_distribution
from .relations import hash_centres


class Backbone(nn.Module):
    """What every registered backbone is: a module from images (or feature vectors) to features of
    width ``out_dim``."""

    out_dim: int


BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone")


def _no_weights_file(name: str, weights: str) -> None:
    # "imagenet" is the default of model.backbone_weights and means nothing to our own backbones,
    # which always start from random initialisation; a file given for them is a mistake to report
    if weights.strip().lower() not in ("imagenet", "random"):
        raise VsbError(f"model.backbone_weights = {weights!r}: backbone {name} trains from random initialisation "
                       "and loads no weights file; weights files are for torchvision backbones (resnet18, ...).")


def images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) -> float tensor (N, C, H, W) scaled to [-1, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None, :, :]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise VsbError(f"images must have shape (N, H, W) or (N, H, W, C); got {x.shape}.")
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    if np.issubdtype(x.dtype, np.integer):
        t = t / 127.5 - 1.0
    return t


@BACKBONES.register("cnn28", help="small CNN for 28x28 grey images, trained end to end")
class SmallCNN(Backbone):
    """Three conv blocks (16/32/64 channels) and a linear layer.

    Narrow on purpose: on 2 CPU cores it trains an Animal-MNIST epoch in a few seconds, twice as
    fast as 32/64/128 channels (measured 61 vs 120 ms per batch of 128).
    """

    name = "cnn28"
    #: stride-2 convolutions instead of stride-1 convolutions followed by 2x2 max pooling
    strided = False

    def __init__(self, in_shape: tuple[int, ...], feature_dim: int, weights: str = "random"):
        super().__init__()
        _no_weights_file(self.name, weights)
        channels = in_shape[0] if len(in_shape) == 3 else 1

        def block(cin: int, cout: int) -> nn.Sequential:
            if self.strided:
                return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                                     nn.BatchNorm2d(cout), nn.ReLU(inplace=True))
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(channels, 16), block(16, 32), block(32, 64),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(64 * 4, feature_dim), nn.ReLU(inplace=True))
        self.out_dim = feature_dim
        # channels-last (NHWC) convolution, pooling and BatchNorm kernels train markedly faster on
        # CPU than NCHW ones (docs/PERFORMANCE.md, "Training"); the weights load and save as usual.
        # (torch's stubs leave out Module.to's memory_format keyword, which torch documents)
        self.features.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.contiguous(memory_format=torch.channels_last)))


@BACKBONES.register("cnn28s", help="cnn28 with stride-2 convolutions instead of max pooling: about 2x faster to train")
class StridedSmallCNN(SmallCNN):
    """cnn28's layers with each convolution computed at stride 2 instead of pooled afterwards:
    every convolution, BatchNorm and ReLU runs on a quarter of the positions (docs/PERFORMANCE.md,
    "Training"); on Animal-MNIST's validation protocol it cost VSB2-Net and CSQ accuracy
    (src/vsb2net/comparison/tuned/animal-mnist.cnn28s.yaml)."""

    name = "cnn28s"
    strided = True


@BACKBONES.register("mlp", help="two-layer MLP over precomputed features (feature mode)")
class FeatureMLP(Backbone):
    """The visual branch when the inputs are fixed features (e.g. xlsa17's ResNet-101 features),
    as most zero-shot hashing papers on AwA2/CUB/SUN use: Linear-ReLU-Dropout-Linear-ReLU.

    The input is standardised with the training features' per-dimension mean and std, set once
    by :meth:`set_input_reference`; raw CNN features differ in scale by orders of magnitude.
    """

    in_mean: torch.Tensor
    in_std: torch.Tensor

    def __init__(self, in_shape: tuple[int, ...], feature_dim: int, weights: str = "random", hidden: int = 1024):
        super().__init__()
        _no_weights_file("mlp", weights)
        (d,) = in_shape
        self.register_buffer("in_mean", torch.zeros(d))
        self.register_buffer("in_std", torch.ones(d))
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Dropout(0.2),
                                 nn.Linear(hidden, feature_dim), nn.ReLU(inplace=True))
        self.out_dim = feature_dim

    @torch.no_grad()
    def set_input_reference(self, x: torch.Tensor) -> None:
        self.in_mean.copy_(x.mean(0))
        self.in_std.copy_(x.std(0, unbiased=False).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.in_mean) / self.in_std)


class FrozenTrunkBackbone(Backbone):
    """A pretrained backbone whose first part is frozen.  What it provides:

    * ``frozen_features(images)``: the frozen part's output, the same in every epoch, so the
      pipeline computes it once per dataset and caches it on disk (``feature_cache.py``);
    * ``forward`` of either images or that cached output (told apart by ``cached_channels``);
    * ``cache_identity()``: everything besides the images that decides the cached output.
    """

    cached_channels: int

    def frozen_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def cache_identity(self) -> dict:
        raise NotImplementedError


def resolve_backbone(name: str, in_shape: tuple[int, ...]) -> str:
    """``auto`` -> ``mlp`` for feature vectors, ``cnn28`` for images; checks the pairing otherwise."""
    features = len(in_shape) == 1
    if name == "auto":
        return "mlp" if features else "cnn28"
    cls = BACKBONES.get(name)
    if features != (cls is FeatureMLP):
        what = "precomputed features" if features else "images"
        fix = "mlp" if features else "cnn28 or a torchvision model (resnet18, ...)"
        raise VsbError(f"backbone {name!r} cannot take {what} of shape {tuple(in_shape)}; use model.backbone="
                       f"auto (or {fix}).")
    return name


def build_backbone(name: str, in_shape: tuple[int, ...], feature_dim: int, weights: str = "random",
                   finetune_blocks: int = 0) -> Backbone:
    cls = BACKBONES.get(resolve_backbone(name, in_shape))
    if _is_frozen_trunk(cls):
        return cls(in_shape, feature_dim, weights=weights, finetune_blocks=finetune_blocks)
    return cls(in_shape, feature_dim, weights=weights)


def _is_frozen_trunk(factory: Callable[..., Backbone]) -> bool:
    return isinstance(factory, type) and issubclass(factory, FrozenTrunkBackbone)


def frozen_trunk(name: str, in_shape: tuple[int, ...]) -> bool:
    """Whether backbone ``name`` (``auto`` resolved) has a frozen part the pipeline caches."""
    return _is_frozen_trunk(BACKBONES.get(resolve_backbone(name, in_shape)))


def set_input_reference(model: nn.Module, x: torch.Tensor) -> None:
    """Give every backbone of ``model`` that standardises its input the training inputs' statistics."""
    for m in model.modules():
        if isinstance(m, FeatureMLP):
            m.set_input_reference(x)


class BackboneHashHead(HashingMethod):
    """The visual branch deep hashing methods share: backbone, linear layer, tanh."""

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...]) -> None:
        super().__init__(cfg)
        self.backbone = build_backbone(cfg.backbone, in_shape, cfg.feature_dim, cfg.backbone_weights,
                                       cfg.finetune_blocks)
        self.hash_head = nn.Linear(self.backbone.out_dim, cfg.bits)
        # model.code_layer = center: the outputs standardised over the batch (running statistics
        # at test time), so no code shares one large component (ModelConfig says why)
        self.code_center = nn.BatchNorm1d(cfg.bits, affine=False) if cfg.code_layer == "center" else None

    def code_layer(self, f: torch.Tensor) -> torch.Tensor:
        """The hash layer on features ``f``: W f + b, standardised over the batch with
        ``model.code_layer = center``."""
        z = self.hash_head(f)
        return self.code_center(z) if self.code_center is not None else z

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        """Continuous codes u in (-1, 1)^K of images; the binary code is sign(u)."""
        return torch.tanh(self.hash_outputs(x))

    def hash_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """The hash layer's outputs before any squashing (methods whose loss works on them, e.g.
        DSH or DPSH, code with them directly)."""
        return self.code_layer(self.backbone(x))


class CodebookHead(BackboneHashHead):
    """A hash head with one fixed binary target code per training class (``centres``, from
    :func:`~vsb2net.models.relations.hash_centres`): CSQ's hash centres, DPN's polarisation
    targets, OrthoHash's codebook.  Sized by the training classes, or by a loaded checkpoint."""

    sized_by_training = ("centres",)
    centres: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...]) -> None:
        super().__init__(cfg, in_shape)
        self.register_buffer("centres", torch.zeros(0, cfg.bits))

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        self.centres = torch.from_numpy(hash_centres(len(train_vectors), self.cfg.bits))

    def target_codes(self, y: torch.Tensor) -> torch.Tensor:
        """(B, K) targets in [-1, 1]: the label's code; for multi-label items the mean of their
        labels' codes (a bit on which the labels disagree gets target 0, not a coin flip)."""
        centres = self.centres.to(y.device)
        return class_distribution(y, len(centres)) @ centres if y.ndim == 2 else centres[y]
