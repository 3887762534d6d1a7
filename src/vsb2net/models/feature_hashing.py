"""Two-stage hashing on learned features: a classifier is trained on the seen classes with the
shared backbone, then a projection fitted on its training features turns features into codes.

The baselines LSH, ITQ and the TSK-style linear zero-shot hashing (one file each) differ only in
how they fit that projection; the classifier stage and the training budget are the same for all.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..errors import VsbError
from .backbones import build_backbone
from .base import HashingMethod, LossTerms, encode
from .losses import classification_loss
from .relations import ClassContext


def itq_rotation(v: np.ndarray, iterations: int = 50, seed: int = 0) -> np.ndarray:
    """Iterative quantisation (Gong & Lazebnik 2011): the rotation R minimising ||sign(VR) - VR||."""
    k = v.shape[1]
    rng = np.random.default_rng(seed)
    r, _ = np.linalg.qr(rng.normal(size=(k, k)))
    for _ in range(iterations):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)
        r = u @ wt  # orthogonal Procrustes
    return r


def pca_directions(x: np.ndarray, k: int) -> np.ndarray:
    """Top-k principal directions (columns) of centred data."""
    if k > min(x.shape):
        raise VsbError(f"PCA to {k} dimensions needs at least {k} samples and feature dimensions; "
                       f"got data of shape {x.shape}. Use fewer bits or a wider feature (model.feature_dim).")
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return vt[:k].T


class FeatureHashing(HashingMethod):
    """Backbone + linear classifier; codes = sign((f - mean) @ projection) after ``post_fit``."""

    codes_classes = False
    family = "classifier-features"
    # LSH, ITQ and TSK train the same seeded classifier first: a benchmark trains it once per split
    shared_stage = "classifier"
    mean: torch.Tensor
    projection: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int):
        super().__init__(cfg)
        self.backbone = build_backbone(cfg.backbone, in_shape, cfg.feature_dim, cfg.backbone_weights,
                                       cfg.finetune_blocks)
        # The number of training classes is known only when training starts (set_class_reference).
        self.head: nn.Linear | None = None
        self.register_buffer("mean", torch.zeros(self.backbone.out_dim))
        self.register_buffer("projection", torch.zeros(self.backbone.out_dim, cfg.bits))

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        self._ensure_head(len(train_vectors), self.mean.device)

    def _ensure_head(self, n_classes: int, device: torch.device) -> None:
        if self.head is None or self.head.out_features != n_classes:
            self.head = nn.Linear(self.backbone.out_dim, n_classes).to(device)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        if self.head is None:
            raise RuntimeError("set_class_reference sizes the classifier before training")
        f = self.backbone(x)
        loss = classification_loss(self.head(f), y)
        return loss, {"cls": float(loss.detach())}

    @torch.no_grad()
    def post_fit(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext, device: torch.device) -> None:
        self.eval()
        feats = encode(self.backbone, x, device).astype(np.float64)
        mean = feats.mean(0)
        proj = self.fit_projection(feats - mean, y.numpy(), ctx)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.projection.copy_(torch.from_numpy(proj).float())

    def fit_projection(self, centred: np.ndarray, y: np.ndarray, ctx: ClassContext) -> np.ndarray:
        raise NotImplementedError

    def stage_state(self) -> dict[str, torch.Tensor]:
        """The weights of the shared first stage (the classifier), before the projection."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()
                if k.startswith(("backbone.", "head."))}

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return (self.backbone(x) - self.mean) @ self.projection

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        head = {k: v for k, v in state_dict.items() if k.startswith("head.")}
        if head:
            self._ensure_head(head["head.weight"].shape[0], self.mean.device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
